"""The contract's envelopes (§1): success, domain error, request validation error."""

from collections.abc import Mapping, Sequence

from aiohttp import web

from usersvc.http.failures import ErrorInfo
from usersvc.serialization import dumps

ERROR_TITLE = "Error occurred"  # the contract's: the same in every error envelope


def _json(payload: object, status: int, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=dumps(payload), status=status, content_type="application/json", headers=headers
    )


def success(
    result: object = None, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return _json({"status": status, "result": result}, status, headers)


def error(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    return _json(
        {
            "status": status,
            "error": {"title": ERROR_TITLE, "data": {"message": message, "code": code}},
        },
        status,
        headers,
    )


def answer(info: ErrorInfo, headers: Mapping[str, str] | None = None) -> web.Response:
    """An error envelope straight from the failure table."""
    return error(info.status, info.code, info.message, headers)


def invalid(detail: Sequence[Mapping[str, object]]) -> web.Response:
    """422 in FastAPI's shape: one entry per problem, all problems at once."""
    return _json({"detail": list(detail)}, 422)
