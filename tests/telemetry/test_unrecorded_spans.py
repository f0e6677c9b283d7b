"""With no exporter, the server span is made without the SDK's tracer
(``tracing.unrecorded_span``): it must be the very span that tracer makes under the
always-off sampler, for every kind of parent a request can carry."""

import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from uuid import uuid4

import psycopg
import pytest
from aiohttp.test_utils import make_mocked_request
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, Context
from opentelemetry.instrumentation.utils import _SUPPRESS_HTTP_INSTRUMENTATION_KEY
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tests.api.support import user_body
from tests.telemetry.processes import (
    environment,
    free_port,
    json_lines,
    request,
    stop,
    usersvc,
    wait_ready,
)
from usersvc.telemetry.tracing import (
    ServerSpan,
    new_root_span_context,
    unrecorded_span_context,
    w3c_headers,
)

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

SDK = TracerProvider(sampler=ALWAYS_OFF).get_tracer("reference")

trace_ids = st.integers(1, 2**128 - 1)
span_ids = st.integers(1, 2**64 - 1)
flags = st.sampled_from([0x00, 0x01, 0x02, 0x03])
states = st.sampled_from([TraceState(), TraceState([("vendor", "value"), ("other", "x")])])


def unrecorded_span(parent: Context | None) -> trace.Span:
    """What the server span is, with no exporter: its ids, recording nothing."""
    return NonRecordingSpan(unrecorded_span_context(parent))


def _made(span: trace.Span) -> tuple:
    """What a consumer of the span can see, but its span id (random in both)."""
    context = span.get_span_context()
    return (
        type(span),
        span.is_recording(),
        context.trace_flags,
        context.trace_state,
        context.is_remote,
        context.is_valid,
    )


@given(trace_id=trace_ids, span_id=span_ids, flag=flags, state=states, remote=st.booleans())
def test_the_ids_headers_are_what_the_w3c_propagator_injects(
    trace_id, span_id, flag, state, remote
):
    ids = SpanContext(trace_id, span_id, remote, TraceFlags(flag), state)
    ours: dict[str, str] = {}
    w3c_headers(ids, ours)
    theirs: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(
        theirs, context=trace.set_span_in_context(NonRecordingSpan(ids))
    )
    assert ours == theirs


def test_a_root_span_is_what_the_sdk_makes_with_new_random_ids():
    ours, theirs = unrecorded_span(None), SDK.start_span("GET", context=None)
    assert _made(ours) == _made(theirs)
    assert isinstance(ours, NonRecordingSpan)
    assert ours.get_span_context().trace_flags == TraceFlags(0x02)  # random ids, not sampled
    seen = {unrecorded_span(None).get_span_context().trace_id for _ in range(100)}
    assert len(seen) == 100  # new ids each time
    assert all(0 < trace_id < 2**128 for trace_id in seen)


def test_a_new_roots_ids_are_the_span_context_its_constructor_makes():
    """The root's ids are built as a tuple, past ``SpanContext``'s checks: each one must
    equal, field for field, what the constructor makes of the same two ids."""
    for _ in range(1000):
        ours = new_root_span_context()
        theirs = SpanContext(ours.trace_id, ours.span_id, False, TraceFlags(0x02), None)
        assert type(ours) is SpanContext
        assert tuple(ours) == tuple(theirs)
        assert ours.is_valid
        assert ours.trace_state == TraceState()


def test_a_suppressed_context_gets_no_server_span():
    """What the library's middleware honours: instrumentation suppressed by the caller."""
    request = make_mocked_request("GET", "/api/v1/users/x")
    assert ServerSpan.start(request) is not None
    for key in (_SUPPRESS_INSTRUMENTATION_KEY, _SUPPRESS_HTTP_INSTRUMENTATION_KEY):
        token = otel_context.attach(otel_context.set_value(key, True))
        try:
            assert ServerSpan.start(request) is None
        finally:
            otel_context.detach(token)
    assert ServerSpan.start(request) is not None


