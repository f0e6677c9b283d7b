"""Traces: OpenTelemetry, configured only by the standard ``OTEL_*`` variables.

- ``OTEL_SDK_DISABLED=true``: no SDK at all (no ids, nothing recorded).
- No ``OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT``: the SDK runs with an always-off
  sampler. Spans still get ids (the logs and the events' ``traceparent`` carry
  them) but nothing is recorded, and the per-statement spans are skipped.
- An endpoint: spans are exported over OTLP in batches, ``http/protobuf`` (the
  default) or ``grpc`` by ``OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL``; the sampler is
  ``OTEL_TRACES_SAMPLER`` (default: parent-based, always on);
  ``OTEL_SERVICE_NAME`` names the service (default ``usersvc``).
"""

import os
import random
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from aiohttp import web
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation import aiohttp_server
from opentelemetry.instrumentation._semconv import (
    _get_schema_url,
    _OpenTelemetrySemanticConventionStability,
    _OpenTelemetryStabilitySignalType,
)
from opentelemetry.instrumentation.utils import is_http_instrumentation_enabled
from opentelemetry.propagate import extract, get_global_textmap
from opentelemetry.trace import (
    DEFAULT_TRACE_STATE,
    INVALID_SPAN_ID,
    INVALID_TRACE_ID,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.http import (
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS,
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST,
    SanitizeValue,
    get_custom_headers,
    get_excluded_urls,
    normalise_request_header_name,
)

from usersvc.telemetry.context import CURRENT

TRACER = trace.get_tracer("usersvc")
# Only W3C trace context goes into events: baggage may carry anything.
W3C = TraceContextTextMapPropagator()
_NOTHING = nullcontext()

_configured = False
# Whether any span can be recorded: only with a span processor (an exporter, or a test's
# collector). Without one the sampler drops every span, and the spans nothing else
# needs (the relay's, one per event) are not made at all.
_recording = False
# Whether the SDK runs with the always-off sampler (no processor): every span is then
# an unrecorded one that only carries ids, and the server span is made directly.
_ids_only = False


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def _exporter(environ: Mapping[str, str]) -> Any:
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    elif protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    else:
        raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: use 'http/protobuf' or 'grpc'")
    return OTLPSpanExporter()


def configure_tracing(
    environ: Mapping[str, str] = os.environ,
    *,
    processor: Any = None,
    sampler: Any = None,
) -> None:
    """Install the tracer provider, once per process.

    ``processor`` and ``sampler`` are for tests (an in-memory span collector).
    """
    global _configured
    if _configured:
        return
    _configured = True
    if _truthy(environ.get("OTEL_SDK_DISABLED")):
        return

    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    attributes = {} if environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: "usersvc"}
    resource = Resource.create(attributes)
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if processor is None and endpoint:
        processor = BatchSpanProcessor(_exporter(environ))
    if processor is None:
        sampler = ALWAYS_OFF  # ids for the logs and the events, nothing recorded
        global _ids_only
        _ids_only = True
    provider = TracerProvider(resource=resource, sampler=sampler)
    if processor is not None:
        global _recording
        _recording = True
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)


class _Span:
    """A current span whose failure is recorded without the exception's message: the
    messages of asyncpg's errors quote row values (personal data)."""

    __slots__ = ("_attributes", "_context", "_kind", "_manager", "_name", "_span")

    def __init__(
        self, name: str, kind: SpanKind, attributes: Mapping[str, Any], context: Context | None
    ) -> None:
        self._name, self._kind, self._attributes, self._context = name, kind, attributes, context

    def __enter__(self) -> trace.Span:
        self._manager = TRACER.start_as_current_span(
            self._name,
            context=self._context,
            kind=self._kind,
            attributes=self._attributes,
            record_exception=False,
            set_status_on_exception=False,
        )
        self._span = self._manager.__enter__()
        return self._span

    def __exit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        if error is not None:
            fail(self._span, error)
        self._manager.__exit__(kind, error, tb)


