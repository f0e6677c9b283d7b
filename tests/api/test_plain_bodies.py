"""The plain loader of command bodies makes what the schema's load makes, or stands aside;
and a body's JSON is read as the strict scanner reads it."""

import json
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError
from returns.pipeline import is_successful

from usersvc.http.schemas import Body
from usersvc.http.validation import _flat_object, load_body, parse_json, plain_loader, strict_json


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


# --- the JSON of a body: orjson for a flat object, the strict scanner for the rest


def same(ours: object, theirs: object) -> bool:
    """Equal, with the same types all the way down (True is not 1, 1.0 is not 1)."""
    if type(ours) is not type(theirs):
        return False
    if isinstance(ours, dict):
        return list(ours) == list(theirs) and all(same(ours[k], theirs[k]) for k in ours)
    if isinstance(ours, list):
        return len(ours) == len(theirs) and all(map(same, ours, theirs))
    return ours == theirs or (ours != ours and theirs != theirs)  # NaN


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(),
    st.sampled_from(['a"b', "a\\b", "\x00", "\ud800", "é", "\u2028"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)
# Raw JSON pieces: escapes of every kind, odd numbers and spacing, literals in any case.
tokens = st.sampled_from(
    ['"a"', '"\\u0061"', '"\\""', '"\\\\"', '"\\ud800"', "1", "-0", "1.0", "1e400", "01",
     "18446744073709551616", "NaN", "Infinity", "true", "True", "null", " ", "\t", "\n",
     ",", ":", "{", "}", "[", "]", "\ufeff", "\x00"]
)  # fmt: skip


@st.composite
def raw_objects(draw: st.DrawFn) -> bytes:
    """Objects as clients write them: keys repeated (also through escapes), spacing,
    any value; now and then spliced with raw pieces or cut short."""
    pairs = draw(st.lists(st.tuples(st.text(max_size=4), json_values), max_size=5))
    if pairs and draw(st.booleans()):
        key, _ = draw(st.sampled_from(pairs))
        pairs.append((key, draw(json_values)))  # a repeated key
    space = draw(st.sampled_from(["", " ", "\n  "]))
    escape = draw(st.booleans())
    parts = [
        f"{json.dumps(k, ensure_ascii=escape)}:{space}{json.dumps(v, ensure_ascii=escape)}"
        for k, v in pairs
    ]
    text = "{" + f",{space}".join(parts) + "}"
    if draw(st.integers(0, 4)) == 0:
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(tokens) + text[at:]
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 9)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return data


@settings(max_examples=3000, deadline=None)
@given(raw=raw_objects() | st.binary(max_size=40) | st.lists(tokens, max_size=8).map(
    lambda parts: "".join(parts).encode("utf-8", "surrogatepass")
))  # fmt: skip
def test_a_body_is_read_as_the_strict_scanner_reads_it(raw: bytes) -> None:
    ours, theirs = parse_json(raw), strict_json(raw)
    assert is_successful(ours) == is_successful(theirs)
    if is_successful(theirs):
        assert same(ours.unwrap(), theirs.unwrap())
    else:
        assert ours.failure() == theirs.failure()


def test_a_commands_body_is_read_by_orjson() -> None:
    """The shortcut is taken for what clients send, and refused where it would be wrong."""
    body = b'{"phone": 79000000001, "email": "a@b.c", "firstname": "Ivan", "middlename": null}'
    assert _flat_object(body) == json.loads(body)
    assert _flat_object(b'{"a": 1, "a": 2}') is None  # repeated
    assert _flat_object(b'{"\\u0061": 1, "a": 2}') is None  # repeated through an escape
    assert _flat_object(b'{"a": 18446744073709551616}') is None  # orjson: a float
    assert _flat_object(b'{"a": "\\""}') is None