def test_an_excluded_path_gets_no_server_span():
    """``OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS`` (read at start-up, as the library
    reads it) leaves the paths it matches without a span, and only those."""
    check = (
        "from aiohttp.test_utils import make_mocked_request as r\n"
        "from usersvc.telemetry.tracing import ServerSpan as S, configure_tracing\n"
        "configure_tracing()\n"
        "print(S.start(r('GET', '/health')) is None, S.start(r('GET', '/api/v1/users/x')) is None)"
    )
    for variable in ("OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS"):
        env = {k: v for k, v in os.environ.items() if "EXCLUDED_URLS" not in k}
        out = subprocess.run(
            [sys.executable, "-c", check],
            env=env | {variable: "health,metrics"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out.split() == ["True", "False"], variable


@given(trace_id=trace_ids, span_id=span_ids, flag=flags, state=states, remote=st.booleans())
def test_a_child_span_keeps_its_parents_trace_as_the_sdk_does(
    trace_id, span_id, flag, state, remote
):
    parent = trace.set_span_in_context(
        NonRecordingSpan(SpanContext(trace_id, span_id, remote, TraceFlags(flag), state))
    )
    ours, theirs = unrecorded_span(parent), SDK.start_span("GET", context=parent)
    assert _made(ours) == _made(theirs)
    assert ours.get_span_context().trace_id == theirs.get_span_context().trace_id == trace_id
    assert ours.get_span_context().span_id not in (0, span_id)


def test_an_invalid_parent_starts_a_new_trace_as_the_sdk_does():
    parent = trace.set_span_in_context(trace.INVALID_SPAN)
    ours, theirs = unrecorded_span(parent), SDK.start_span("GET", context=parent)
    assert _made(ours) == _made(theirs)
    assert ours.get_span_context().is_valid


@pytest.mark.parametrize("carried", [False, True])
def test_without_a_parent_in_the_context_the_current_span_is_the_parent(carried):
    """The SDK reads the current context when the request brings none."""
    current = NonRecordingSpan(SpanContext(42, 7, False, TraceFlags(0x01), TraceState()))
    with trace.use_span(current):
        ours = unrecorded_span(trace.set_span_in_context(current) if carried else None)
        theirs = SDK.start_span("GET")
    assert _made(ours) == _made(theirs)
    assert ours.get_span_context().trace_id == 42


def test_a_served_request_without_an_exporter_logs_and_passes_on_its_trace(
    database_url: str,
) -> None:
    """End to end, ``usersvc serve`` with no exporter: a caller's trace id is the access
    line's; without one, every request gets a new trace, and its event carries it."""
    port = free_port()
    env = environment(USERSVC_DATABASE_URL=database_url, USERSVC_LOG_LEVEL="INFO")
    server = usersvc("serve", "--host", "127.0.0.1", "--port", str(port), "--no-relay", env=env)
    base = f"http://127.0.0.1:{port}/api/v1/users"
    try:
        wait_ready(server, port)
        nobody = f"{base}/{uuid4()}"
        for headers in ({"traceparent": TRACEPARENT}, {}, {}):
            call = urllib.request.Request(nobody, headers=headers)
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(call, timeout=10)
            assert refused.value.code == 404
        status, _ = request(f"{base}/create_user", user_body())
        assert status == 201
    finally:
        output = stop(server)
    access = [line for line in json_lines(output) if line.get("logger") == "usersvc.access"]
    gets = [line for line in access if line["route"].endswith("{user_id}")]
    [create] = [line for line in access if line["route"].endswith("create_user")]
    assert len(gets) == 3
    assert gets[0]["trace_id"] == TRACEPARENT.split("-")[1]
    fresh = {line["trace_id"] for line in gets[1:]} | {create["trace_id"]}
    assert len(fresh) == 3
    assert all(re.fullmatch("[0-9a-f]{32}", trace_id) for trace_id in fresh)
    assert all(re.fullmatch("[0-9a-f]{16}", line["span_id"]) for line in access)
    with psycopg.connect(database_url) as db:
        [(headers,)] = db.execute("SELECT headers FROM outbox").fetchall()
    assert headers["traceparent"].split("-")[1] == create["trace_id"]