def fail(span: trace.Span, error: BaseException | str) -> None:
    """Mark the span failed, naming the error's type (and SQLSTATE), never its message."""
    if isinstance(error, str):
        span.set_status(Status(StatusCode.ERROR, error))
        return
    span.set_attribute("error.type", type(error).__qualname__)
    sqlstate = getattr(error, "sqlstate", None)
    if sqlstate:
        span.set_attribute("db.response.status_code", sqlstate)
    span.set_status(Status(StatusCode.ERROR, type(error).__qualname__))


def child_span(name: str, kind: SpanKind = SpanKind.INTERNAL, **attributes: Any) -> Any:
    """A span under the current one, or nothing at all when that one is not recorded
    (its children would not be either; this keeps untraced requests cheap)."""
    if not _recording or not trace.get_current_span().is_recording():
        return _NOTHING
    return _Span(name, kind, attributes, None)


def sql_span(name: str) -> AbstractContextManager[Any]:
    """A statement's span, named after its query in ``sql/*.sql``; never its parameters."""
    if not _recording:
        return _NOTHING  # before its attributes are gathered, on every statement
    return child_span(
        name, SpanKind.CLIENT, **{"db.system.name": "postgresql", "db.query.summary": name}
    )


def trace_headers(incoming: Mapping[str, str]) -> dict[str, str]:
    """The W3C trace context an event carries: the request's span when it is recorded,
    otherwise the caller's context (when well-formed), so a consumer links to a span
    that exists; failing both, the unrecorded span's ids, which the logs carry too."""
    carrier: dict[str, str] = {}
    if _recording and trace.get_current_span().is_recording():
        W3C.inject(carrier)
        return carrier
    if incoming.get("traceparent") is not None:  # what the propagator reads first
        W3C.inject(carrier, context=W3C.extract(incoming))
        if carrier:
            return carrier
    ids = current_span_context()
    if ids.is_valid:
        w3c_headers(ids, carrier)
    return carrier


def w3c_headers(ids: SpanContext, carrier: dict[str, str]) -> None:
    """``traceparent`` (and ``tracestate``) of these ids into ``carrier``, as the W3C
    propagator's ``inject`` writes them, without a context made to carry them there
    (``tests/telemetry/test_unrecorded_spans.py`` holds the two together)."""
    trace_id, span_id = ids.trace_id.to_bytes(16).hex(), ids.span_id.to_bytes(8).hex()
    carrier["traceparent"] = f"00-{trace_id}-{span_id}-{ids.trace_flags:02x}"
    if ids.trace_state:
        carrier["tracestate"] = ids.trace_state.to_header()


def start_publish_span(
    headers: Mapping[str, Any], name: str, **attributes: Any
) -> trace.Span | None:
    """The relay's span for one publish, in the trace of the request whose event it is,
    started (not made current: a batch's publishes are in flight together); None when
    no span can be recorded: made and dropped, it cost a tenth of the relay's time per
    event. End it with :func:`end_publish_span`."""
    if not _recording:
        return None
    parent: Context = W3C.extract({k: v for k, v in headers.items() if isinstance(v, str)})
    return TRACER.start_span(
        name,
        context=parent,
        kind=SpanKind.PRODUCER,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    )


def end_publish_span(span: trace.Span | None, failure: BaseException | str | None) -> None:
    """End a publish span: confirmed by the broker (no ``failure``), or failed."""
    if span is None:
        return
    if failure is not None:
        fail(span, failure)
    span.end()


# --- the request's server span

# Trace flags as the SDK sets them on a span it does not sample: its ids are random
# (W3C trace context level 2), and the sampled bit is off.
_RANDOM_IDS = TraceFlags(TraceFlags.DEFAULT | TraceFlags.RANDOM_TRACE_ID)
_NOT_RANDOM = TraceFlags(TraceFlags.DEFAULT)


_fields: tuple[object, frozenset[str]] = (None, frozenset())


def _propagated_fields() -> frozenset[str]:
    """The headers the global propagator reads (``OTEL_PROPAGATORS``), found once per
    propagator: the composite's ``fields`` builds a new set on every call."""
    global _fields
    textmap = get_global_textmap()
    if _fields[0] is not textmap:
        _fields = (textmap, frozenset(textmap.fields))
    return _fields[1]


