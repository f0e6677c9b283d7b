"""The monitoring configuration holds together: datasources, dashboards, Loki, the log
agents and Jaeger agree on names, ports and labels. (Prometheus's own files are checked by
promtool and a real Prometheus; see test_prometheus.py.)"""

import re
from typing import Any

from tests.deploy.support import (
    DATASOURCES,
    MONITORING,
    dashboard_loki_queries,
    dashboards,
    load_yaml,
)


def datasources() -> dict[str, dict[str, Any]]:
    return {d["uid"]: d for d in load_yaml(DATASOURCES)["datasources"]}


def test_datasources_for_prometheus_loki_and_jaeger_at_their_compose_addresses() -> None:
    sources = datasources()
    assert {(uid, d["type"], d["url"]) for uid, d in sources.items()} == {
        ("prometheus", "prometheus", "http://prometheus:9090"),
        ("loki", "loki", "http://loki:3100"),
        ("jaeger", "jaeger", "http://jaeger:16686"),
    }


def test_a_logs_trace_id_opens_its_trace_in_jaeger() -> None:
    (field,) = datasources()["loki"]["jsonData"]["derivedFields"]
    assert field["matcherType"] == "label"  # structured metadata, not a regex on the line
    assert field["matcherRegex"] == "trace_id"
    assert field["datasourceUid"] == "jaeger"
    # `$$` is a literal `$` in provisioning files (a single one would be an env variable).
    assert field["url"] == "$${__value.raw}"


def test_a_trace_opens_its_services_logs_in_loki() -> None:
    link = datasources()["jaeger"]["jsonData"]["tracesToLogsV2"]
    assert link["datasourceUid"] == "loki"
    assert {"key": "service.name", "value": "service"} in link["tags"]
    assert link["filterByTraceID"] is True


def test_every_dashboard_query_uses_a_provisioned_datasource() -> None:
    uids = datasources()
    for name, dashboard in dashboards():
        refs = []
        stack = list(dashboard["panels"])
        while stack:
            panel = stack.pop()
            stack.extend(panel.get("panels", []))
            refs += [panel.get("datasource")] + [
                t.get("datasource") for t in panel.get("targets", [])
            ]
        refs += [v.get("datasource") for v in dashboard["templating"]["list"]]
        for ref in filter(None, refs):
            assert ref["uid"] in uids, (name, ref)
            assert uids[ref["uid"]]["type"] == ref["type"], (name, ref)


def test_the_dashboard_covers_red_domain_pool_outbox_relay_and_logs() -> None:
    ((_, dashboard),) = dashboards()
    text = str(dashboard)
    for metric in (
        "usersvc_http_requests_total",
        "usersvc_http_request_duration_seconds_bucket",
        "usersvc_commands_total",
        "usersvc_db_pool_connections_in_use",
        "usersvc_outbox_backlog",
        "usersvc_outbox_oldest_age_seconds",
        "usersvc_relay_leader",
        "usersvc_relay_broker_connected",
    ):
        assert metric in text, metric
    assert any(p["type"] == "logs" for p in dashboard["panels"])
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_the_logs_panel_selects_by_the_two_labels_the_agents_set() -> None:
    for where, expr in dashboard_loki_queries():
        selector = re.match(r"^\{(?P<matchers>[^}]*)\}", expr)
        assert selector, where
        labels = {m.split("=")[0].strip().rstrip("!~") for m in selector["matchers"].split(",")}
        assert labels <= {"service", "level"}, (where, labels)


def test_loki_uses_schema_v13_on_tsdb_and_keeps_structured_metadata() -> None:
    loki = load_yaml(MONITORING / "loki" / "loki.yml")
    (schema,) = loki["schema_config"]["configs"]
    assert (schema["schema"], schema["store"], schema["object_store"]) == (
        "v13",
        "tsdb",
        "filesystem",
    )
    assert schema["index"]["period"] == "24h"
    assert loki["limits_config"]["allow_structured_metadata"] is True
    assert loki["server"]["http_listen_port"] == 3100


def alloy_components(text: str) -> set[str]:
    """`kind "label"` blocks of an Alloy file, as `kind.label`."""
    return {f"{m[1]}.{m[2]}" for m in re.finditer(r'^([a-z_.]+)\s+"([a-z_]+)"\s*\{', text, re.M)}


def test_alloy_references_only_components_it_declares_and_balances_its_blocks() -> None:
    text = (MONITORING / "alloy" / "config.alloy").read_text()
    code = re.sub(r"//[^\n]*|\"(?:[^\"\\]|\\.)*\"", "", text)
    assert code.count("{") == code.count("}")
    assert code.count("[") == code.count("]")
    declared = alloy_components(text)
    referenced = set(
        re.findall(r"\b((?:discovery|loki)\.[a-z_]+\.[a-z_]+)\.(?:targets|rules|receiver)\b", code)
    )
    assert referenced
    assert referenced <= declared, referenced - declared


def _stage_values(text: str, stage: str) -> set[str]:
    block = re.search(rf"stage\.{stage}\s*\{{\s*values\s*=\s*\{{(?P<body>[^}}]*)\}}", text)
    assert block, stage
    return set(re.findall(r"([a-z_]+)\s*=", block["body"]))


def test_alloy_and_promtail_label_service_and_level_only_and_keep_trace_id_as_metadata() -> None:
    alloy = (MONITORING / "alloy" / "config.alloy").read_text()
    assert _stage_values(alloy, "labels") == {"level"}
    assert _stage_values(alloy, "structured_metadata") == {"trace_id", "span_id", "request_id"}
    assert re.search(r'target_label\s*=\s*"service"', alloy)
    assert alloy.count("target_label") == 1

    promtail = load_yaml(MONITORING / "promtail" / "promtail.yml")
    (job,) = promtail["scrape_configs"]
    assert [r["target_label"] for r in job["relabel_configs"]] == ["service"]
    stages = {next(iter(s)): next(iter(s.values())) for s in job["pipeline_stages"]}
    assert set(stages["labels"]) == {"level"}
    assert set(stages["structured_metadata"]) == {"trace_id", "span_id", "request_id"}
    assert promtail["clients"][0]["url"] == "http://loki:3100/loki/api/v1/push"
    assert '"http://loki:3100/loki/api/v1/push"' in alloy


def test_jaeger_v2_receives_otlp_and_stores_and_serves_the_traces() -> None:
    jaeger = load_yaml(MONITORING / "jaeger" / "config.yaml")
    pipeline = jaeger["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"]
    (exporter,) = pipeline["exporters"]
    store = jaeger["exporters"][exporter]["trace_storage"]
    assert store in jaeger["extensions"]["jaeger_storage"]["backends"]
    assert jaeger["extensions"]["jaeger_query"]["storage"]["traces"] == store
    assert jaeger["extensions"]["jaeger_query"]["http"]["endpoint"].endswith(":16686")
    assert set(jaeger["service"]["extensions"]) >= {
        "jaeger_storage",
        "jaeger_query",
        "healthcheckv2",
    }
    for component in pipeline["processors"]:
        assert component in jaeger["processors"]
