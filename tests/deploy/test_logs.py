"""The service's real log lines carry what the log agents extract (monitoring/alloy,
monitoring/promtail): JSON with `time` in a form their RFC3339Nano timestamp stage parses,
`level` (a label, and the dashboard's $level filter), and trace_id/span_id/request_id (the
structured metadata; trace_id is what Grafana links to Jaeger)."""

import json
import re

from tests.deploy.conftest import Service
from tests.deploy.support import dashboards

# Go's time.RFC3339Nano layout as the agents' timestamp stages parse it.
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")


def log_lines(service: Service) -> list[dict[str, object]]:
    lines = service.log.read_text().splitlines()
    assert lines
    return [json.loads(line) for line in lines]  # every line is one JSON object


def test_every_line_has_a_parsable_time_and_a_level(service: Service) -> None:
    for line in log_lines(service):
        assert RFC3339.match(str(line["time"])), line
        assert line["level"], line


def test_request_lines_carry_the_ids_kept_as_structured_metadata(service: Service) -> None:
    access = [line for line in log_lines(service) if line.get("logger") == "usersvc.access"]
    # Prometheus's scrapes are logged but not traced: they would drown the traces.
    api = [line for line in access if line["route"] != "/metrics"]
    assert api
    assert {line["route"] for line in access} >= {"/metrics", "/api/v1/users/create_user"}
    for line in api:
        assert re.fullmatch(r"[0-9a-f]{32}", str(line["trace_id"])), line
        assert re.fullmatch(r"[0-9a-f]{16}", str(line["span_id"])), line
        assert line["request_id"], line


def test_every_level_the_service_writes_is_one_the_dashboard_filters_by(service: Service) -> None:
    ((_, dashboard),) = dashboards()
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "level"]
    offered = {option.lower() for option in variable["query"].split(",")}
    written = {str(line["level"]).lower() for line in log_lines(service)}
    assert written <= offered
