"""The bytes of a publish are pamqp's, whichever way they are made."""

from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import pytest
from aiormq.abc import ChannelFrame
from aiormq.channel import Channel
from hypothesis import assume, given
from hypothesis import strategies as st
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from usersvc.amqp import frames
from usersvc.amqp.messages import OutboxRow, to_message


def pamqps(
    channel: int, most: int, exchange: str, key: str, properties: Basic.Properties, body: bytes
) -> bytes:
    """What aiormq's basic_publish writes, frame objects and all."""
    pieces = Channel._split_body(SimpleNamespace(max_content_size=most), body)  # type: ignore[arg-type]
    publish = Basic.Publish(exchange=exchange, routing_key=key, mandatory=True)
    header = ContentHeader(properties=properties, body_size=len(body))
    return ChannelFrame.marshall(channel, [publish, header, *pieces]).payload


def outcome(make: Any, *args: Any) -> bytes | type[BaseException]:
    try:
        return make(*args)
    except Exception as error:  # an error must be an error both ways
        return type(error)


texts = st.text(max_size=12) | st.text(min_size=250, max_size=300)
names = st.text(min_size=1, max_size=12) | st.text(alphabet="n", min_size=254, max_size=257)
zones = st.sampled_from([UTC, timezone(timedelta(hours=3)), timezone(timedelta(hours=-9))])
# Naive ones too: pamqp takes them as UTC (the same here only where local time is UTC).
stamps = st.datetimes(timezones=zones | st.none()) | st.datetimes(
    min_value=datetime(1960, 1, 1), max_value=datetime(1975, 1, 1), timezones=zones
)
header_keys = st.text(max_size=8) | st.text(alphabet="k", min_size=127, max_size=130)
text_headers = st.dictionaries(header_keys, st.text(max_size=20), max_size=3)
any_headers = st.dictionaries(
    header_keys, st.text(max_size=20) | st.integers(-(2**40), 2**40) | st.booleans(), max_size=3
)


@st.composite
def properties(draw: st.DrawFn) -> Basic.Properties:
    """Mostly the relay's kind (all six set, text headers), else anything pamqp takes."""
    if draw(st.integers(0, 3)):
        fields = {
            "content_type": draw(names),
            "headers": draw(text_headers),
            "delivery_mode": draw(st.sampled_from([1, 2])),
            "message_id": draw(names),
            "timestamp": draw(stamps),
            "message_type": draw(names),
        }
    else:
        fields = {
            "content_type": draw(texts | st.none()),
            "headers": draw(any_headers | st.none()),
            "delivery_mode": draw(st.sampled_from([None, 1, 2])),
            "message_id": draw(texts | st.none()),
            "timestamp": draw(st.datetimes(timezones=zones | st.none()) | st.none()),
            "message_type": draw(texts | st.none()),
        }
        if draw(st.booleans()):  # a property the relay never sets
            fields[draw(st.sampled_from(["app_id", "correlation_id", "priority"]))] = draw(
                st.sampled_from(["x", 5])
            )
    try:
        return Basic.Properties(**fields)
    except (TypeError, ValueError):
        assume(False)
        raise


@given(
    channel=st.integers(1, 65535),
    most=st.integers(1, 64) | st.just(131_064),
    exchange=st.text(alphabet="abcXYZ019-_.:", max_size=12),
    key=texts,
    properties=properties(),
    body=st.binary(max_size=200),
)
def test_publish_frames_are_the_bytes_pamqp_writes(
    channel: int, most: int, exchange: str, key: str, properties: Basic.Properties, body: bytes
) -> None:
    args = (channel, most, exchange, key, properties, body)
    assert outcome(frames.publish_frames, *args) == outcome(pamqps, *args)


@given(
    name=st.sampled_from(["UserCreated", "ContactsChanged", "UserPermanentlyDeleted"]),
    data=st.dictionaries(st.text(max_size=10), st.text(max_size=10) | st.none(), max_size=4),
    headers=st.dictionaries(
        st.sampled_from(["traceparent", "tracestate"]), st.text(max_size=60), max_size=2
    ),
    occurred_at=st.datetimes(min_value=datetime(2000, 1, 1), timezones=st.just(UTC)),
)
def test_every_event_the_relay_sends_takes_the_direct_way(
    name: str, data: dict, headers: dict, occurred_at: datetime
) -> None:
    row = OutboxRow(1, uuid4(), name, uuid4(), occurred_at, data, headers)
    assert frames._properties(to_message(row).properties) is not None


@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 16, 17])
def test_a_body_is_cut_as_aiormq_cuts_it(size: int) -> None:
    body = bytes(range(size))
    expected = Channel._split_body(SimpleNamespace(max_content_size=8), body)  # type: ignore[arg-type]
    assert frames.body_pieces(body, 8) == [piece.value for piece in expected]
