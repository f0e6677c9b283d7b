"""The OpenAPI 3 document, written from the code: the routes' decorators, the body and
envelope schemas, and the one failure table (aiohttp-apigami over apispec).

Served at ``/api/docs/openapi.json``; Swagger UI at ``/api/docs`` from files shipped
in the package, so the page works without the internet.
"""

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from string import Template
from typing import Any

from aiohttp import web
from aiohttp_apigami import docs, setup_aiohttp_apispec
from aiohttp_apigami.constants import API_SPEC_ATTR, SWAGGER_DICT
from aiohttp_apigami.swagger_ui import SWAGGER_UI_STATIC_FILES
from attrs import frozen
from marshmallow import Schema

from usersvc import __version__
from usersvc.http import schemas
from usersvc.http.failures import (
    INTERNAL_ERROR,
    OVERLOADED,
    PAYLOAD_TOO_LARGE,
    REQUEST_TIMEOUT,
    SERVICE_UNAVAILABLE,
    UNSUPPORTED_MEDIA_TYPE,
    ErrorInfo,
)
from usersvc.http.responses import ERROR_TITLE

DOCUMENT_URL = "/api/docs/openapi.json"
UI_URL = "/api/docs"
UI_STATIC_URL = "/api/docs/static"
# aiohttp-apigami writes OpenAPI 3.0 at most (its request bodies as `requestBody`).
OPENAPI_VERSION = "3.0.3"

# Answered by the shell to any request of a kind, whatever the operation.
ANY_REQUEST = (INTERNAL_ERROR, SERVICE_UNAVAILABLE, OVERLOADED)
WITH_A_BODY = (REQUEST_TIMEOUT, PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE)

DESCRIPTION = """\
The users microservice: create and look up users, change their names and contacts,
delete them for a while or for good, link their social-network accounts. Every
change is published as an event (see the repository's `asyncapi.yaml`).

JSON in and out. Success: `{"status": <HTTP status>, "result": ...}`. An error:
`{"status": ..., "error": {"title": "Error occurred", "data": {"message": ..., "code": ...}}}`,
where `code` is stable; each status of each operation has its own schema, whose `code`
lists what that status can carry there. Request validation: 422
`{"detail": [{"loc": [...], "msg": ..., "type": ...}]}`, every problem at once.

A body is read as JSON when its `Content-Type` is `application/json`, any
`application/*+json`, or missing; any other media type is a 415
`unsupported_media_type`. A JSON object with a repeated key is refused
(422, `type: json_invalid`). Unknown keys are ignored.

Every answer carries `X-Request-ID`: the request's own when it sent a sane one, else a
new one; the service's log lines of the request carry it too.

Beyond the operations: an unknown path is a 404 `not_found`, a method a path does
not have a 405 `method_not_allowed` with an `Allow` header; a request that is not
readable HTTP a 400 `bad_request`, one whose head is too large (a line over 8190
bytes, more than 128 headers) a 431 `request_header_fields_too_large`. A 503
`service_unavailable` (database unreachable, or the service busy) carries
`Retry-After`: retry after that many seconds.
"""

SERVERS = [{"url": "/", "description": "the service that serves this document"}]

type Handler = Callable[[web.Request], Any]

