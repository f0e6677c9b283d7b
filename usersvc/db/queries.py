"""Loads the handwritten queries of ``sql/*.sql`` by name.

A small loader rather than aiosql: the SQL stays exactly as PostgreSQL runs it
(native ``$1`` parameters, no rewriting at call time), so a maintainer can paste a
query into psql, and asyncpg prepares and caches each statement per connection.
"""

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from attrs import frozen

_NAME = re.compile(r"^-- name: (?P<name>[a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def _find(folder: str) -> Path:
    """The folder inside the installed package (wheel), else at the checkout's top."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / folder, package.parent / folder):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"no {folder}/ folder beside {package}")


SQL_DIR = _find("sql")
MIGRATIONS_DIR = _find("migrations")


@frozen
class Queries(Mapping[str, str]):
    """Query text by name; ``queries.lock_user`` reads like ``queries["lock_user"]``."""

    by_name: Mapping[str, str]

    def __getitem__(self, name: str) -> str:
        return self.by_name[name]

    def __getattr__(self, name: str) -> str:
        try:
            return self.by_name[name]
        except KeyError:
            raise AttributeError(name) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_name)

    def __len__(self) -> int:
        return len(self.by_name)


def parse(text: str, source: str = "<sql>") -> dict[str, str]:
    """Split a file into its named blocks; a block must hold a statement."""
    marks = list(_NAME.finditer(text))
    found: dict[str, str] = {}
    for mark, following in zip(marks, [*marks[1:], None], strict=True):
        end = following.start() if following else len(text)
        body = text[mark.end() : end].strip()
        statement = "\n".join(
            line for line in body.splitlines() if not line.lstrip().startswith("--")
        ).strip()
        if not statement:
            raise ValueError(f"{source}: query {mark['name']} is empty")
        if mark["name"] in found:
            raise ValueError(f"{source}: query {mark['name']} is named twice")
        found[mark["name"]] = body
    return found


def load(folder: Path = SQL_DIR) -> Queries:
    queries: dict[str, str] = {}
    for path in sorted(folder.glob("*.sql")):
        for name, body in parse(path.read_text(encoding="utf-8"), path.name).items():
            if name in queries:
                raise ValueError(f"{path.name}: query {name} is named in another file too")
            queries[name] = body
    return Queries(queries)
