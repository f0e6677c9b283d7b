"""The RabbitMQ definitions' policy on a real broker: it bounds the catch-all `users` queue
the relay declares (a length limit dropping the oldest, a TTL) and leaves consumers' own
queues alone. Each test has its own vhost, deleted after it; the broker's other vhosts and
users are untouched (tests/deploy/rabbitmq.py: the `rabbitmqctl` used)."""

import json
import urllib.parse
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import aiormq
import pytest

from tests.conftest import AMQP_URL
from tests.deploy.rabbitmq import DEFINITIONS, ctl, url_for

(POLICY,) = DEFINITIONS["policies"]
CATCH_ALL = "users"  # the relay's default USERSVC_AMQP_QUEUE


def set_policy(vhost: str, policy: dict[str, Any], **override: Any) -> None:
    ctl(
        "set_policy",
        "-p",
        vhost,
        "--apply-to",
        policy["apply-to"],
        "--priority",
        str(policy["priority"] + (1 if override else 0)),
        policy["name"] + ("-test" if override else ""),
        policy["pattern"],
        json.dumps(policy["definition"] | override),
    )


@pytest.fixture
def vhost() -> Iterator[str]:
    name = f"usersvc_test_{uuid4().hex[:10]}"
    user = urllib.parse.urlsplit(AMQP_URL).username or "guest"
    ctl("add_vhost", name)
    try:
        ctl("set_permissions", "-p", name, user, ".*", ".*", ".*")
        yield name
    finally:
        ctl("delete_vhost", name)


def queues(vhost: str) -> dict[str, dict[str, Any]]:
    output = ctl(
        "list_queues",
        "-p",
        vhost,
        "name",
        "policy",
        "--formatter",
        "json",
        "--quiet",
    )
    return {q["name"]: q for q in json.loads(output)}


def test_the_policy_matches_only_the_catch_all_queue_and_bounds_it() -> None:
    assert POLICY["vhost"] == "/"
    assert POLICY["apply-to"] == "queues"
    definition = POLICY["definition"]
    assert definition["overflow"] == "drop-head"
    assert definition["max-length"] > 0
    assert definition["message-ttl"] > 0
    assert "max-length-bytes" not in definition or definition["max-length-bytes"] > 0


async def test_the_catch_all_queue_gets_the_policy_and_a_consumers_queue_does_not(
    vhost: str,
) -> None:
    set_policy(vhost, POLICY)
    async with aiormq.connect(url_for(vhost)) as connection:
        channel = await connection.channel()
        # As the relay declares it (usersvc/amqp/relay.py): durable, no arguments.
        await channel.queue_declare(CATCH_ALL, durable=True)
        await channel.queue_declare("notifications.users", durable=True)
        await channel.queue_declare("users.audit", durable=True)
    found = queues(vhost)
    assert found[CATCH_ALL]["policy"] == POLICY["name"]
    for consumer in ("notifications.users", "users.audit"):
        assert found[consumer]["policy"] in ("", None), consumer
    policies = json.loads(ctl("list_policies", "-p", vhost, "--formatter", "json", "--quiet"))
    (stored,) = [p for p in policies if p["name"] == POLICY["name"]]
    definition = stored["definition"]
    assert (json.loads(definition) if isinstance(definition, str) else definition) == POLICY[
        "definition"
    ]


async def test_a_full_catch_all_queue_drops_its_oldest_messages(vhost: str) -> None:
    # The policy as shipped, its length limit lowered to 3: a test does not publish 100,000.
    set_policy(vhost, POLICY, **{"max-length": 3})
    async with aiormq.connect(url_for(vhost)) as connection:
        channel = await connection.channel()
        await channel.confirm_delivery()
        await channel.queue_declare(CATCH_ALL, durable=True)
        await channel.queue_declare("notifications.users", durable=True)
        for n in range(1, 6):
            for queue in (CATCH_ALL, "notifications.users"):
                await channel.basic_publish(str(n).encode(), routing_key=queue)
        kept = []
        while (message := await channel.basic_get(CATCH_ALL, no_ack=True)).delivery_tag:
            kept.append(message.body.decode())
        consumer = (await channel.queue_declare("notifications.users", passive=True)).message_count
    assert kept == ["3", "4", "5"]
    assert consumer == 5
