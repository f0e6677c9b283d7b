"""The OpenAPI 3 document, written from the code: the routes' decorators, the body and
envelope schemas, and the one failure table (aiohttp-apigami over apispec).

Served at ``/api/docs/openapi.json``; Swagger UI at ``/api/docs`` from files shipped
in the package, so the page works without the internet.
"""

from collections.abc import Callable, Iterable
from string import Template
from typing import Any

from aiohttp import web
from aiohttp_apigami import docs, setup_aiohttp_apispec
from aiohttp_apigami.constants import API_SPEC_ATTR
from aiohttp_apigami.swagger_ui import SWAGGER_UI_STATIC_FILES
from marshmallow import Schema

from usersvc import __version__
from usersvc.http import schemas
from usersvc.http.failures import (
    FAILURES,
    IDEMPOTENT,
    INTERNAL_ERROR,
    OVERLOADED,
    PAYLOAD_TOO_LARGE,
    SERVICE_UNAVAILABLE,
    UNSUPPORTED_MEDIA_TYPE,
    ErrorInfo,
)

DOCUMENT_URL = "/api/docs/openapi.json"
UI_URL = "/api/docs"
UI_STATIC_URL = "/api/docs/static"
# aiohttp-apigami writes OpenAPI 3.0 at most (its request bodies as `requestBody`).
OPENAPI_VERSION = "3.0.3"

# Answered by the shell to any request of a kind, whatever the operation.
ANY_REQUEST = (INTERNAL_ERROR, SERVICE_UNAVAILABLE, OVERLOADED)
WITH_A_BODY = (PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE)

DESCRIPTION = """\
The users microservice: create and look up users, change their names and contacts,
delete them for a while or for good, link their social-network accounts. Every
change is published as an event (see the repository's `asyncapi.yaml`).

JSON in and out. Success: `{"status": <HTTP status>, "result": ...}`. An error:
`{"status": ..., "error": {"title": "Error occurred", "data": {"message": ..., "code": ...}}}`,
where `code` is stable and listed per operation. Request validation: 422
`{"detail": [{"loc": [...], "msg": ..., "type": ...}]}`, every problem at once.

A body is read as JSON when its `Content-Type` is `application/json`, any
`application/*+json`, or missing; any other media type is a 415
`unsupported_media_type`. A JSON object with a repeated key is refused
(422, `type: json_invalid`). Unknown keys are ignored.

Beyond the operations: an unknown path is a 404 `not_found`, a method a path does
not have a 405 `method_not_allowed` with an `Allow` header; a request that is not
readable HTTP a 400 `bad_request`, one whose head is too large (a line over 8190
bytes, more than 128 headers) a 431 `request_header_fields_too_large`. A 503
`service_unavailable` (database unreachable, or the service busy) carries
`Retry-After`: retry after that many seconds.
"""

SERVERS = [
    {"url": "/", "description": "the service that serves this document"},
    {"url": "http://localhost:8000", "description": "a local run (`uv run usersvc`)"},
]

type Handler = Callable[[web.Request], Any]


def _describe(answers: Iterable[ErrorInfo]) -> str:
    messages: dict[str, list[str]] = {}
    for answer in answers:
        messages.setdefault(answer.code, []).append(answer.message)
    return "; ".join(f"`{code}`: {', or '.join(texts)}" for code, texts in messages.items())


def responses(
    operation_id: str,
    success: tuple[int, type[Schema], str],
    failures: Iterable[type],
    *,
    body: bool,
    keyed: bool = False,
    also: Iterable[ErrorInfo] = (),
) -> dict[int, dict[str, Any]]:
    """An operation's responses: its success envelope, then every error it can answer,
    each status with the codes it carries, all from the failure table (``keyed``: it
    takes an Idempotency-Key, and answers its two codes; ``also``: the shell's own
    answers of this operation)."""
    answers = [FAILURES[failure] for failure in failures] + list(also)
    if keyed:
        answers += IDEMPOTENT
    answers += [*WITH_A_BODY, *ANY_REQUEST] if body else list(ANY_REQUEST)
    envelope = schemas.error_envelope(operation_id, answers)
    by_status: dict[int, list[ErrorInfo]] = {}
    for answer in answers:
        by_status.setdefault(answer.status, []).append(answer)

    status, success_schema, success_text = success
    documented: dict[int, dict[str, Any]] = {
        status: {"description": success_text, "schema": success_schema}
    }
    for http_status, found in sorted(by_status.items()):
        documented[http_status] = {"description": _describe(found), "schema": envelope}
    validation = "request validation: every problem in a `detail` list"
    if 422 in by_status:  # the domain's 422s are envelopes, request validation is not
        documented[422] = {
            "description": f"{validation}; or {_describe(by_status[422])}",
            "content": {
                "application/json": {"schema": {"oneOf": [schemas.ValidationErrorSchema, envelope]}}
            },
        }
    else:
        documented[422] = {"description": validation, "schema": schemas.ValidationErrorSchema}
    documented[503]["headers"] = {
        "Retry-After": {
            "description": "seconds to wait before trying again",
            "schema": {"type": "integer"},
        }
    }
    return dict(sorted(documented.items()))


