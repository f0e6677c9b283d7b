"""Telemetry: Prometheus metrics, OpenTelemetry traces and JSON logs (the shell's eyes).

Nothing here is imported by the domain; the http, db and amqp shells call in.
"""
