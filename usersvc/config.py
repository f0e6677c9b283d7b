"""Settings from the environment, read and checked once at start.

A setting that cannot work stops the service before it does anything, with one line
that names the variable and the problem, and never a password.
"""

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from attrs import frozen
from limits import parse_many

WEB = ("https", "http")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("json", "console")

# Every variable, its default and its meaning: docs/operations.md's table says the same.
DEFAULTS: Mapping[str, str] = {
    "USERSVC_DATABASE_URL": "",
    "USERSVC_MIGRATE_DATABASE_URL": "",  # the schema owner's; unset: USERSVC_DATABASE_URL's
    "USERSVC_DATABASE_WAIT": "30",
    "USERSVC_DATABASE_STATEMENT_CACHE": "100",  # prepared statements a connection keeps
    "USERSVC_RELAY_DATABASE_URL": "",  # a direct connection; unset: USERSVC_DATABASE_URL
    "USERSVC_RELAY": "on",  # off: this process serves only; `usersvc relay` runs elsewhere
    "USERSVC_AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/",
    "USERSVC_AMQP_EXCHANGE": "users",
    "USERSVC_AMQP_QUEUE": "users",
    "USERSVC_LOG_LEVEL": "INFO",
    "USERSVC_LOG_FORMAT": "",  # console on a terminal, else json
    "USERSVC_HOST": "0.0.0.0",  # noqa: S104 - a service in a container
    "USERSVC_PORT": "8000",
    # Callers (§5 of docs/api.md): who may do what, and how often.
    "USERSVC_AUTH": "",  # none or jwt; `usersvc serve` takes none (with a warning) if unset
    "USERSVC_AUTH_ISSUER": "",
    "USERSVC_AUTH_JWKS_URL": "",  # unset: the issuer's discovery document names it
    "USERSVC_AUTH_AUDIENCE": "usersvc",
    "USERSVC_RATE_LIMIT": "1000/second",  # per caller, every request of an operation
    "USERSVC_RATE_LIMIT_LOOKUPS": "50/second;1000/minute",  # look-ups, batch gets, listing
    "USERSVC_RATE_LIMIT_STORAGE": "memory://",  # or redis://host:6379/0: one budget a fleet
    # Open connections a process holds (0: no bound); per peer: off behind a proxy.
    "USERSVC_MAX_CONNECTIONS": "1024",
    "USERSVC_MAX_CONNECTIONS_PER_PEER": "256",
    # Seconds a stopping process goes on serving (with /readyz 503) so that load
    # balancers stop sending before it closes its listener; the image sets 5.
    "USERSVC_DRAIN_SECONDS": "0",
    "USERSVC_RELAY_PORT": "8001",  # `usersvc relay`: its /metrics, /livez and /readyz
}

AUTH_MODES = ("none", "jwt")
RATE_LIMIT_STORAGES = ("memory", "redis", "rediss", "valkey", "valkeys")


class SettingError(ValueError):
    """A setting that cannot be used; the message names it and never shows a password."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name


def mask_password(url: str) -> str:
    """The URL with its password, if any, as ``***``: fit for a log or an error.
    Also for a URL without its scheme: it is still someone's password."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    if "@" not in rest:
        return url
    # Up to the last "@": a password may hold a "/" or "@" unencoded; masking too much
    # of a malformed URL is better than showing any of a password.
    userinfo, _, host = rest.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}{sep}{user}{':***' if colon else ''}@{host}"


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def _url(name: str, raw: str, schemes: tuple[str, ...]) -> str:
    shown = mask_password(raw)
    secret = _password(raw)

    def bad(problem: str) -> SettingError:
        message = f"{shown!r} {problem}"
        if secret:  # belt and braces: a malformed URL may hide it where masking does not look
            message = message.replace(secret, "***")
        return SettingError(name, message)

    try:
        parts = urlsplit(raw)
    except ValueError:
        raise bad("is not a URL") from None
    if parts.scheme not in schemes:
        raise bad(f"must start with {' or '.join(s + '://' for s in schemes)}")
    try:
        port = parts.port
    except ValueError:
        raise bad("has a port that is not a number from 1 to 65535") from None
    if port == 0:
        raise bad("has a port that is not a number from 1 to 65535")
    if not parts.netloc:
        raise bad("names no host")
    return raw