ETAG = {
    "ETag": {
        "description": 'the user\'s version as a strong entity tag (`"3"`), for `If-Match`',
        "schema": {"type": "string", "example": '"3"'},
    }
}
IF_MATCH = {
    "in": "header",
    "name": "If-Match",
    "required": False,
    "description": "change only if the user's version is one of these entity tags "
    '(`"3"`, as `ETag` gave it; `*`: any); otherwise 412 `precondition_failed` and '
    "nothing changes. Without it the command runs whatever the version.",
    "schema": {"type": "string", "example": '"3"'},
}

IDEMPOTENCY_KEY = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "description": "1 to 255 visible ASCII characters (0x21-0x7E), unique per request "
    "(a UUID, say): retrying with the same key and the same request within 24 hours "
    "answers the first response again (status, body, ETag; with `Idempotent-Replayed: "
    "true`) and changes nothing more. The same key with another body or If-Match is a "
    "422 `idempotency_key_reused`; while the first request still runs, a repeat waits "
    "for it, or after 5 s gets 409 `request_in_progress`. Keys are per operation.",
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "pattern": "^[\\x21-\\x7E]+$",
        "example": "5f0c6b2e-8d0b-4a43-9b1e-2a7c1d3f9e10",
    },
}


def with_etag(described: dict[int, dict[str, Any]], status: int) -> dict[int, dict[str, Any]]:
    """The success response, with the ETag header it carries."""
    described[status]["headers"] = ETAG
    return described


def documented[H: Handler](handler: H, **described: Any) -> H:
    """``docs(...)`` for OpenAPI 3: aiohttp-apigami's decorator always adds Swagger 2.0's
    ``produces``, which an OpenAPI 3 operation may not have; the content type is in
    each response instead."""
    handler = docs(**described)(handler)
    getattr(handler, API_SPEC_ATTR).pop("produces", None)
    return handler


def setup(app: web.Application) -> None:
    """Write the document from the routes added so far, and serve it and Swagger UI."""
    setup_aiohttp_apispec(
        app,
        title="usersvc",
        version=__version__,
        url=DOCUMENT_URL,
        swagger_path=None,  # our own page below: theirs asks an online validator
        openapi_version=OPENAPI_VERSION,
        in_place=True,
        info={"description": DESCRIPTION},
        servers=SERVERS,
        tags=[
            {"name": "users", "description": "users and their linked accounts"},
            {"name": "health", "description": "is the service up"},
        ],
    )
    app.router.add_static(UI_STATIC_URL, SWAGGER_UI_STATIC_FILES)
    page = _ui_page()

    async def swagger_ui(_: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    app.router.add_get(UI_URL, swagger_ui)


_UI_PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <title>usersvc API</title>
  <link rel="stylesheet" type="text/css" href="$static/swagger-ui.css">
  <link rel="icon" type="image/png" href="$static/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="$static/swagger-ui-bundle.js" charset="UTF-8"></script>
  <script src="$static/swagger-ui-standalone-preset.js" charset="UTF-8"></script>
  <script>
    window.onload = function () {
      window.ui = SwaggerUIBundle({
        url: "$document",
        dom_id: "#swagger-ui",
        deepLinking: true,
        validatorUrl: null,
        presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
        layout: "StandaloneLayout",
      });
    };
  </script>
</body>
</html>
""")


def _ui_page() -> str:
    # validatorUrl null: Swagger UI would otherwise fetch a badge from an online validator.
    return _UI_PAGE.substitute(static=UI_STATIC_URL, document=DOCUMENT_URL)