# Every header the service sends beyond HTTP's own, as ``components/headers``: each
# response names those it carries (X-Request-ID: every response).
REQUEST_ID = "X-Request-ID"
HEADERS: Mapping[str, dict[str, Any]] = {
    REQUEST_ID: {
        "description": "the request's id: the one the request sent in `X-Request-ID` when "
        "it is 1 to 128 visible ASCII characters, else a new one (32 hex digits)",
        "required": True,
        "schema": {"type": "string", "example": "4bf92f3577b34da6a3ce929d0e0e4736"},
    },
    "ETag": {
        "description": 'the user\'s version as a strong entity tag (`"3"`), for `If-Match` '
        "and `If-None-Match`",
        "required": True,
        "schema": {"type": "string", "example": '"3"'},
    },
    "Idempotent-Replayed": {
        "description": "`true`: the stored answer of the first request with this "
        "`Idempotency-Key`, sent again; nothing ran this time",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "Retry-After": {
        "description": "seconds to wait before trying again",
        "required": True,
        "schema": {"type": "integer", "minimum": 0, "example": 5},
    },
    "Allow": {
        "description": "the method the path has",
        "required": True,
        "schema": {"type": "string", "example": "POST"},
    },
    "WWW-Authenticate": {
        "description": 'RFC 6750\'s challenge: `Bearer realm="usersvc"`, with '
        '`error="invalid_token"` when a token was sent and failed, or '
        '`error="insufficient_scope", scope="…"` naming the scope the operation needs',
        "required": True,
        "schema": {
            "type": "string",
            "example": 'Bearer realm="usersvc", error="insufficient_scope", scope="users:write"',
        },
    },
}
REPLAYED = "Idempotent-Replayed"


def _headers(names: Iterable[str]) -> dict[str, Any]:
    return {
        name: {"$ref": f"#/components/headers/{name}"}
        for name in dict.fromkeys((REQUEST_ID, *names))
    }


@frozen
class Answer:
    """A success (or another answer without an error envelope) as the document says it."""

    status: int
    description: str
    schema: type[Schema] | None  # None: no body
    headers: tuple[str, ...] = ()


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


# The error envelopes of every status of every operation, by name (all apps write the
# same): put into the document's ``components`` by :func:`setup`, those it refers to.
_ERROR_SCHEMAS: dict[str, dict[str, Any]] = {}


def error_schema(answers: Sequence[ErrorInfo]) -> dict[str, Any]:
    """A ``$ref`` to the error envelope of these answers (all of one status): ``status``
    that status alone, ``title`` the fixed string, ``code`` one of these codes (in the
    order given: the first is the example). Named after the status and the codes
    (``Error404UserNotFound``), so operations that answer alike share one."""
    status = answers[0].status
    assert all(answer.status == status for answer in answers), answers
    codes = list(dict.fromkeys(answer.code for answer in answers))
    name = f"Error{status}" + "Or".join(_camel(code) for code in codes)
    first = answers[0]
    _ERROR_SCHEMAS[name] = {
        "type": "object",
        "description": f"The error envelope of a {status}: " + _describe(answers),
        "required": ["status", "error"],
        "properties": {
            "status": {"type": "integer", "enum": [status], "description": "the HTTP status"},
            "error": {
                "type": "object",
                "required": ["title", "data"],
                "properties": {
                    "title": {"type": "string", "enum": [ERROR_TITLE]},
                    "data": {
                        "type": "object",
                        "required": ["message", "code"],
                        "properties": {
                            "message": {
                                "type": "string",
                                "description": "a sentence for people; may say more than "
                                "the code (which field broke which rule)",
                            },
                            "code": {
                                "type": "string",
                                "enum": codes,
                                "description": "stable: what a client branches on",
                            },
                        },
                    },
                },
            },
        },
        "example": {
            "status": status,
            "error": {"title": ERROR_TITLE, "data": {"message": first.message, "code": first.code}},
        },
    }
    return {"$ref": f"#/components/schemas/{name}"}


def _describe(answers: Iterable[ErrorInfo]) -> str:
    messages: dict[str, list[str]] = {}
    for answer in answers:
        messages.setdefault(answer.code, []).append(answer.message)
    return "; ".join(f"`{code}`: {', or '.join(texts)}" for code, texts in messages.items())


VALIDATION = "request validation: every problem in a `detail` list"


def responses(
    answers: Sequence[Answer],
    errors: Sequence[ErrorInfo],
    *,
    validated: bool = True,
    replayed: Collection[ErrorInfo] = (),
) -> dict[int, dict[str, Any]]:
    """An operation's responses: its successes (``answers``), then per status its error
    envelope of the ``errors`` it may answer with that status, and 422 ``detail`` when
    it takes input that request validation judges (``validated``). Each names the
    headers it carries: its answers' own, the failure table's, and
    ``Idempotent-Replayed`` where the answer of one of ``replayed`` may be a replay."""
    documented: dict[int, dict[str, Any]] = {}
    for answer in answers:
        described: dict[str, Any] = {
            "description": answer.description,
            "headers": _headers(answer.headers),
        }
        if answer.schema is not None:
            described["content"] = {"application/json": {"schema": answer.schema}}
        documented[answer.status] = described
    by_status: dict[int, list[ErrorInfo]] = {}
    for error in errors:
        by_status.setdefault(error.status, []).append(error)
    for status, found in by_status.items():
        names = [name for error in found for name in error.headers]
        if any(error in replayed for error in found):
            names.append(REPLAYED)
        documented[status] = {
            "description": _describe(found),
            "headers": _headers(names),
            "content": {"application/json": {"schema": error_schema(found)}},
        }
    if validated:
        detail = schemas.ValidationErrorSchema
        if 422 in documented:  # the domain's 422s are envelopes, request validation's not
            refused = documented[422]
            refused["description"] = f"{VALIDATION}; or {refused['description']}"
            envelope = refused["content"]["application/json"]["schema"]
            refused["content"]["application/json"]["schema"] = {"oneOf": [detail, envelope]}
        else:
            documented[422] = {
                "description": VALIDATION,
                "headers": _headers(()),
                "content": {"application/json": {"schema": detail}},
            }
    return dict(sorted(documented.items()))


IF_MATCH = {
    "in": "header",
    "name": "If-Match",
    "required": False,
    "description": "change only if the user's version is one of these entity tags "
    '(`"3"`, as `ETag` gave it; `*`: any); otherwise 412 `precondition_failed` and '
    "nothing changes. Without it the command runs whatever the version.",
    "schema": {"type": "string", "example": '"3"'},
}
IF_NONE_MATCH = {
    "in": "header",
    "name": "If-None-Match",
    "required": False,
    "description": 'the entity tags of the versions the client has (`"3"`, as `ETag` '
    "gave it; a list; `*`: any): when one is the user's current version the answer is "
    "304 with no body.",
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


def documented[H: Handler](handler: H, **described: Any) -> H:
    """``docs(...)`` for OpenAPI 3: aiohttp-apigami's decorator always adds Swagger 2.0's
    ``produces``, which an OpenAPI 3 operation may not have; the content type is in
    each response instead."""
    handler = docs(**described)(handler)
    getattr(handler, API_SPEC_ATTR).pop("produces", None)
    return handler


def _referred(node: Any, found: set[str]) -> set[str]:
    """The names of the schema components ``node`` refers to, anywhere inside it."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rpartition("/")[2])
        for value in node.values():
            _referred(value, found)
    elif isinstance(node, list):
        for value in node:
            _referred(value, found)
    return found


def setup(app: web.Application, scopes: Mapping[str, Sequence[str]] | None = None) -> None:
    """Write the document from the routes added so far, and serve it and Swagger UI.
    ``scopes``: with ``USERSVC_AUTH=jwt``, the scopes each guarded operation accepts (by
    operation id); None: no operation asks for credentials."""
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
    document = app[SWAGGER_DICT]
    # The error envelopes and the headers the operations refer to: written here as plain
    # schemas (they only describe), not through marshmallow.
    components = document.setdefault("components", {})
    found = components.setdefault("schemas", {})
    for name in sorted(_referred(document["paths"], set()) - set(found)):
        found[name] = _ERROR_SCHEMAS[name]
    components["schemas"] = dict(sorted(found.items()))
    components["headers"] = dict(HEADERS)
    secure(document, scopes, None)
    app.router.add_static(UI_STATIC_URL, SWAGGER_UI_STATIC_FILES)
    page = _ui_page()

    async def swagger_ui(_: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    app.router.add_get(UI_URL, swagger_ui)


SCOPES_GRANT = {
    "users:read": "read a user, look users up, get users by id",
    "users:list": "list every user, a page at a time",
    "users:write": "every command but the permanent delete",
    "users:erase": "delete users permanently",
}
BEARER = "bearer"
OAUTH2 = "oauth2"
_NEEDS = "\n\nNeeds a bearer token with the scope "


def secure(
    document: dict[str, Any], scopes: Mapping[str, Sequence[str]] | None, token_url: str | None
) -> None:
    """The document's security (§5): none asked with ``scopes`` None (USERSVC_AUTH=none);
    else OAuth 2.0's client credentials when the provider's token URL is known (from its
    discovery document), a bearer JWT otherwise, each guarded operation naming the scopes
    it accepts. Called again once discovery tells the token URL: the document is served
    from this dict, so Swagger UI's Authorize button then fetches tokens itself."""
    components = document.setdefault("components", {})
    if scopes is None:
        components.pop("securitySchemes", None)
        document["security"] = []  # said, so a reader knows it was thought of
        return
    if token_url is None:
        schemes: dict[str, Any] = {
            BEARER: {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "an access token of the deployment's OpenID provider (the "
                "client credentials grant), for the audience usersvc",
            }
        }
    else:
        schemes = {
            OAUTH2: {
                "type": "oauth2",
                "description": "the client credentials grant of the deployment's OpenID "
                "provider; the access token is a JWT for the audience usersvc",
                "flows": {"clientCredentials": {"tokenUrl": token_url, "scopes": SCOPES_GRANT}},
            }
        }
    components["securitySchemes"] = schemes
    document["security"] = []  # the open operations: the guarded ones say theirs
    for methods in document["paths"].values():
        for operation in methods.values():
            accepted = scopes.get(operation.get("operationId"))
            if accepted is None:
                continue
            if token_url is None:
                # OpenAPI 3.0 lists no scopes for an http scheme: the description does.
                operation["security"] = [{BEARER: []}]
            else:
                operation["security"] = [{OAUTH2: [scope]} for scope in accepted]
            described = operation.get("description", "").split(_NEEDS)[0]
            needed = " or ".join(f"`{scope}`" for scope in accepted)
            operation["description"] = f"{described}{_NEEDS}{needed}.".lstrip()


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
        persistAuthorization: true,
      });
    };
  </script>
</body>
</html>
""")


def _ui_page() -> str:
    # validatorUrl null: Swagger UI would otherwise fetch a badge from an online validator.
    return _UI_PAGE.substitute(static=UI_STATIC_URL, document=DOCUMENT_URL)