def _port(name: str, raw: str) -> int:
    if not raw.strip().isdigit() or not 0 < int(raw) < 65536:
        raise SettingError(name, f"{raw!r} is not a port number (1 to 65535)")
    return int(raw)


def _seconds(name: str, raw: str) -> float:
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise SettingError(name, f"{raw!r} is not a number of seconds (0 or more)")
    return seconds


def _count(name: str, raw: str) -> int:
    if not raw.strip().isdigit():
        raise SettingError(name, f"{raw!r} is not a whole number (0 or more)")
    return int(raw)


def _on_off(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value not in {"on", "off"}:
        raise SettingError(name, f"{raw!r} is not on or off")
    return value == "on"


def _not_empty(name: str, raw: str) -> str:
    if not raw.strip():
        raise SettingError(name, "is empty")
    return raw


def _log_format(name: str, raw: str) -> str | None:
    if not raw.strip():
        return None
    if raw.strip().lower() not in LOG_FORMATS:
        raise SettingError(name, f"{raw!r} is not one of {', '.join(LOG_FORMATS)}")
    return raw.strip().lower()


def _log_level(name: str, raw: str) -> str:
    level = raw.strip().upper()
    if level not in LOG_LEVELS:
        raise SettingError(name, f"{raw!r} is not one of {', '.join(LOG_LEVELS)}")
    return level


def _auth(name: str, raw: str) -> str | None:
    mode = raw.strip().lower()
    if not mode:
        return None
    if mode not in AUTH_MODES:
        raise SettingError(name, f"{raw!r} is not one of {', '.join(AUTH_MODES)}")
    return mode


def _optional_url(name: str, raw: str, schemes: tuple[str, ...]) -> str | None:
    return _url(name, raw.strip(), schemes) if raw.strip() else None


def _rate_limit(name: str, raw: str) -> str:
    try:
        parse_many(raw)
    except ValueError:
        raise SettingError(
            name, f"{raw!r} is not a rate limit such as 100/second or 50/second;1000/minute"
        ) from None
    return raw.strip()


def _storage(name: str, raw: str) -> str:
    uri = raw.strip()
    if uri in ("memory", "memory://"):
        return "memory://"
    return _url(name, uri, RATE_LIMIT_STORAGES[1:])


@frozen
class Settings:
    database_url: str | None  # None: start the embedded development PostgreSQL
    database_wait: float  # seconds to keep trying an unreachable database at start
    amqp_url: str
    amqp_exchange: str
    amqp_queue: str
    log_level: str
    host: str
    port: int
    log_format: str | None = None  # json | console; None: console on a terminal, else json
    auth: str | None = None  # none | jwt; None: not chosen (serve: none, gunicorn refuses)
    auth_issuer: str | None = None
    auth_jwks_url: str | None = None
    auth_audience: str = DEFAULTS["USERSVC_AUTH_AUDIENCE"]
    rate_limit: str = DEFAULTS["USERSVC_RATE_LIMIT"]
    rate_limit_lookups: str = DEFAULTS["USERSVC_RATE_LIMIT_LOOKUPS"]
    rate_limit_storage: str = DEFAULTS["USERSVC_RATE_LIMIT_STORAGE"]
    max_connections: int = int(DEFAULTS["USERSVC_MAX_CONNECTIONS"])
    max_connections_per_peer: int = int(DEFAULTS["USERSVC_MAX_CONNECTIONS_PER_PEER"])
    drain_seconds: float = 0.0  # serving on after SIGTERM/SIGINT, before the listener closes
    relay_port: int = 8001  # where `usersvc relay` serves its probes and metrics
    # The role that owns the schema, for migrations; None: database_url's role does both.
    migrate_database_url: str | None = None
    database_statement_cache: int = int(DEFAULTS["USERSVC_DATABASE_STATEMENT_CACHE"])
    # The relay's session (its advisory lock, LISTEN) and migrations: a direct connection
    # where USERSVC_DATABASE_URL goes through a pooler in transaction mode. None: that URL.
    relay_database_url: str | None = None
    relay: bool = True  # serving processes run a relay too (one of all leads)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Settings":
        """The settings, checked; :class:`SettingError` for the first that cannot work."""

        def get(name: str) -> str:
            return environ.get(name, DEFAULTS[name])

        database_url = get("USERSVC_DATABASE_URL").strip()
        auth = _auth("USERSVC_AUTH", get("USERSVC_AUTH"))
        issuer = _optional_url("USERSVC_AUTH_ISSUER", get("USERSVC_AUTH_ISSUER"), WEB)
        if auth == "jwt" and issuer is None:
            raise SettingError("USERSVC_AUTH_ISSUER", "is required with USERSVC_AUTH=jwt")
        migrate_database_url = get("USERSVC_MIGRATE_DATABASE_URL").strip()
        relay_url = get("USERSVC_RELAY_DATABASE_URL").strip()
        if relay_url and not database_url:
            # The embedded development database has no pooler in front of it.
            raise SettingError("USERSVC_RELAY_DATABASE_URL", "needs USERSVC_DATABASE_URL too")
        return cls(
            database_url=(
                _url("USERSVC_DATABASE_URL", database_url, ("postgresql", "postgres"))
                if database_url
                else None
            ),
            database_wait=_seconds("USERSVC_DATABASE_WAIT", get("USERSVC_DATABASE_WAIT")),
            amqp_url=_url("USERSVC_AMQP_URL", get("USERSVC_AMQP_URL"), ("amqp", "amqps")),
            amqp_exchange=_not_empty("USERSVC_AMQP_EXCHANGE", get("USERSVC_AMQP_EXCHANGE")),
            amqp_queue=_not_empty("USERSVC_AMQP_QUEUE", get("USERSVC_AMQP_QUEUE")),
            log_level=_log_level("USERSVC_LOG_LEVEL", get("USERSVC_LOG_LEVEL")),
            host=_not_empty("USERSVC_HOST", get("USERSVC_HOST")),
            port=_port("USERSVC_PORT", get("USERSVC_PORT")),
            log_format=_log_format("USERSVC_LOG_FORMAT", get("USERSVC_LOG_FORMAT")),
            auth=auth,
            auth_issuer=issuer,
            auth_jwks_url=_optional_url("USERSVC_AUTH_JWKS_URL", get("USERSVC_AUTH_JWKS_URL"), WEB),
            auth_audience=_not_empty("USERSVC_AUTH_AUDIENCE", get("USERSVC_AUTH_AUDIENCE")),
            rate_limit=_rate_limit("USERSVC_RATE_LIMIT", get("USERSVC_RATE_LIMIT")),
            rate_limit_lookups=_rate_limit(
                "USERSVC_RATE_LIMIT_LOOKUPS", get("USERSVC_RATE_LIMIT_LOOKUPS")
            ),
            rate_limit_storage=_storage(
                "USERSVC_RATE_LIMIT_STORAGE", get("USERSVC_RATE_LIMIT_STORAGE")
            ),
            max_connections=_count("USERSVC_MAX_CONNECTIONS", get("USERSVC_MAX_CONNECTIONS")),
            max_connections_per_peer=_count(
                "USERSVC_MAX_CONNECTIONS_PER_PEER", get("USERSVC_MAX_CONNECTIONS_PER_PEER")
            ),
            drain_seconds=_seconds("USERSVC_DRAIN_SECONDS", get("USERSVC_DRAIN_SECONDS")),
            relay_port=_port("USERSVC_RELAY_PORT", get("USERSVC_RELAY_PORT")),
            migrate_database_url=(
                _url(
                    "USERSVC_MIGRATE_DATABASE_URL", migrate_database_url, ("postgresql", "postgres")
                )
                if migrate_database_url
                else None
            ),
            database_statement_cache=_count(
                "USERSVC_DATABASE_STATEMENT_CACHE", get("USERSVC_DATABASE_STATEMENT_CACHE")
            ),
            relay_database_url=(
                _url("USERSVC_RELAY_DATABASE_URL", relay_url, ("postgresql", "postgres"))
                if relay_url
                else None
            ),
            relay=_on_off("USERSVC_RELAY", get("USERSVC_RELAY")),
        )
