"""A client generated from the served document by openapi-python-client drives a user's
whole lifecycle against the real app on a real port and the real database: every
operation answers with a parsed, typed result, every domain failure with a parsed
error envelope carrying its code.

The client is generated once per session (about a second) into a temporary folder.
"""

import asyncio
import importlib
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from uuid import UUID, uuid4

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.auth.conftest import key, provider
from tests.auth.support import Key, Provider, claims, sign
from usersvc.http.app import create_app
from usersvc.http.auth import Tokens
from usersvc.http.failures import FAILURES
from usersvc.http.keys import SigningKeys

PACKAGE = "usersvc_client"
GENERATOR = Path(sys.executable).parent / "openapi-python-client"
CONFIG = {
    "project_name_override": "usersvc-client",
    "package_name_override": PACKAGE,
    "post_hooks": [],  # no formatting of the generated code: only imported here
}
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/nope"
__all__ = ["key", "provider"]  # the auth tests' fixtures: a provider of the test's own


@pytest.fixture(scope="session")
def generate_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable]:
    """``generate_client(document)``: the generated package, imported; made once."""
    folder = tmp_path_factory.mktemp("generated-client")
    made: dict[str, ModuleType] = {}

    def generate(document: dict[str, Any]) -> ModuleType:
        # Each test's provider has a port of its own: the token URL is the one difference.
        text = re.sub(
            r'"tokenUrl": "[^"]*"', '"tokenUrl": "…"', json.dumps(document, sort_keys=True)
        )
        if made:
            ((made_from, module),) = made.items()
            assert made_from == text, "the served document changed within one test run"
            return module
        (folder / "openapi.json").write_text(text)
        (folder / "config.json").write_text(json.dumps(CONFIG))
        run = subprocess.run(
            [
                str(GENERATOR),
                "generate",
                "--path",
                str(folder / "openapi.json"),
                "--config",
                str(folder / "config.json"),
                "--meta",
                "none",
                "--output-path",
                str(folder / PACKAGE),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        # The generator warns on what it could not turn into code; there must be nothing.
        assert run.returncode == 0, run.stdout + run.stderr
        assert "Warning" not in run.stdout + run.stderr, run.stdout + run.stderr
        sys.path.insert(0, str(folder))
        made[text] = importlib.import_module(PACKAGE)
        return made[text]

    yield generate
    if made:
        sys.path.remove(str(folder))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


async def _served_document(server: TestServer) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.make_url("/api/docs/openapi.json")) as response,
    ):
        assert response.status == 200
        return await response.json()


@pytest.fixture
async def server(aiohttp_server, database_url: str, provider: Provider, key: Key) -> TestServer:
    """The service checking the tokens of a provider of the test's own (§5)."""
    tokens = Tokens(SigningKeys(provider.issuer), "usersvc")
    return await aiohttp_server(create_app(database_url, tokens=tokens))


@pytest.fixture
def token(provider: Provider, key: Key) -> str:
    """A token with every scope, as the provider would issue it."""
    return sign(key, claims(iss=provider.issuer))


@pytest.fixture
async def document(server: TestServer) -> dict[str, Any]:
    return await _discovered_document(server)


async def _discovered_document(server: TestServer) -> dict[str, Any]:
    """The served document, once discovery has named the provider's token URL (the
    client credentials scheme from then on)."""
    for _ in range(100):
        document = await _served_document(server)
        if "oauth2" in document["components"].get("securitySchemes", {}):
            return document
        await asyncio.sleep(0.05)
    raise AssertionError("discovery never named the token URL")


@pytest.fixture
async def generated(document: dict[str, Any], generate_client: Callable) -> ModuleType:
    return generate_client(document)


