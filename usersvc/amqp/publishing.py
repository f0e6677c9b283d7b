"""Many publishes to the broker in one write: aiormq's ``basic_publish``, batched.

``Channel.basic_publish`` puts each message through its own lock, timeout, write-queue
entry and socket write, and waits for its confirm in the caller's task, so a batch of
hundreds took a task per message; that was most of the relay's time per event. Here a
batch's messages get what ``basic_publish`` gives each one (a delivery tag, a
confirmation future that the broker's ack, nack or return settles, and the look-up by
message id that a returned message is matched with) under the channel's lock, and
their frames (encoded by :mod:`usersvc.amqp.frames`) go to the connection's writer as
one.

That reaches into aiormq's channel: :data:`AIORMQ_VERSIONS` names the releases it was
read from, and ``tests/relay/test_publishing.py`` holds it to ``basic_publish``.
"""

import asyncio
from collections.abc import Callable, Sequence

from aiormq.abc import ChannelFrame
from aiormq.channel import Channel

from usersvc.amqp.frames import publish_frames
from usersvc.amqp.messages import Message

AIORMQ_VERSIONS = ("7.2.",)  # whose Channel internals this uses (held by a test)


async def publish_many(
    channel: Channel, exchange: str, messages: Sequence[Message]
) -> list[asyncio.Future]:
    """Send ``messages`` in order, mandatory, on a channel in confirm mode; each one's
    confirmation: ``Basic.Ack``, or ``DeliveryError`` (nacked) or ``PublishError``
    (returned as unroutable), or the channel's error when it closes first.

    Returns once the frames are queued for the writer; cancelled before that, nothing
    was sent and nothing is left behind.
    """
    frames: list[bytes] = []
    confirmations: list[asyncio.Future] = []
    number, most = channel.number, channel.max_content_size
    async with channel.lock:
        first = channel.delivery_tag + 1
        try:
            for message in messages:
                properties = message.properties
                channel.delivery_tag += 1
                tag = channel.delivery_tag
                confirmation = channel.create_future()
                channel.confirmations[tag] = confirmation
                channel.message_id_delivery_tag[properties.message_id] = tag
                confirmation.add_done_callback(_forget(channel, properties.message_id, tag))
                confirmations.append(confirmation)
                frames.append(
                    publish_frames(
                        number, most, exchange, message.routing_key, properties, message.body
                    )
                )
            await channel.write_queue.put(ChannelFrame(b"".join(frames), should_close=False))
        except BaseException:
            # The broker saw none of them: give their delivery tags back, as basic_publish
            # does for one, so the broker's numbering and the channel's stay the same.
            channel.delivery_tag = first - 1
            for tag in range(first, first + len(confirmations)):
                channel.confirmations.pop(tag, None)
            for confirmation in confirmations:
                confirmation.cancel()
            raise
    return confirmations


def _forget(channel: Channel, message_id: str, tag: int) -> Callable[[asyncio.Future], None]:
    def forget(_: asyncio.Future) -> None:
        if channel.message_id_delivery_tag.get(message_id) == tag:
            del channel.message_id_delivery_tag[message_id]

    return forget
