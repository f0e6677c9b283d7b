"""The OpenAPI document as client tools read it: valid OpenAPI 3, every operation named
after the contract, every answer described, the error codes from the failure table."""

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from tests.api.support import API
from usersvc.http.app import COMMANDS, create_app
from usersvc.http.failures import FAILURES

OPERATIONS = {
    ("post", API + "/healthcheck"): "healthcheck",
    ("post", API + "/users/create_user"): "create_user",
    ("put", API + "/users/recovery-user"): "recover_user",
    ("delete", API + "/users/delete-user-permanently"): "delete_user_permanently",
    ("delete", API + "/users/delete-user-temporarily"): "delete_user_temporarily",
    ("put", API + "/users/change-fullname"): "change_fullname",
    ("put", API + "/users/change-contacts"): "change_contacts",
    ("post", API + "/users/link-social-network"): "link_social_network",
    ("delete", API + "/users/unlink-social-network"): "unlink_social_network",
    (
        "put",
        API + "/users/change-social-network-connection-reason",
    ): "change_social_network_connection_reason",
    ("get", API + "/users/{user_id}"): "get_user",
    ("get", API + "/users"): "find_users",  # beyond the contract: look-ups and listing
    ("get", "/livez"): "livez",  # beyond the contract (§6): the probes, at the root
    ("get", "/readyz"): "readyz",
}
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/nope"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture
async def api(aiohttp_client) -> TestClient:
    """The app on a database it never reaches: the document and the docs page need none."""
    return await aiohttp_client(create_app(UNREACHABLE, pool_min_size=0))