class Lifecycle:
    """The generated package, its client on the server, and the codes seen so far."""

    def __init__(
        self, package: ModuleType, base_url: str, document: dict[str, Any], token: str
    ) -> None:
        self.document = document
        self.models = importlib.import_module(f"{PACKAGE}.models")
        self.healthcheck = importlib.import_module(f"{PACKAGE}.api.health.healthcheck")
        # The document's bearer scheme makes the generator write an AuthenticatedClient.
        self.client = package.AuthenticatedClient(
            base_url=base_url, token=token, raise_on_unexpected_status=True
        )
        self.codes: set[str] = set()

    def operation(self, name: str) -> ModuleType:
        return importlib.import_module(f"{PACKAGE}.api.users.{name}")

    async def ok(self, name: str, status: int, **kwargs: Any) -> Any:
        response = await self.operation(name).asyncio_detailed(client=self.client, **kwargs)
        assert response.status_code == status, response.content
        self.headers = response.headers
        parsed = response.parsed
        assert parsed.status == status
        return parsed

    async def fails(self, name: str, status: int, code: str, **kwargs: Any) -> Any:
        """The parsed error envelope of ``name`` (its own class), with this code."""
        response = await self.operation(name).asyncio_detailed(client=self.client, **kwargs)
        assert response.status_code == status, response.content
        parsed = response.parsed
        envelope = getattr(self.models, self.envelope(name, status))
        assert isinstance(parsed, envelope), parsed
        assert parsed.status == status
        assert parsed.error.title == "Error occurred"
        assert parsed.error.data.code.value == code  # a member of the operation's code enum
        assert parsed.error.data.message
        self.codes.add(code)
        return parsed

    def envelope(self, name: str, status: int) -> str:
        """The name of the error envelope the document gives this status of this operation."""
        (operation,) = [
            operation
            for item in self.document["paths"].values()
            for operation in item.values()
            if operation["operationId"] == name
        ]
        schema = operation["responses"][str(status)]["content"]["application/json"]["schema"]
        names = [s["$ref"].rsplit("/", 1)[-1] for s in schema.get("oneOf", [schema])]
        (found,) = [n for n in names if n.startswith(f"Error{status}")]
        return found


