"""The access line, written directly for speed, is the line the processors would write."""

import io
import json
from pathlib import Path
from typing import Any

from opentelemetry import trace

from usersvc.telemetry import logs
from usersvc.telemetry.context import CURRENT, Current
from usersvc.telemetry.logs import configure_logging, reset_logging


def _log_one_access_line(stream: Any, level: str = "INFO") -> tuple[str, str]:
    """One access line in a request's context; the ids of the span it was logged in."""
    configure_logging(level, "json", stream)
    token = CURRENT.set(Current("req-1", None))
    try:
        with trace.get_tracer("test").start_as_current_span("request") as span:
            logs.access("PUT", "/api/v1/users/change-fullname", 422, 1.23456, 87)
        context = span.get_span_context()
    finally:
        CURRENT.reset(token)
        reset_logging()
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def test_the_direct_access_line_has_the_processors_keys_values_and_order(tmp_path: Path) -> None:
    # A text stream with no bytes under it goes through structlog's processors ...
    text = io.StringIO()
    ids = _log_one_access_line(text)
    through_processors = json.loads(text.getvalue())
    # ... a file (bytes underneath) gets the line that access() writes itself.
    path = tmp_path / "access.jsonl"
    with path.open("w", encoding="utf-8") as stream:
        direct_ids = _log_one_access_line(stream)
    direct = json.loads(path.read_text())

    for line, (trace_id, span_id) in ((through_processors, ids), (direct, direct_ids)):
        assert (line.pop("trace_id"), line.pop("span_id")) == (trace_id, span_id)
        del line["time"]
    assert list(direct) == list(through_processors)
    assert direct == through_processors
    assert direct["duration_ms"] == 1.235
    assert direct["request_id"] == "req-1"


def test_no_access_line_is_written_above_info(tmp_path: Path) -> None:
    path = tmp_path / "access.jsonl"
    with path.open("w", encoding="utf-8") as stream:
        _log_one_access_line(stream, "WARNING")
    assert path.read_text() == ""
