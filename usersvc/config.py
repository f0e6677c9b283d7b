"""Settings from the environment, read once at start."""

import os
from collections.abc import Mapping

from attrs import frozen


@frozen
class Settings:
    database_url: str | None  # None: start the embedded development PostgreSQL
    amqp_url: str
    amqp_exchange: str
    amqp_queue: str
    log_level: str
    host: str
    port: int
    log_format: str | None = None  # json | console; None: console on a terminal, else json

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Settings":
        return cls(
            database_url=environ.get("USERSVC_DATABASE_URL") or None,
            amqp_url=environ.get("USERSVC_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
            amqp_exchange=environ.get("USERSVC_AMQP_EXCHANGE", "users"),
            amqp_queue=environ.get("USERSVC_AMQP_QUEUE", "users"),
            log_level=environ.get("USERSVC_LOG_LEVEL", "INFO").upper(),
            host=environ.get("USERSVC_HOST", "0.0.0.0"),  # noqa: S104 - a service in a container
            port=int(environ.get("USERSVC_PORT", "8000")),
            log_format=environ.get("USERSVC_LOG_FORMAT") or None,
        )