def unrecorded_span_context(parent: Context | None = None) -> SpanContext:
    """The ids of the span the SDK's tracer makes under the always-off sampler, made
    directly: the parent's trace id and trace state (a new random trace id without a
    valid parent), a new random span id, not sampled. The SDK's path there (sampler,
    flags, its own metrics) cost more than the rest of the span's work on every request.
    ``tests/telemetry/test_unrecorded_spans.py`` holds it to what the SDK makes."""
    if parent is None and not otel_context.get_current():
        return new_root_span_context()  # an empty context holds no span
    parent_span = trace.get_current_span(parent).get_span_context()
    if not parent_span.is_valid:
        return new_root_span_context()
    flags = _RANDOM_IDS if parent_span.trace_flags.random_trace_id else _NOT_RANDOM
    span_id = random.getrandbits(64)
    while span_id == INVALID_SPAN_ID:
        span_id = random.getrandbits(64)
    return SpanContext(
        parent_span.trace_id,
        span_id,
        is_remote=False,
        trace_flags=flags,
        trace_state=parent_span.trace_state,
    )


_tuple_new = tuple.__new__
_NO_STATE = DEFAULT_TRACE_STATE


_SPAN_ID_BITS = 64
_SPAN_ID_MASK = (1 << _SPAN_ID_BITS) - 1


def new_root_span_context() -> SpanContext:
    """The ids of a new trace's first span, unsampled: what ``SpanContext(...)`` makes of
    two random ids, built as the tuple it is (its constructor's checks cannot fail on
    ids drawn in range, and were a tenth of a request's telemetry). Both ids from one
    draw of 192 bits: the trace id the high 128, the span id the low 64."""
    bits = random.getrandbits(128 + _SPAN_ID_BITS)
    trace_id, span_id = bits >> _SPAN_ID_BITS, bits & _SPAN_ID_MASK
    while trace_id == INVALID_TRACE_ID or span_id == INVALID_SPAN_ID:
        bits = random.getrandbits(128 + _SPAN_ID_BITS)
        trace_id, span_id = bits >> _SPAN_ID_BITS, bits & _SPAN_ID_MASK
    return _tuple_new(SpanContext, (trace_id, span_id, False, _RANDOM_IDS, _NO_STATE, True))


def current_span_context() -> SpanContext:
    """The ids of the current span: the request's unrecorded server span while there is
    one (kept apart from OpenTelemetry's context: attaching a span there, and reading it
    back for every log line and statement, cost more than making it), otherwise
    OpenTelemetry's current span."""
    ids = CURRENT.get().span
    return trace.get_current_span().get_span_context() if ids is None else ids


_OpenTelemetrySemanticConventionStability._initialize()
_SEMCONV = _OpenTelemetrySemanticConventionStability._get_opentelemetry_stability_opt_in_mode(
    _OpenTelemetryStabilitySignalType.HTTP
)
# The instrumentation's own scope, so its spans look as the library's middleware made them.
_SERVER_TRACER = trace.get_tracer(
    aiohttp_server.__name__, aiohttp_server.__version__, schema_url=_get_schema_url(_SEMCONV)
)
_EXCLUDED_URLS = get_excluded_urls("AIOHTTP_SERVER")
# Whether any pattern is set, read as ``get_excluded_urls`` reads it.
_EXCLUDING = bool(
    os.environ.get(
        "OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS", os.environ.get("OTEL_PYTHON_EXCLUDED_URLS", "")
    )
)


_span_names: dict[tuple[str, object], str] = {}


def _span_name(request: web.Request) -> str:
    """The library's span name ("GET /api/v1/users/{user_id}"): a method and a route
    template, so made once per pair (it reads an environment variable each time).
    Only matched routes are kept: a client's made-up methods hit no route."""
    resource = request.match_info.route.resource
    key = (request.method, resource)
    name = _span_names.get(key)
    if name is None:
        name = aiohttp_server.get_default_span_name(request)
        if resource is not None:
            _span_names[key] = name
    return name


# The attributes the instrumentation fills from the URL, query string included: the
# look-ups (GET /users?email=…) carry personal data there, and the library redacts only
# a few well-known secret parameters.
_WITH_QUERY = ("http.target", "http.url", "url.full")
_QUERY_ONLY = ("url.query",)


# Credentials are never a span's, whatever OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_*
# an operator sets (a header captured with ".*" included): their values are redacted.
ALWAYS_REDACTED = ("authorization", "proxy-authorization", "cookie")


