"""The handwritten queries of sql/: each named once, each valid against the schema."""

import asyncpg
import pytest

from usersvc.db.queries import Queries, parse


async def test_every_named_query_prepares_against_the_migrated_schema(
    pool: asyncpg.Pool, queries: Queries
) -> None:
    # PostgreSQL parses, plans and type-checks each statement without running it,
    # so a hand edit that breaks a query fails here rather than in production.
    async with pool.acquire() as connection:
        for name, text in queries.items():
            try:
                await connection.prepare(text)
            except asyncpg.PostgresError as error:
                pytest.fail(f"query {name} does not prepare: {error}")


def test_a_query_is_reached_by_name_as_key_and_as_attribute(queries: Queries) -> None:
    assert queries.lock_user == queries["lock_user"]
    assert "FOR UPDATE" in queries.lock_user
    with pytest.raises(AttributeError):
        _ = queries.no_such_query


def test_a_name_given_twice_in_a_file_is_refused() -> None:
    text = "-- name: twice\nSELECT 1;\n\n-- name: twice\nSELECT 2;\n"
    with pytest.raises(ValueError, match="named twice"):
        parse(text, "x.sql")


def test_a_name_with_only_comments_under_it_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        parse("-- name: nothing\n-- just a comment\n", "x.sql")


def test_the_text_between_names_is_the_query_with_its_comments() -> None:
    found = parse("-- header\n\n-- name: one\n-- why\nSELECT 1;\n-- name: two\nSELECT 2;\n")
    assert found == {"one": "-- why\nSELECT 1;", "two": "SELECT 2;"}