@pytest.fixture
async def document(api: TestClient) -> dict[str, Any]:
    response = await api.get("/api/docs/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    return await response.json()


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _json_schema(document: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    return _resolve(document, response["content"]["application/json"]["schema"])


def _error_codes(document: dict[str, Any], envelope: dict[str, Any]) -> set[str]:
    error = _resolve(document, envelope["properties"]["error"])
    data = _resolve(document, error["properties"]["data"])
    return set(data["properties"]["code"]["enum"])


def test_the_document_is_valid_openapi_3(document: dict[str, Any]):
    assert document["openapi"].startswith("3.")
    validate(document)  # raises on the first problem


def test_every_operation_is_the_contracts_and_has_its_operation_id(document: dict[str, Any]):
    operations = _operations(document)
    assert {key: op.get("operationId") for key, op in operations.items()} == OPERATIONS


def test_no_head_operation_beside_get(document: dict[str, Any]):
    assert "head" not in document["paths"][API + "/users/{user_id}"]


async def test_a_head_request_is_refused_as_the_document_says(api: TestClient):
    response = await api.head(f"{API}/users/00000000-0000-4000-8000-000000000000")
    assert response.status == 405
    assert response.headers["Allow"] == "GET"


def test_there_are_servers_and_no_swagger_2_keys(document: dict[str, Any]):
    assert document["servers"]
    assert "swagger" not in document
    assert "display_configurations" not in document
    for operation in _operations(document).values():
        assert not {"produces", "consumes"} & set(operation)


def test_every_response_has_a_json_schema(document: dict[str, Any]):
    for key, operation in _operations(document).items():
        for status, response in operation["responses"].items():
            assert "schema" in response["content"]["application/json"], (key, status)


def test_commands_take_a_required_json_body_with_examples(document: dict[str, Any]):
    operations = _operations(document)
    for command in COMMANDS:
        operation = operations[(command.method.lower(), API + command.path)]
        body = operation["requestBody"]
        assert body["required"] is True
        schema = _resolve(document, body["content"]["application/json"]["schema"])
        assert set(schema["required"]) == set(schema["properties"])
        assert all("example" in field for field in schema["properties"].values()), command


def test_success_envelopes_are_typed_per_operation(document: dict[str, Any]):
    operations = _operations(document)
    created = _json_schema(
        document, operations[("post", API + "/users/create_user")]["responses"]["201"]
    )
    assert created["properties"]["result"]["format"] == "uuid"
    linked = operations[("post", API + "/users/link-social-network")]["responses"]["201"]
    assert _json_schema(document, linked) == created
    done = _json_schema(
        document, operations[("put", API + "/users/recovery-user")]["responses"]["200"]
    )
    assert done["properties"]["result"] == {"enum": [None], "nullable": True}
    found = _json_schema(
        document, operations[("get", API + "/users/{user_id}")]["responses"]["200"]
    )
    user = _resolve(document, found["properties"]["result"])
    assert user["properties"]["user_id"]["format"] == "uuid"
    assert user["properties"]["created_at"]["format"] == "date-time"
    assert user["properties"]["email"]["format"] == "email"
    assert user["properties"]["status"] == {
        "type": "string",
        "enum": ["active", "deleted"],
        "description": user["properties"]["status"]["description"],
    }
    account = _resolve(document, user["properties"]["linked_accounts"]["items"])
    assert account["properties"]["social_network"]["type"] == "string"
    assert set(user["required"]) == set(user["properties"])


def test_the_path_user_id_is_a_uuid(document: dict[str, Any]):
    (parameter,) = document["paths"][API + "/users/{user_id}"]["get"]["parameters"]
    assert parameter["in"] == "path"
    assert parameter["schema"]["format"] == "uuid"


def test_each_error_status_lists_exactly_the_codes_the_failure_table_gives_it(
    document: dict[str, Any],
):
    operations = _operations(document)
    for command in COMMANDS:
        operation = operations[(command.method.lower(), API + command.path)]
        responses = operation["responses"]
        expected = {FAILURES[failure].code for failure in command.failures}
        expected |= {
            "payload_too_large",
            "unsupported_media_type",
            "internal_error",
            "service_unavailable",
            "idempotency_key_reused",
            "request_in_progress",
        }
        envelope = _json_schema(document, responses["500"])
        assert _error_codes(document, envelope) == expected, command.operation_id
        for failure in command.failures:
            info = FAILURES[failure]
            assert f"`{info.code}`" in responses[str(info.status)]["description"]
        assert {"409", "413", "415", "422", "500", "503"} <= set(responses)
        assert "Retry-After" in responses["503"]["headers"]


def test_a_422_is_a_detail_list_or_where_the_domain_refuses_an_envelope(
    document: dict[str, Any],
):
    operations = _operations(document)
    create = operations[("post", API + "/users/create_user")]["responses"]["422"]
    one_of = create["content"]["application/json"]["schema"]["oneOf"]
    names = {schema["$ref"].rsplit("/", 1)[-1] for schema in one_of}
    assert names == {"ValidationError", "CreateUserError"}
    # Every command may answer idempotency_key_reused: an envelope beside the detail list.
    recover = operations[("put", API + "/users/recovery-user")]["responses"]["422"]
    one_of = recover["content"]["application/json"]["schema"]["oneOf"]
    names = {schema["$ref"].rsplit("/", 1)[-1] for schema in one_of}
    assert names == {"ValidationError", "RecoverUserError"}
    assert "`idempotency_key_reused`" in recover["description"]


def test_every_command_takes_an_idempotency_key_and_documents_its_answers(
    document: dict[str, Any],
):
    operations = _operations(document)
    for command in COMMANDS:
        operation = operations[(command.method.lower(), API + command.path)]
        (key,) = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
        assert key["in"] == "header", command.operation_id
        assert key["required"] is False
        assert key["schema"]["minLength"] == 1
        assert key["schema"]["maxLength"] == 255
        assert re.fullmatch(key["schema"]["pattern"], "".join(map(chr, range(0x21, 0x7F))))
        assert not re.fullmatch(key["schema"]["pattern"], "a b")
        assert "24 hours" in key["description"]
        responses = operation["responses"]
        assert "`request_in_progress`" in responses["409"]["description"]
        assert "`idempotency_key_reused`" in responses["422"]["description"]
        if command.operation_id != "create_user":
            assert "If-Match" in {p["name"] for p in operation["parameters"]}
    for path in (API + "/users/{user_id}", API + "/users", API + "/healthcheck"):
        for operation in document["paths"][path].values():
            names = {p["name"] for p in operation.get("parameters", [])}
            assert "Idempotency-Key" not in names, path


def test_the_get_user_error_codes(document: dict[str, Any]):
    responses = document["paths"][API + "/users/{user_id}"]["get"]["responses"]
    assert set(responses) == {"200", "404", "422", "500", "503"}
    envelope = _json_schema(document, responses["404"])
    assert _error_codes(document, envelope) == {
        "user_not_found",
        "internal_error",
        "service_unavailable",
    }


async def test_the_docs_page_is_swagger_ui_served_by_the_app_itself(api: TestClient):
    response = await api.get("/api/docs")
    assert response.status == 200
    assert response.content_type == "text/html"
    page = await response.text()
    assert "swagger-ui" in page.lower()
    assert '"/api/docs/openapi.json"' in page
    # No online validator badge: nothing on the page reaches beyond this service.
    assert "validatorUrl: null" in page
    assert not re.search(r"(https?:)?//[a-z]", page.replace("<!DOCTYPE html>", ""))
    assets = re.findall(r"\b(?:src|href)=\"([^\"]+)\"", page)
    assert len(assets) >= 4, page
    for src in assets:
        asset = await api.get(src)
        assert asset.status == 200, src
        assert len(await asset.read()) > 500, src


def test_the_probes_are_documented_with_what_their_503_means(document: dict[str, Any]):
    operations = _operations(document)
    for path in ("/livez", "/readyz"):
        operation = operations[("get", path)]
        assert operation["tags"] == ["health"]
        ok = _json_schema(document, operation["responses"]["200"])
        assert _resolve(document, ok["properties"]["result"])["properties"]["status"]["enum"] == [
            "OK"
        ]
    unavailable = operations[("get", "/readyz")]["responses"]["503"]["description"]
    assert "shutting down" in unavailable
    assert "migrate" in unavailable
    assert "database is unavailable" in unavailable