def _captured_request_headers(request: web.Request) -> dict[str, list[str]]:
    """The request headers the operator asked spans to carry, credentials redacted (the
    instrumentation's own collection, with :data:`ALWAYS_REDACTED` among the fields)."""
    captured = get_custom_headers(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST)
    if not captured:
        return {}
    redacted = [
        *ALWAYS_REDACTED,
        *get_custom_headers(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS),
    ]
    return SanitizeValue(redacted).sanitize_header_values(
        request.headers, captured, normalise_request_header_name
    )


def _without_query(attributes: dict[str, Any]) -> dict[str, Any]:
    """The server span's attributes with every query string cut off."""
    for key in _WITH_QUERY:
        value = attributes.get(key)
        if isinstance(value, str) and "?" in value:
            attributes[key] = value.split("?", 1)[0]
    for key in _QUERY_ONLY:
        attributes.pop(key, None)
    return attributes


class ServerSpan:
    """The request's SERVER span, as opentelemetry-instrumentation-aiohttp-server makes it
    (its name, scope, attributes and status, built by its own functions), current while
    the request is handled.

    Not its middleware: that one collects the request's attributes (URL parsing and
    redaction) on every request, some 60 µs, also for the spans that are not recorded,
    which with no exporter is every span. Here they are collected only for a span that
    is recorded (the sampler decides without them: none of the SDK's samplers reads
    attributes). Its OpenTelemetry HTTP metrics are not kept: no OpenTelemetry meter
    provider is configured, so they went nowhere; Prometheus has usersvc_http_*.

    With no span processor, only ids: ``unrecorded`` holds them, which the caller makes
    current (with the request id: :mod:`usersvc.telemetry.context`), and there is
    nothing to finish.
    """

    __slots__ = ("_attributes", "_span", "_token", "unrecorded")

    def __init__(self, request: web.Request, current: Context) -> None:
        if _ids_only:
            # Only a request that carries trace context has a parent to read, and only a
            # context that holds something (as a rule a request's holds nothing) a span.
            headers = request.headers
            for field in _propagated_fields():
                if field in headers:
                    parent = extract(request, getter=aiohttp_server.getter)
                    self.unrecorded = unrecorded_span_context(parent)
                    return
            self.unrecorded = unrecorded_span_context() if current else new_root_span_context()
            return
        self.unrecorded = None
        self._attributes: dict[str, Any] = {}
        self._span = span = _SERVER_TRACER.start_span(
            _span_name(request),
            context=extract(request, getter=aiohttp_server.getter),
            kind=SpanKind.SERVER,
        )
        if span.is_recording():
            self._attributes = _without_query(
                aiohttp_server.collect_request_attributes(request, _SEMCONV)
            )
            span.set_attributes(self._attributes)
            span.set_attributes(_captured_request_headers(request))
        self._token = otel_context.attach(trace.set_span_in_context(span))

    @classmethod
    def start(cls, request: web.Request) -> "ServerSpan | None":
        """The span, unless instrumentation is suppressed or the path excluded (the
        ``OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS`` variable, as the library reads it)."""
        # Only a context that holds something can suppress (a request's holds nothing,
        # as a rule), and only a path pattern set can exclude: both are asked only then.
        current = otel_context.get_current()
        if current and not is_http_instrumentation_enabled():
            return None
        if _EXCLUDING and _EXCLUDED_URLS.url_disabled(request.path):
            return None
        return cls(request, current)

    def finish(
        self, status: int, response: web.StreamResponse | None, error: BaseException | None
    ) -> None:
        """The status the client got (or the error that escaped) on the span; end it."""
        if self.unrecorded is not None:
            return
        span = self._span
        try:
            if span.is_recording():
                unexpected = error is not None and not isinstance(error, web.HTTPException)
                code = type(error).__qualname__ if unexpected else status
                aiohttp_server.set_status_code(span, code, self._attributes, _SEMCONV)
                if unexpected or isinstance(error, web.HTTPServerError):
                    fail(span, error)  # its type, never its message
                if response is not None:
                    span.set_attributes(
                        aiohttp_server.collect_response_headers_attributes(response)
                    )
        finally:
            otel_context.detach(self._token)
            span.end()
