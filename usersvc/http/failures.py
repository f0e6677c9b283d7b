"""The one table of every error answer: HTTP status, contract code and message.

Domain failures (by type) and the shell's own answers (routing, body size, media
type, an unavailable database, a bug, a request the HTTP parser cannot read) are
all here; the handlers, the middleware and the server (``usersvc.http.server``)
answer from it, and the OpenAPI document is written from it.
"""

from collections.abc import Mapping

from attrs import frozen

from usersvc.domain import failures as f


@frozen
class ErrorInfo:
    status: int
    code: str
    message: str
    # The headers this answer carries besides X-Request-ID (the document declares them).
    headers: tuple[str, ...] = ()


FAILURES: Mapping[type, ErrorInfo] = {
    f.UserNotFound: ErrorInfo(404, "user_not_found", "User not found"),
    f.UserAlreadyActive: ErrorInfo(400, "user_already_active", "User is already active"),
    f.UserAlreadyDeleted: ErrorInfo(
        400, "user_already_deleted", "User is already temporarily deleted"
    ),
    f.UserDeleted: ErrorInfo(400, "user_deleted", "User is temporarily deleted"),
    f.UserAlreadyExists: ErrorInfo(409, "user_already_exists", "User already exists"),
    f.InvalidContacts: ErrorInfo(422, "invalid_contacts", "Invalid contacts"),
    f.InvalidFullname: ErrorInfo(422, "invalid_fullname", "Invalid fullname"),
    f.LinkNotOfSocialNetwork: ErrorInfo(
        422, "link_not_of_social_network", "Connection link does not belong to the social network"
    ),
    f.InvalidConnectionReason: ErrorInfo(
        422, "invalid_connection_reason", "Invalid connection reason"
    ),
    f.LinkedAccountAlreadyExists: ErrorInfo(
        409, "linked_account_already_exists", "Linked account already exists"
    ),
    f.LinkedAccountNotFound: ErrorInfo(404, "linked_account_not_found", "Linked account not found"),
    f.PreconditionFailed: ErrorInfo(
        412, "precondition_failed", "The user has changed: If-Match does not name its version"
    ),
}


# The shell's answers: what no domain rule decides.
NOT_FOUND = ErrorInfo(404, "not_found", "Not found")
METHOD_NOT_ALLOWED = ErrorInfo(405, "method_not_allowed", "Method not allowed", ("Allow",))
REQUEST_TIMEOUT = ErrorInfo(408, "request_timeout", "The request body came too slowly")
PAYLOAD_TOO_LARGE = ErrorInfo(413, "payload_too_large", "Request body is larger than 1 MiB")
UNSUPPORTED_MEDIA_TYPE = ErrorInfo(
    415, "unsupported_media_type", "Request body must be JSON (application/json or +json)"
)
INTERNAL_ERROR = ErrorInfo(500, "internal_error", "Internal server error")
SERVICE_UNAVAILABLE = ErrorInfo(
    503, "service_unavailable", "The database is unavailable, try again later", ("Retry-After",)
)
# Idempotent retries (the Idempotency-Key header of every command).
IDEMPOTENCY_KEY_REUSED = ErrorInfo(
    422,
    "idempotency_key_reused",
    "This Idempotency-Key was used for another request (another body or If-Match)",
)
REQUEST_IN_PROGRESS = ErrorInfo(
    409,
    "request_in_progress",
    "A request with this Idempotency-Key is still running, retry later",
)
IDEMPOTENT = (IDEMPOTENCY_KEY_REUSED, REQUEST_IN_PROGRESS)
# The same code as a lost database: either way the client waits Retry-After and retries.
OVERLOADED = ErrorInfo(
    503, "service_unavailable", "The service is busy, try again later", ("Retry-After",)
)
# GET /readyz's other answers (§6): this process should not be sent requests.
SHUTTING_DOWN = ErrorInfo(
    503, "service_unavailable", "The service is shutting down", ("Retry-After",)
)
NOT_MIGRATED = ErrorInfo(
    503,
    "service_unavailable",
    "The database lacks migrations: run `usersvc migrate`",
    ("Retry-After",),
)

# Callers (§5). The body never says which check a token failed: the log does.
UNAUTHENTICATED = ErrorInfo(
    401,
    "unauthenticated",
    "A valid bearer token is required (Authorization: Bearer <token>)",
    ("WWW-Authenticate",),
)
INSUFFICIENT_SCOPE = ErrorInfo(
    403,
    "insufficient_scope",
    "The token does not grant the scope this operation needs",
    ("WWW-Authenticate",),
)
TOO_MANY_REQUESTS = ErrorInfo(
    429,
    "too_many_requests",
    "Too many requests from this caller, try again later",
    ("Retry-After",),
)
KEYS_UNAVAILABLE = ErrorInfo(
    503,
    "service_unavailable",
    "The token's signing key cannot be fetched now, try again later",
    ("Retry-After",),
)
# Past the bounds on open connections (usersvc.http.connections): answered before the
# request is read, and the connection closed.
TOO_MANY_CONNECTIONS = ErrorInfo(
    503, "service_unavailable", "Too many connections are open, try again later", ("Retry-After",)
)
REFUSED_CALLERS = (UNAUTHENTICATED, INSUFFICIENT_SCOPE, TOO_MANY_REQUESTS, KEYS_UNAVAILABLE)

# Requests aiohttp's HTTP parser refuses before the app sees them (answered by
# usersvc.http.server): the connection is closed after the answer.
BAD_REQUEST = ErrorInfo(400, "bad_request", "Malformed HTTP request")
HEADERS_TOO_LARGE = ErrorInfo(
    431,
    "request_header_fields_too_large",
    "Request header fields too large: a line over 8190 bytes, or over 128 headers",
)
MALFORMED = (BAD_REQUEST, HEADERS_TOO_LARGE)

# Answered to any request (by the middleware) and for every route (by aiohttp).
HTTP_ERRORS: Mapping[int, ErrorInfo] = {
    e.status: e
    for e in (
        NOT_FOUND,
        METHOD_NOT_ALLOWED,
        REQUEST_TIMEOUT,
        PAYLOAD_TOO_LARGE,
        UNSUPPORTED_MEDIA_TYPE,
    )
}


def describe(failure: f.DomainFailure) -> tuple[ErrorInfo, str]:
    """The failure's table row and its message, with the failure's own detail where it has one."""
    info = FAILURES[type(failure)]
    detail = getattr(failure, "reason", None)
    if isinstance(failure, f.UserAlreadyExists):
        detail = f"another user has this {failure.field}"
    elif isinstance(failure, f.PreconditionFailed):
        detail = f"its version is {failure.version}"
    return info, info.message if detail is None else f"{info.message}: {detail}"