async def test_a_generated_client_drives_the_whole_lifecycle(
    server: TestServer, generated: ModuleType, document: dict[str, Any], token: str
):
    life = Lifecycle(generated, str(server.make_url("")), document, token)
    m = life.models
    # Without the token: the 401 envelope of the operation, parsed as its own class.
    async with generated.Client(base_url=str(server.make_url(""))) as anonymous:
        refused = await life.operation("create_user").asyncio_detailed(
            client=anonymous, body=m.CreateUserBody(phone=79161234599, email=None,
                                                    firstname="A", lastname="B",
                                                    middlename=None)
        )  # fmt: skip
        assert refused.status_code == 401
        assert isinstance(refused.parsed, getattr(m, life.envelope("create_user", 401)))
        assert refused.parsed.error.data.code.value == "unauthenticated"
    async with life.client:
        health = await life.healthcheck.asyncio(client=life.client)
        assert isinstance(health, m.Healthy)
        assert health.result.status.value == "OK"

        body = m.CreateUserBody(
            phone=79161234501,
            email="Generated.Client@Example.COM",
            firstname="Ivan",
            lastname="Petrov",
            middlename=None,
        )
        created = await life.ok("create_user", 201, body=body)
        assert isinstance(created, m.Created)
        assert isinstance(created.result, UUID)
        user_id = created.result

        found = await life.ok("get_user", 200, user_id=user_id)
        assert isinstance(found, m.UserFound)
        user = found.result
        assert isinstance(user, m.User)
        assert user.user_id == user_id
        assert user.status == m.UserStatus.ACTIVE
        assert isinstance(user.created_at, datetime)
        assert user.created_at.tzinfo is not None
        assert user.deleted_at is None
        assert user.email == "Generated.Client@example.com"  # the domain lower-cased
        assert user.phone == 79161234501
        assert user.middlename is None
        assert user.linked_accounts == []
        assert user.version == 1
        assert life.headers["ETag"] == '"1"'

        # create_user's failures
        await life.fails("create_user", 409, "user_already_exists", body=body)
        bad_email = m.CreateUserBody(
            phone=None, email="not an email", firstname="A", lastname="B", middlename=None
        )
        await life.fails("create_user", 422, "invalid_contacts", body=bad_email)
        blank = m.CreateUserBody(
            phone=79161234502, email=None, firstname="  ", lastname="B", middlename=None
        )
        await life.fails("create_user", 422, "invalid_fullname", body=blank)
        # A body of the wrong type is request validation: the `detail` list, parsed.
        wrong = m.CreateUserBody(
            phone="x", email=None, firstname="A", lastname="B", middlename=None
        )
        response = await life.operation("create_user").asyncio_detailed(
            client=life.client, body=wrong
        )
        assert response.status_code == 422
        assert isinstance(response.parsed, m.ValidationError)
        (issue,) = response.parsed.detail
        assert (issue.loc, issue.type_) == (["body", "phone"], "int_type")

        # names and contacts, the first change only if no one changed the user since
        rename = m.ChangeFullnameBody(
            user_id=user_id, firstname="Pyotr", lastname="Ivanov", middlename="Ilyich"
        )
        done = await life.ok("change_fullname", 200, body=rename, if_match='"1"')
        assert isinstance(done, m.Done)
        assert done.result is None
        assert life.headers["ETag"] == '"2"'
        await life.fails("change_fullname", 412, "precondition_failed", body=rename, if_match='"1"')
        other = await life.ok(
            "create_user",
            201,
            body=m.CreateUserBody(
                phone=None, email="other@example.com", firstname="O", lastname="T", middlename=None
            ),
        )
        # look-ups by contact and the listing, a page at a time
        by_email = await life.ok("find_users", 200, email="generated.client@EXAMPLE.com")
        assert isinstance(by_email, m.UsersFound)
        assert [u.user_id for u in by_email.result.users] == [user_id]
        assert by_email.result.next_cursor is None
        by_phone = await life.ok("find_users", 200, phone=79161234501)
        assert [u.user_id for u in by_phone.result.users] == [user_id]
        first = await life.ok("find_users", 200, limit=1)
        assert [u.user_id for u in first.result.users] == [user_id]
        assert isinstance(first.result.next_cursor, str)
        rest = await life.ok("find_users", 200, limit=1, cursor=first.result.next_cursor)
        assert [u.user_id for u in rest.result.users] == [other.result]
        assert rest.result.next_cursor is None
        # many by id in one request: in the order asked, each once, unknown ids left out
        asked = [other.result, uuid4(), user_id, other.result]
        batch = await life.ok("find_users", 200, id=asked)
        assert [u.user_id for u in batch.result.users] == [other.result, user_id]
        assert isinstance(batch.result.users[1], m.User)
        # a GET that names the version the client has: 304, no body; a stale one: 200
        fresh = await life.ok("get_user", 200, user_id=user_id)
        version = fresh.result.version
        current = life.headers["ETag"]
        assert current == f'"{version}"'
        unchanged = await life.operation("get_user").asyncio_detailed(
            client=life.client, user_id=user_id, if_none_match=current
        )
        assert unchanged.status_code == 304
        assert (unchanged.content, unchanged.parsed) == (b"", None)
        assert unchanged.headers["ETag"] == current
        stale = await life.ok("get_user", 200, user_id=user_id, if_none_match=f'"{version - 1}"')
        assert stale.result.version == version
        await life.ok(
            "change_contacts",
            200,
            body=m.ChangeContactsBody(user_id=user_id, email=None, phone=79161234503),
        )
        await life.fails(
            "change_contacts",
            409,
            "user_already_exists",
            body=m.ChangeContactsBody(user_id=user_id, email="other@example.com", phone=None),
        )

        # linked accounts
        link = m.LinkSocialNetworkBody(
            user_id=user_id,
            social_network=m.LinkSocialNetworkBodySocialNetwork.VK,
            connection_link="vk.com/generated",
            connected_for="login",
        )
        linked = await life.ok("link_social_network", 201, body=link)
        assert isinstance(linked, m.Created)
        account_id = linked.result
        # the user behind a linked account, its link written another way
        holder = await life.ok(
            "find_users",
            200,
            social_network=m.FindUsersSocialNetwork.VK,
            connection_link="http://www.vk.com/generated/",
        )
        assert [u.user_id for u in holder.result.users] == [user_id]
        await life.fails("link_social_network", 409, "linked_account_already_exists", body=link)
        await life.fails(
            "link_social_network",
            422,
            "link_not_of_social_network",
            body=m.LinkSocialNetworkBody(
                user_id=user_id,
                social_network=m.LinkSocialNetworkBodySocialNetwork.TELEGRAM,
                connection_link="https://vk.com/generated",
                connected_for=None,
            ),
        )
        await life.fails(
            "link_social_network",
            422,
            "invalid_connection_reason",
            body=m.LinkSocialNetworkBody(
                user_id=user_id,
                social_network=m.LinkSocialNetworkBodySocialNetwork.TELEGRAM,
                connection_link="https://t.me/generated",
                connected_for="x" * 501,
            ),
        )
        await life.ok(
            "change_social_network_connection_reason",
            200,
            body=m.ChangeConnectionReasonBody(
                user_id=user_id, linked_account_id=account_id, reason="notifications"
            ),
        )
        await life.fails(
            "change_social_network_connection_reason",
            404,
            "linked_account_not_found",
            body=m.ChangeConnectionReasonBody(
                user_id=user_id, linked_account_id=uuid4(), reason=None
            ),
        )
        user = (await life.ok("get_user", 200, user_id=user_id)).result
        assert (user.firstname, user.lastname, user.middlename) == ("Pyotr", "Ivanov", "Ilyich")
        assert (user.email, user.phone) == (None, 79161234503)
        (account,) = user.linked_accounts
        assert isinstance(account, m.LinkedAccount)
        assert account.linked_account_id == account_id
        assert account.social_network == m.LinkedAccountSocialNetwork.VK
        assert account.connection_link == "https://vk.com/generated"
        assert account.connected_for == "notifications"
        assert isinstance(account.connected_at, datetime)
        # fullname, contacts, link, reason: four changes after creation
        assert user.version == 5
        await life.ok(
            "unlink_social_network",
            200,
            body=m.UnlinkSocialNetworkBody(user_id=user_id, linked_account_id=account_id),
        )
        await life.fails(
            "unlink_social_network",
            404,
            "linked_account_not_found",
            body=m.UnlinkSocialNetworkBody(user_id=user_id, linked_account_id=account_id),
        )

        # deletion for a while, and recovery
        only_id = m.DeleteUserTemporarilyBody(user_id=user_id)
        await life.ok("delete_user_temporarily", 200, body=only_id)
        assert (await life.ok("get_user", 200, user_id=user_id)).result.status == (
            m.UserStatus.DELETED
        )
        await life.fails("delete_user_temporarily", 400, "user_already_deleted", body=only_id)
        await life.fails(
            "change_fullname",
            400,
            "user_deleted",
            body=m.ChangeFullnameBody(
                user_id=user_id, firstname="A", lastname="B", middlename=None
            ),
        )
        await life.ok("recover_user", 200, body=m.RecoverUserBody(user_id=user_id))
        await life.fails(
            "recover_user", 400, "user_already_active", body=m.RecoverUserBody(user_id=user_id)
        )

        # deletion for good
        gone = m.DeleteUserPermanentlyBody(user_id=user_id)
        await life.ok("delete_user_permanently", 200, body=gone)
        await life.fails("get_user", 404, "user_not_found", user_id=user_id)
        await life.fails("delete_user_permanently", 404, "user_not_found", body=gone)
        await life.ok(
            "delete_user_permanently", 200, body=m.DeleteUserPermanentlyBody(user_id=other.result)
        )

    assert life.codes == {info.code for info in FAILURES.values()}


