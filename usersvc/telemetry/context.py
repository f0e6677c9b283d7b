"""The request being handled, as the telemetry knows it: its id, and the ids of its span
while that span is not recorded (then nothing but our own code reads them).

One context variable for both: a set and its reset cost some 3,500 instructions, on
every request (a tenth of what telemetry costs a GET, when there were two).
"""

from contextvars import ContextVar
from typing import NamedTuple

from opentelemetry.trace import SpanContext


class Current(NamedTuple):
    request_id: str | None
    # The unrecorded server span's ids; None: the span is OpenTelemetry's current one.
    span: SpanContext | None


NOTHING = Current(None, None)
CURRENT: ContextVar[Current] = ContextVar("usersvc_request", default=NOTHING)
