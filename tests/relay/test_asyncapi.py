"""asyncapi.yaml against the contract and against real published messages."""

from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from jsonschema import Draft7Validator
from referencing import Registry
from referencing.jsonschema import DRAFT7

from tests.contract import EVENT_DATA_KEYS
from tests.relay.support import (
    Consumer,
    StartRelay,
    create_user,
    every_event,
    succeed,
    traceparent,
)
from usersvc.db.users import Command, Users
from usersvc.domain import commands

DOCUMENT = Path(__file__).resolve().parents[2] / "asyncapi.yaml"
BASE = "urn:usersvc:asyncapi"


@pytest.fixture(scope="module")
def asyncapi() -> dict[str, Any]:
    return yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))


def validator(document: dict[str, Any], pointer: str) -> Draft7Validator:
    """A validator of the schema at ``pointer``, its $refs resolved within the document."""
    registry = Registry().with_resource(BASE, DRAFT7.create_resource(document))
    return Draft7Validator({"$ref": f"{BASE}#{pointer}"}, registry=registry)


def test_asyncapi_describes_every_event_with_the_contracts_fields(
    asyncapi: dict[str, Any],
) -> None:
    assert asyncapi["asyncapi"].startswith("3.")
    exchange = asyncapi["components"]["channelBindings"]["usersExchange"]["amqp"]
    assert (
        exchange["exchange"] | {"name": "users", "type": "topic", "durable": True}
        == (exchange["exchange"])
    )
    assert asyncapi["channels"]["usersQueue"]["bindings"]["amqp"]["queue"]["durable"] is True
    assert set(asyncapi["components"]["messages"]) == set(EVENT_DATA_KEYS)
    for name, fields in EVENT_DATA_KEYS.items():
        channel = asyncapi["channels"][name]
        assert channel["address"] == name  # the routing key
        assert asyncapi["operations"][f"send{name}"]["action"] == "send"
        payload = asyncapi["components"]["schemas"][f"{name}Event"]
        assert set(payload["required"]) == {
            "event_id",
            "event_name",
            "occurred_at",
            "user_id",
            "actor",  # who asked (§5): a client id, or null
            "data",
        }
        data = payload["properties"]["data"]
        assert set(data["properties"]) == set(data["required"]) == fields


def test_asyncapi_examples_validate_against_its_schemas(asyncapi: dict[str, Any]) -> None:
    for name, message in asyncapi["components"]["messages"].items():
        for example in message.get("examples", []):
            validator(asyncapi, f"/components/messages/{name}/payload").validate(example["payload"])


async def test_published_messages_validate_against_the_asyncapi_schemas(
    asyncapi: dict[str, Any], users: Users, consumer: Consumer, start_relay: StartRelay
) -> None:
    sent: list[Any] = []

    async def run(command: Command) -> Any:
        event = await succeed(users, command, {"traceparent": traceparent()})
        sent.append(event)
        return event

    # Every event kind, erased ones included (all wait in the outbox until the
    # permanent deletion), and a user whose events keep their data.
    await every_event(run)
    kept = await run(create_user(middlename=None, phone=None))
    await run(commands.ChangeFullname(kept.user_id, "Olga", "Ivanova", "Petrovna"))
    await run(commands.ChangeContacts(kept.user_id, None, 79_161_234_567))
    await start_relay()
    await consumer.wait_for(e.event_id for e in sent)

    names = set()
    for message in consumer.messages:
        name = message.routing_key
        names.add(name)
        body = orjson.loads(message.body)
        validator(asyncapi, f"/components/messages/{name}/payload").validate(body)
        validator(asyncapi, f"/components/messages/{name}/headers").validate(
            message.header.properties.headers
        )
    assert names == set(EVENT_DATA_KEYS)