async def test_a_generated_client_reads_a_lost_database_as_a_503_envelope(
    aiohttp_server, generate_client: Callable, provider: Provider, key: Key
):
    tokens = Tokens(SigningKeys(provider.issuer), "usersvc")
    server = await aiohttp_server(create_app(UNREACHABLE, pool_min_size=0, tokens=tokens))
    package = generate_client(await _discovered_document(server))
    healthcheck = importlib.import_module(f"{PACKAGE}.api.health.healthcheck")
    models = importlib.import_module(f"{PACKAGE}.models")
    async with package.Client(base_url=str(server.make_url(""))) as client:
        response = await healthcheck.asyncio_detailed(client=client)
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert isinstance(response.parsed, models.Error503ServiceUnavailable)
    assert response.parsed.status == 503
    code = models.Error503ServiceUnavailableErrorDataCode.SERVICE_UNAVAILABLE
    assert response.parsed.error.data.code == code


async def test_a_generated_client_retries_safely_with_an_idempotency_key(
    server: TestServer, generated: ModuleType, document: dict[str, Any], token: str
):
    life = Lifecycle(generated, str(server.make_url("")), document, token)
    m = life.models
    async with life.client:
        body = m.CreateUserBody(
            phone=79161234511, email=None, firstname="Ivan", lastname="Petrov", middlename=None
        )
        first = await life.ok("create_user", 201, body=body, idempotency_key="generated-1")
        assert "Idempotent-Replayed" not in life.headers
        again = await life.ok("create_user", 201, body=body, idempotency_key="generated-1")
        assert again.result == first.result
        assert life.headers["Idempotent-Replayed"] == "true"
        other = m.CreateUserBody(
            phone=79161234512, email=None, firstname="Ivan", lastname="Petrov", middlename=None
        )
        await life.fails(
            "create_user", 422, "idempotency_key_reused", body=other, idempotency_key="generated-1"
        )

        rename = m.ChangeFullnameBody(
            user_id=first.result, firstname="Pyotr", lastname="Ivanov", middlename=None
        )
        for _ in range(2):
            done = await life.ok(
                "change_fullname", 200, body=rename, if_match='"1"', idempotency_key="rename-1"
            )
            assert done.result is None
            assert life.headers["ETag"] == '"2"'
        assert life.headers["Idempotent-Replayed"] == "true"
        user = (await life.ok("get_user", 200, user_id=first.result)).result
        assert (user.firstname, user.version) == ("Pyotr", 2)
