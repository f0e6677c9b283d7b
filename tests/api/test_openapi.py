"""The OpenAPI document as client tools read it: valid OpenAPI 3, every operation named
after the contract, every answer described, the error codes from the failure table."""

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from tests.api.support import API
from usersvc.domain import failures as F
from usersvc.http.app import COMMANDS, create_app
from usersvc.http.failures import (
    FAILURES,
    IDEMPOTENT,
    INTERNAL_ERROR,
    METHOD_NOT_ALLOWED,
    NOT_MIGRATED,
    SERVICE_UNAVAILABLE,
    SHUTTING_DOWN,
)
from usersvc.http.openapi import ANY_REQUEST, WITH_A_BODY

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


def test_every_response_but_a_304_has_a_json_schema_and_a_304_has_no_body(
    document: dict[str, Any],
):
    for key, operation in _operations(document).items():
        for status, response in operation["responses"].items():
            if status == "304":
                assert "content" not in response, key
            else:
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
    assert created["properties"]["status"]["enum"] == [201]
    linked = operations[("post", API + "/users/link-social-network")]["responses"]["201"]
    assert _json_schema(document, linked) == created
    done = _json_schema(
        document, operations[("put", API + "/users/recovery-user")]["responses"]["200"]
    )
    # null and nothing else, with a type: generators drop a schema that has none.
    result = done["properties"]["result"]
    assert (result["type"], result["enum"], result["nullable"]) == ("string", [None], True)
    assert done["properties"]["status"]["enum"] == [200]
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
    parameters = document["paths"][API + "/users/{user_id}"]["get"]["parameters"]
    (parameter,) = [p for p in parameters if p["in"] == "path"]
    assert parameter["schema"]["format"] == "uuid"


def _error_envelopes(document: dict[str, Any], response: dict[str, Any]) -> list[dict[str, Any]]:
    """The error envelope(s) a response may carry (a 422's besides the detail list)."""
    schema = response["content"]["application/json"]["schema"]
    found = [_resolve(document, s) for s in schema.get("oneOf", [schema])]
    return [s for s in found if "error" in s.get("properties", {})]


def _answers(operation: dict[str, Any]) -> dict[int, set[str]]:
    """What the operation may answer, by status: the codes of the failure table."""
    name = operation["operationId"]
    if name == "healthcheck":
        answers = [INTERNAL_ERROR, SERVICE_UNAVAILABLE]
    elif name == "livez":
        answers = []
    elif name == "readyz":
        answers = [SERVICE_UNAVAILABLE, SHUTTING_DOWN, NOT_MIGRATED]
    elif name == "find_users":
        answers = list(ANY_REQUEST)
    elif name == "get_user":
        answers = [FAILURES[F.UserNotFound], METHOD_NOT_ALLOWED, *ANY_REQUEST]
    else:
        (command,) = [c for c in COMMANDS if c.operation_id == name]
        answers = [FAILURES[f] for f in command.failures]
        answers += [*IDEMPOTENT, *WITH_A_BODY, *ANY_REQUEST]
    by_status: dict[int, set[str]] = {}
    for answer in answers:
        by_status.setdefault(answer.status, set()).add(answer.code)
    return by_status


def test_each_error_status_has_its_own_envelope_with_only_the_codes_of_that_status(
    document: dict[str, Any],
):
    for key, operation in _operations(document).items():
        expected = _answers(operation)
        errors = {
            int(status): _error_envelopes(document, response)
            for status, response in operation["responses"].items()
            if int(status) >= 400
        }
        assert {s for s, envelopes in errors.items() if envelopes} == set(expected), key
        for status, codes in expected.items():
            (envelope,) = errors[status]
            assert envelope["properties"]["status"] == {
                "type": "integer",
                "enum": [status],
                "description": "the HTTP status",
            }, key
            error = envelope["properties"]["error"]
            assert error["properties"]["title"] == {"type": "string", "enum": ["Error occurred"]}
            assert set(error["properties"]["data"]["properties"]["code"]["enum"]) == codes, key
            for code in codes:
                assert f"`{code}`" in operation["responses"][str(status)]["description"], key


def test_a_404_of_change_fullname_is_user_not_found_alone(document: dict[str, Any]):
    responses = document["paths"][API + "/users/change-fullname"]["put"]["responses"]
    (envelope,) = _error_envelopes(document, responses["404"])
    data = envelope["properties"]["error"]["properties"]["data"]
    assert data["properties"]["code"]["enum"] == ["user_not_found"]
    unlink = document["paths"][API + "/users/unlink-social-network"]["delete"]["responses"]
    (envelope,) = _error_envelopes(document, unlink["404"])
    data = envelope["properties"]["error"]["properties"]["data"]
    assert data["properties"]["code"]["enum"] == ["user_not_found", "linked_account_not_found"]


