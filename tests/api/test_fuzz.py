"""Any JSON body to any command: never a 5xx, always one of the contract's shapes (§1)."""

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.support import (
    BODY_KEYS,
    COMMANDS,
    assert_envelope,
    call_raw,
    create_user,
    link,
)

# Any text, lone surrogates and NUL included: JSON can carry them as \u escapes.
texts = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=10,
)
# Values a command might accept, so that examples get past request validation too.
plausible = st.sampled_from(
    [
        None,
        "",
        " ",
        "Ivan",
        "a@example.com",
        "A@EXAMPLE.COM",
        79161234567,
        79169876543,
        "vk",
        "telegram",
        "vk.com/durov",
        "https://t.me/x",
        "00000000-0000-4000-8000-000000000000",
    ]
)


def command_bodies(command: str) -> st.SearchStrategy[Any]:
    keys = BODY_KEYS[command]
    shaped = st.fixed_dictionaries(
        dict.fromkeys(keys, plausible | json_values),
        optional={"extra": json_values},
    )
    return json_values | shaped


SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture
async def known(api: TestClient) -> dict[str, str]:
    """A real user and account, so that some examples reach the command's own rules."""
    user_id = await create_user(api)
    account_id = await link(api, user_id, "telegram", "t.me/known")
    return {"user_id": user_id, "linked_account_id": account_id}


@pytest.mark.parametrize("command", list(COMMANDS))
@SETTINGS
@given(data=st.data(), use_known=st.booleans())
async def test_any_json_body_gets_a_contract_shaped_answer_and_never_a_5xx(
    api: TestClient, known: dict[str, str], command: str, data: st.DataObject, use_known: bool
):
    body = data.draw(command_bodies(command), label="body")
    if use_known and isinstance(body, dict):
        body.update({key: known[key] for key in known if key in body})
    raw = json.dumps(body).encode()
    response = await call_raw(api, command, raw)
    assert response.status < 500, await response.text()
    assert response.content_type == "application/json"
    assert_envelope(response.status, await response.json())
