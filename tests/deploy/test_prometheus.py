"""A real Prometheus (Debian's package) with the project's scrape config and alert rules,
scraping the running service: it finds the request series through its HTTP API, loads and
evaluates every rule without error, and answers every dashboard query with data.

The only change to the project's config: the usersvc job's DNS discovery (the compose
service name, which resolves only inside compose's network) becomes a static target at the
test's service, and the intervals become 1 s so the test does not wait for minutes."""

import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from attrs import frozen

from tests.deploy.conftest import Service
from tests.deploy.support import (
    PROMETHEUS_CONFIG,
    RULES_DIR,
    dashboard_prometheus_queries,
    free_port,
    grafana_to_promql,
    load_yaml,
    metric_names,
    series_with_samples,
)

TIMEOUT = 60.0


@frozen
class Prometheus:
    url: str

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.api("query", query=expr)["result"]

    def wait_for(self, expr: str) -> list[dict[str, Any]]:
        deadline = time.monotonic() + TIMEOUT
        while not (result := self.query(expr)):
            if time.monotonic() > deadline:
                pytest.fail(f"Prometheus found nothing for {expr} within {TIMEOUT}s")
            time.sleep(0.5)
        return result


def prometheus_config(service: Service, port: int) -> dict[str, Any]:
    config = load_yaml(PROMETHEUS_CONFIG)
    config["global"] |= {
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "evaluation_interval": "1s",
    }
    config["rule_files"] = [str(RULES_DIR / "*.yml")]
    for job in config["scrape_configs"]:
        if job["job_name"] == "usersvc":
            del job["dns_sd_configs"]
            job["static_configs"] = [{"targets": [f"127.0.0.1:{service.port}"]}]
        elif job["job_name"] == "prometheus":
            job["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
    return config


@pytest.fixture(scope="session")
def prometheus(service: Service) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(binary).exists():
        pytest.fail("no prometheus binary: install Debian's prometheus package (.ci/run does)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="usersvc-prometheus-") as scratch:
        config = Path(scratch) / "prometheus.yml"
        config.write_text(yaml.safe_dump(prometheus_config(service, port)))
        log = Path(scratch) / "prometheus.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={scratch}/data",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            server = Prometheus(f"http://127.0.0.1:{port}")
            deadline = time.monotonic() + TIMEOUT
            while True:
                try:
                    with urllib.request.urlopen(server.url + "/-/ready", timeout=2):
                        break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"Prometheus did not start:\n{log.read_text()[-3000:]}")
                    time.sleep(0.3)
            server.wait_for('up{job="usersvc"} == 1')
            yield server
        finally:
            process.terminate()
            process.wait(30)


def test_prometheus_scrapes_the_service_and_finds_its_request_series(
    prometheus: Prometheus,
) -> None:
    result = prometheus.wait_for('usersvc_http_requests_total{job="usersvc"}')
    routes = {(s["metric"]["method"], s["metric"]["route"], s["metric"]["status"]) for s in result}
    assert ("POST", "/api/v1/users/create_user", "201") in routes
    assert ("GET", "/api/v1/users/{user_id}", "404") in routes
    assert ("GET", "unmatched", "404") in routes


def test_prometheus_loads_every_alert_rule_and_evaluates_it_without_error(
    prometheus: Prometheus,
) -> None:
    deadline = time.monotonic() + TIMEOUT
    while True:
        rules = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
        if rules and all(r["health"] != "unknown" for r in rules):  # each evaluated once
            break
        if time.monotonic() > deadline:
            pytest.fail(f"rules not all evaluated: {rules}")
        time.sleep(0.5)
    names = {r["name"] for r in rules}
    assert names >= {
        "UsersvcHighErrorRatio",
        "UsersvcHighLatencyP99",
        "UsersvcOutboxStale",
        "UsersvcRelayWithoutLeader",
        "UsersvcDown",
        "UsersvcUnavailable",
    }
    assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []
    # A healthy service after light traffic: nothing fires.
    alerts = prometheus.api("alerts")["alerts"]
    firing = [a["labels"]["alertname"] for a in alerts if a["state"] == "firing"]
    assert [a for a in firing if a.startswith("Usersvc")] == []


def test_every_dashboard_query_answers_with_data_where_its_series_have_samples(
    prometheus: Prometheus, service: Service
) -> None:
    with_samples = series_with_samples(service.metrics()) | {"up"}
    # Rates need two scrapes of the traffic's counters.
    prometheus.wait_for('count_over_time(usersvc_http_requests_total{job="usersvc"}[1m]) > 2')
    empty = []
    for where, expr in dashboard_prometheus_queries():
        promql = grafana_to_promql(expr)
        if promql.startswith("label_values("):
            selector = promql.removeprefix("label_values(").rsplit(",", 1)[0]
            values = prometheus.api("label/route/values", **{"match[]": selector})
            if not values:
                empty.append((where, promql))
            continue
        result = prometheus.query(promql)  # a query Prometheus rejects fails here
        if not result and metric_names(expr) <= with_samples:
            empty.append((where, promql))
    assert empty == []
