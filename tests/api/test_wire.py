"""§1: the wire conventions that are not one endpoint's: routing errors, oversize bodies,
the health check and a lost database. (The OpenAPI document: test_openapi.py.)"""

from aiohttp.test_utils import TestClient

from tests.api.support import (
    API,
    call,
    call_raw,
    expect_error,
    expect_result,
    user_body,
)
from usersvc.http.app import SERVER, create_app

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/nope"


async def test_an_unknown_route_is_a_404_envelope_not_found(api: TestClient):
    await expect_error(await api.get(API + "/nope"), 404, "not_found")
    await expect_error(await api.delete(API + "/nope", json={}), 404, "not_found")
    await expect_error(await api.post(API + "/users/create_user/x", json={}), 404, "not_found")
    await expect_error(await api.get("/"), 404, "not_found")


async def test_a_path_below_a_user_is_an_unknown_route(api: TestClient):
    response = await api.get(f"{API}/users/00000000-0000-4000-8000-000000000000/extra")
    await expect_error(response, 404, "not_found")


async def test_a_wrong_method_is_a_405_envelope_with_an_allow_header(api: TestClient):
    response = await api.post(API + "/users/recovery-user", json={})
    await expect_error(response, 405, "method_not_allowed")
    assert "PUT" in response.headers["Allow"]


async def test_a_wrong_method_on_create_user_is_a_405_naming_post(api: TestClient):
    response = await api.put(API + "/users/create_user", json=user_body())
    await expect_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


async def test_get_on_the_healthcheck_is_405(api: TestClient):
    response = await api.get(API + "/healthcheck")
    await expect_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


async def test_the_healthcheck_answers_ok_while_the_database_answers(api: TestClient):
    result = await expect_result(await api.post(API + "/healthcheck"))
    assert isinstance(result, dict)
    assert result["status"] == "OK"


async def test_a_body_over_one_mebibyte_is_a_413_envelope_and_changes_nothing(
    api: TestClient, tables
):
    before = await tables()
    huge = user_body(firstname="a" * (1024 * 1024 + 10))
    response = await call(api, "create_user", huge)
    await expect_error(response, 413, "payload_too_large")
    assert await tables() == before


async def test_a_body_of_just_over_one_mebibyte_of_whitespace_is_413(api: TestClient):
    body = b"{}" + b" " * (1024 * 1024)
    response = await call_raw(api, "recovery_user", body)
    await expect_error(response, 413, "payload_too_large")


async def test_a_body_of_exactly_one_mebibyte_is_read(api: TestClient):
    body = b'{"user_id": "00000000-0000-4000-8000-000000000000"}'
    body += b" " * (1024 * 1024 - len(body))
    assert len(body) == 1024 * 1024
    response = await call_raw(api, "recovery_user", body)
    await expect_error(response, 404, "user_not_found")


async def test_a_chunked_body_over_one_mebibyte_is_413(api: TestClient):
    async def chunks():
        for _ in range(11):
            yield b" " * 100_000
        yield b"{}"

    response = await api.put(
        API + "/users/recovery-user",
        data=chunks(),
        headers={"Content-Type": "application/json"},  # else the client says octet-stream
    )
    await expect_error(response, 413, "payload_too_large")


async def test_an_unreachable_database_makes_the_healthcheck_a_503_with_retry_after(
    aiohttp_client,
):
    client = await aiohttp_client(create_app(UNREACHABLE, pool_min_size=0))
    response = await client.post(API + "/healthcheck")
    await expect_error(response, 503, "service_unavailable")
    assert response.headers["Retry-After"]


async def test_an_unreachable_database_makes_a_command_a_503_with_retry_after(aiohttp_client):
    client = await aiohttp_client(create_app(UNREACHABLE, pool_min_size=0))
    response = await call(client, "create_user", user_body())
    await expect_error(response, 503, "service_unavailable")
    assert response.headers["Retry-After"]
    response = await client.get(f"{API}/users/00000000-0000-4000-8000-000000000000")
    await expect_error(response, 503, "service_unavailable")
    assert response.headers["Retry-After"]


async def test_a_wrong_method_on_a_command_allows_only_the_commands_method(api: TestClient):
    """Not also GET: the user's GET route does not take a command's name for an id."""
    for method, path, allowed in (
        ("OPTIONS", "/users/change-contacts", "PUT"),
        ("GET", "/users/delete-user-permanently", "DELETE"),
        ("PATCH", "/users/create_user", "POST"),
    ):
        response = await api.request(method, API + path)
        await expect_error(response, 405, "method_not_allowed")
        assert response.headers["Allow"] == allowed


async def test_no_answer_names_the_server_software_or_its_version(api: TestClient):
    answers = [
        await api.post(API + "/healthcheck"),
        await call(api, "create_user", user_body()),
        await api.get(API + "/nope"),  # aiohttp's 404, made an envelope
        await api.post(API + "/users/recovery-user", json={}),  # 405
        await api.get(API + "/users/not-a-uuid"),  # 422
        await call_raw(api, "create_user", b"{", content_type="application/json"),
        await api.get("/metrics"),
        await api.get("/api/docs"),
        await api.get("/api/docs/openapi.json"),
    ]
    for response in answers:
        assert response.headers["Server"] == SERVER == "usersvc", response
        assert "python" not in response.headers["Server"].lower()


async def test_the_health_check_of_a_lost_database_names_no_server_version(aiohttp_client):
    client = await aiohttp_client(create_app(UNREACHABLE, pool_min_size=0))
    response = await client.post(API + "/healthcheck")
    assert response.status == 503
    assert response.headers["Server"] == SERVER