def test_every_error_envelope_example_is_valid_and_shows_its_status(document: dict[str, Any]):
    schemas = document["components"]["schemas"]
    envelopes = {name: s for name, s in schemas.items() if name.startswith("Error")}
    assert envelopes
    for name, schema in envelopes.items():
        example = schema["example"]
        OAS30Validator(schema).validate(example)
        status = schema["properties"]["status"]["enum"][0]
        assert example["status"] == status, name
        first = schema["properties"]["error"]["properties"]["data"]["properties"]["code"]["enum"][0]
        assert example["error"]["data"]["code"] == first, name
        assert name.startswith(f"Error{status}"), name


def test_a_422_is_a_detail_list_or_where_the_domain_refuses_an_envelope(
    document: dict[str, Any],
):
    operations = _operations(document)
    create = operations[("post", API + "/users/create_user")]["responses"]["422"]
    one_of = create["content"]["application/json"]["schema"]["oneOf"]
    names = {schema["$ref"].rsplit("/", 1)[-1] for schema in one_of}
    assert names == {
        "ValidationError",
        "Error422InvalidFullnameOrInvalidContactsOrIdempotencyKeyReused",
    }
    # Every command may answer idempotency_key_reused: an envelope beside the detail list.
    recover = operations[("put", API + "/users/recovery-user")]["responses"]["422"]
    one_of = recover["content"]["application/json"]["schema"]["oneOf"]
    names = {schema["$ref"].rsplit("/", 1)[-1] for schema in one_of}
    assert names == {"ValidationError", "Error422IdempotencyKeyReused"}
    assert "`idempotency_key_reused`" in recover["description"]


def test_the_health_check_takes_no_input_and_declares_no_422(document: dict[str, Any]):
    responses = document["paths"][API + "/healthcheck"]["post"]["responses"]
    assert set(responses) == {"200", "500", "503"}


def test_the_permanent_delete_promises_neither_an_etag_nor_a_400(document: dict[str, Any]):
    operation = document["paths"][API + "/users/delete-user-permanently"]["delete"]
    assert "400" not in operation["responses"]
    assert "ETag" not in operation["responses"]["200"]["headers"]
    assert "ETag" not in operation["description"]
    assert "400" not in operation["description"]
    for command in COMMANDS:
        if command.operation_id == "delete_user_permanently":
            continue
        operation = _operations(document)[(command.method.lower(), API + command.path)]
        assert (
            "ETag"
            in operation["responses"][str(201 if "201" in operation["responses"] else 200)][
                "headers"
            ]
        )
        assert "`ETag`" in operation["description"], command.operation_id


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


def test_the_get_user_answers(document: dict[str, Any]):
    operation = document["paths"][API + "/users/{user_id}"]["get"]
    responses = operation["responses"]
    assert set(responses) == {"200", "304", "404", "405", "422", "500", "503"}
    assert "If-None-Match" in {p["name"] for p in operation["parameters"]}
    for status in ("200", "304"):
        assert "ETag" in responses[status]["headers"]
    assert "Allow" in responses["405"]["headers"]


def test_the_find_users_query_takes_ids_as_a_repeated_key(document: dict[str, Any]):
    parameters = {p["name"]: p for p in document["paths"][API + "/users"]["get"]["parameters"]}
    assert set(parameters) == {
        "email",
        "phone",
        "id",
        "social_network",
        "connection_link",
        "status",
        "limit",
        "cursor",
    }
    ids = parameters["id"]
    assert (ids["style"], ids["explode"]) == ("form", True)
    assert ids["schema"]["items"]["format"] == "uuid"
    assert (ids["schema"]["minItems"], ids["schema"]["maxItems"]) == (1, 100)


def test_every_response_declares_x_request_id_and_each_header_is_a_component(
    document: dict[str, Any],
):
    headers = document["components"]["headers"]
    assert set(headers) >= {"X-Request-ID", "ETag", "Idempotent-Replayed", "Retry-After", "Allow"}
    for key, operation in _operations(document).items():
        for status, response in operation["responses"].items():
            assert "X-Request-ID" in response["headers"], (key, status)
            for name, header in response["headers"].items():
                assert header == {"$ref": f"#/components/headers/{name}"}, (key, status)
                assert name in headers


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
