"""The service as run, exporting its spans over OTLP (both protocols) to a receiver
started here, configured by nothing but the standard OTEL_* variables."""

import asyncio
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.telemetry.processes import (
    environment,
    free_port,
    json_lines,
    request,
    stop,
    usersvc,
    wait_ready,
)

CREATE_ROUTE = "/api/v1/users/create_user"


class Received:
    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.arrived = threading.Event()

    def add(self, message: ExportTraceServiceRequest) -> None:
        self.requests.append(message)
        self.arrived.set()

    def spans(self) -> list[tuple[str, str, bytes]]:
        """(service name, span name, trace id) of every span received."""
        found = []
        for message in self.requests:
            for resource_spans in message.resource_spans:
                service = next(
                    a.value.string_value
                    for a in resource_spans.resource.attributes
                    if a.key == "service.name"
                )
                for scope in resource_spans.scope_spans:
                    found.extend((service, span.name, span.trace_id) for span in scope.spans)
        return found


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, received: Received) -> None:
        self._received = received

    def Export(self, message: ExportTraceServiceRequest, context: object) -> object:
        self._received.add(message)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def grpc_receiver() -> Iterator[tuple[str, Received]]:
    received = Received()
    server = grpc.server(ThreadPoolExecutor(2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(received), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        server.stop(None)


@pytest.fixture
async def http_receiver(aiohttp_server) -> tuple[str, Received]:
    received = Received()

    async def export(request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        received.add(message)
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    app = web.Application()
    app.router.add_post("/v1/traces", export)
    server = await aiohttp_server(app)
    return f"http://127.0.0.1:{server.port}", received


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
async def test_spans_reach_an_otlp_receiver_configured_by_the_standard_variables(
    protocol: str, request_fixture: tuple[str, Received], database_url: str
) -> None:
    endpoint, received = request_fixture
    port = free_port()
    env = environment(
        USERSVC_DATABASE_URL=database_url,
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_EXPORTER_OTLP_INSECURE="true",
        OTEL_SERVICE_NAME="usersvc-otlp-test",
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    server = usersvc("serve", "--host", "127.0.0.1", "--port", str(port), "--no-relay", env=env)
    try:
        await asyncio.to_thread(wait_ready, server, port)
        body = {
            "phone": 79169990002,
            "email": "otlp@example.com",
            "firstname": "Ivan",
            "lastname": "Petrov",
            "middlename": None,
        }
        status, _ = await asyncio.to_thread(request, f"http://127.0.0.1:{port}{CREATE_ROUTE}", body)
        assert status == 201

        def create_user_seen() -> bool:
            return any(name == f"POST {CREATE_ROUTE}" for _, name, _ in received.spans())

        async with asyncio.timeout(20):
            while not create_user_seen():
                await asyncio.to_thread(received.arrived.wait, 0.2)
                received.arrived.clear()
    finally:
        output = await asyncio.to_thread(stop, server)
    spans = received.spans()
    assert {service for service, _, _ in spans} == {"usersvc-otlp-test"}
    [trace_id] = {trace for _, name, trace in spans if name == f"POST {CREATE_ROUTE}"}
    in_trace = {name for _, name, trace in spans if trace == trace_id}
    assert {"decide", "create_user"} <= in_trace
    [line] = [line for line in json_lines(output) if line.get("route") == CREATE_ROUTE]
    assert line["trace_id"] == trace_id.hex()
    assert "otlp@example.com" not in json.dumps(line)


@pytest.fixture
def request_fixture(protocol: str, request: pytest.FixtureRequest) -> tuple[str, Received]:
    name = "grpc_receiver" if protocol == "grpc" else "http_receiver"
    return request.getfixturevalue(name)
