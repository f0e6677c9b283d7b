"""The plain loader of command bodies makes what the schema's load makes, or stands aside."""

from typing import Any
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from usersvc.http.schemas import Body
from usersvc.http.validation import load_body, plain_loader


def every_body() -> list[type[Body]]:
    found, frontier = [], [Body]
    while frontier:
        frontier = [sub for cls in frontier for sub in cls.__subclasses__()]
        found += [cls for cls in frontier if hasattr(cls, "command")]
    return found


BODIES = every_body()

# Values a JSON body can hold, weighted toward what a field may take and its near misses.
uuid_texts = st.uuids().flatmap(
    lambda u: st.sampled_from([str(u), u.hex, f"{{{u}}}", f"urn:uuid:{u}", str(u).upper()])
)
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.sampled_from(["vk", "telegram", "VK", "", " vk", "x", "ok", "tg"]),
    uuid_texts,
    st.just(str(uuid4())[:-1]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def as_loaded(schema: Body, data: Any) -> object:
    """What the schema's load makes of the body, or the failure it reports."""
    try:
        return schema.load(data)
    except ValidationError as error:
        return ("invalid", error.messages)


def plain_value(field: object) -> st.SearchStrategy[Any]:
    """A value the field takes as it is."""
    kind = type(field).__name__
    plain = {
        "Str": st.text(max_size=5),
        "Int": st.integers(),
        "Uuid": st.uuids().map(str),
        "Network": st.sampled_from(["vk", "telegram"]),
    }[kind]
    return st.none() | plain if field.allow_none else plain  # type: ignore[attr-defined]


def near_valid(schema: Body) -> st.SearchStrategy[dict[str, Any]]:
    """Bodies mostly of plain values, with some fields swapped for anything or missing,
    and keys the schema does not know."""
    fields = {
        name: st.one_of(plain_value(field), plain_value(field), values, st.just(MISSING))
        for name, field in schema.fields.items()
    }
    extras = st.dictionaries(st.sampled_from(["extra", "user", "id"]), values, max_size=2)
    return st.tuples(st.fixed_dictionaries(fields), extras).map(
        lambda pair: {k: v for k, v in (pair[1] | pair[0]).items() if v is not MISSING}
    )


MISSING = object()


@pytest.mark.parametrize("body", BODIES, ids=lambda cls: cls.__name__)
@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_the_plain_loader_makes_what_the_schema_makes_or_returns_none(
    body: type[Body], data: st.DataObject
) -> None:
    schema = body()
    chosen = data.draw(near_valid(schema) | st.dictionaries(st.text(max_size=4), values))
    made = plain_loader(schema)(chosen)
    expected = as_loaded(schema, chosen)
    if made is not None:
        assert made == expected
    assert load_body(schema, chosen).value_or(None) == (
        None if isinstance(expected, tuple) else expected
    )


@pytest.mark.parametrize("body", BODIES, ids=lambda cls: cls.__name__)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_a_body_of_plainly_valid_values_takes_the_plain_way(
    body: type[Body], data: st.DataObject
) -> None:
    schema = body()
    chosen = data.draw(st.fixed_dictionaries({n: plain_value(f) for n, f in schema.fields.items()}))
    made = plain_loader(schema)(chosen)
    assert made is not None
    assert made == schema.load(chosen)


def test_a_body_that_is_not_an_object_is_left_to_the_schema() -> None:
    for body in BODIES:
        loader = plain_loader(body())
        assert loader([]) is None
        assert loader("text") is None
        assert loader(None) is None
