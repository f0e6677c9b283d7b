"""``publish_many`` against a real RabbitMQ: what ``basic_publish`` does, for a batch."""

import asyncio
from datetime import UTC, datetime
from importlib.metadata import version
from uuid import uuid4

import pytest
from aiormq.abc import AbstractChannel
from aiormq.exceptions import PublishError
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from tests.relay.support import Consumer
from usersvc.amqp.messages import Message, OutboxRow, to_message
from usersvc.amqp.publishing import AIORMQ_VERSIONS, publish_many


def message(event_name: str = "UserCreated", size: int = 0) -> Message:
    return to_message(
        OutboxRow(
            position=1,
            event_id=uuid4(),
            event_name=event_name,
            user_id=uuid4(),
            occurred_at=datetime.now(UTC),
            data={"note": "x" * size},
            headers={"traceparent": f"00-{uuid4().hex}-{uuid4().hex[:16]}-01"},
        )
    )


def test_the_aiormq_internals_it_uses_are_those_of_a_release_it_was_read_from() -> None:
    # publish_many sets the channel's delivery tags, confirmations and returned-message
    # look-up itself; another aiormq release must be read again before it is let in.
    assert version("aiormq").startswith(AIORMQ_VERSIONS), version("aiormq")


async def test_a_batch_arrives_in_order_as_basic_publish_would_send_each_message(
    broker: AbstractChannel, names: tuple[str, str], consumer: Consumer
) -> None:
    exchange, _ = names
    single = message()
    await broker.basic_publish(
        single.body,
        exchange=exchange,
        routing_key=single.routing_key,
        properties=single.properties,
        mandatory=True,
    )
    # One larger than a frame: its body goes in several frames.
    frame_max = broker.connection.connection_tune.frame_max
    batch = [message("FullnameChanged"), message(size=frame_max * 2), message("UserDeleted")]
    confirmations = await publish_many(broker, exchange, batch)
    assert all(isinstance(c, Basic.Ack) for c in await asyncio.gather(*confirmations))

    await consumer.wait_count(4)
    arrived = consumer.messages
    assert [m.header.properties.message_id for m in arrived] == [
        m.properties.message_id for m in [single, *batch]
    ]
    for sent, got in zip([single, *batch], arrived, strict=True):
        assert got.body == sent.body
        assert got.routing_key == sent.routing_key
        # Every property as sent (compared marshalled: AMQP timestamps are whole seconds).
        header = ContentHeader(properties=sent.properties, body_size=len(sent.body))
        assert got.header.marshal() == header.marshal()
    assert broker.confirmations == {}
    assert broker.message_id_delivery_tag == {}


async def test_an_unroutable_message_is_returned_as_an_error_and_the_others_are_confirmed(
    broker: AbstractChannel, names: tuple[str, str]
) -> None:
    exchange, _ = names
    await broker.exchange_declare(exchange, exchange_type="direct", durable=True)
    await broker.queue_declare(f"{exchange}.bound", exclusive=True)
    await broker.queue_bind(f"{exchange}.bound", exchange, routing_key="UserCreated")
    batch = [message("UserCreated"), message("NobodyListens"), message("UserCreated")]

    outcomes = await asyncio.gather(
        *await publish_many(broker, exchange, batch), return_exceptions=True
    )

    assert isinstance(outcomes[0], Basic.Ack)
    assert isinstance(outcomes[1], PublishError)
    assert isinstance(outcomes[2], Basic.Ack)
    assert broker.message_id_delivery_tag == {}


async def test_delivery_tags_stay_in_step_with_the_broker_across_batches_and_single_publishes(
    broker: AbstractChannel, names: tuple[str, str], consumer: Consumer
) -> None:
    exchange, _ = names
    for _ in range(3):
        confirmations = await publish_many(broker, exchange, [message() for _ in range(50)])
        assert all(isinstance(c, Basic.Ack) for c in await asyncio.gather(*confirmations))
        one = message()
        confirm = await broker.basic_publish(
            one.body, exchange=exchange, routing_key=one.routing_key, properties=one.properties
        )
        assert isinstance(confirm, Basic.Ack)
    assert broker.delivery_tag == 153
    await consumer.wait_count(153)


async def test_a_batch_cancelled_before_it_is_queued_sends_nothing_and_gives_its_tags_back(
    broker: AbstractChannel, names: tuple[str, str], consumer: Consumer
) -> None:
    exchange, _ = names
    # The writer backed up: the connection's write queue is full, the batch waits there.
    full: asyncio.Queue[object] = asyncio.Queue(maxsize=1)
    full.put_nowait(object())
    writes, broker.write_queue = broker.write_queue, full
    try:
        waiting = asyncio.ensure_future(publish_many(broker, exchange, [message(), message()]))
        await asyncio.sleep(0.05)
        assert broker.delivery_tag == 2  # numbered and waiting to be queued
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    finally:
        broker.write_queue = writes
    assert broker.delivery_tag == 0
    assert broker.confirmations == {}
    assert broker.message_id_delivery_tag == {}
    # The broker numbers this one 1: a tag not given back would leave it unconfirmed.
    after = message()
    (confirmation,) = await publish_many(broker, exchange, [after])
    assert isinstance(await asyncio.wait_for(confirmation, 5), Basic.Ack)
    await consumer.wait_count(1)
    await asyncio.sleep(0.2)
    assert consumer.ids() == [after.properties.message_id]
