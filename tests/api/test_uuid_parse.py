"""The ids in paths, bodies and query strings are read in C where they can be
(``parse_uuid``): for any text, the same UUID as ``uuid.UUID`` reads, or the same refusal."""

import uuid

from hypothesis import example, given, settings
from hypothesis import strategies as st

from usersvc.http.schemas import parse_uuid

HEX = "0123456789abcdefABCDEF"
# Texts near a UUID's shape: hex digits and hyphens of about its length, with what
# uuid.UUID strips or int() forgives (braces, urn:uuid:, spaces, underscores, other digits).
near = st.builds(
    lambda prefix, body, suffix: prefix + body + suffix,
    st.sampled_from(["", "{", "urn:uuid:", " ", "-"]),
    st.text(st.sampled_from(HEX + "-_ g٣"), min_size=28, max_size=40),
    st.sampled_from(["", "}", " ", "-"]),
)


def _read(read, text: str) -> uuid.UUID | str:
    try:
        return read(text)
    except ValueError:
        return "refused"


@settings(max_examples=1000, deadline=None)
@given(text=near | st.text(max_size=50) | st.uuids().map(str))
@example("3fa85f64-5717-4562-b3fc-2c963f66afa6")
@example("3FA85F645717-4562-b3fc-2c963f66afa6")
@example("{3fa85f64-5717-4562-b3fc-2c963f66afa6}")
@example("3fa85f64_5717_4562_b3fc_2c963f66afa6")
@example("")
def test_parse_uuid_reads_every_text_as_uuid_does(text: str):
    ours, theirs = _read(parse_uuid, text), _read(uuid.UUID, text)
    assert ours == theirs, text
    if isinstance(ours, uuid.UUID):
        assert (str(ours), ours.int, hash(ours)) == (str(theirs), theirs.int, hash(theirs))
