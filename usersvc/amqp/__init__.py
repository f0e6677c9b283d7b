"""The RabbitMQ shell: the outbox relay that publishes the events of §4."""

from usersvc.amqp.relay import Relay, RelayHealth, RelaySettings, outbox_backlog

__all__ = ["Relay", "RelayHealth", "RelaySettings", "outbox_backlog"]
