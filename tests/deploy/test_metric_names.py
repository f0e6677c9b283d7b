"""Every metric name a dashboard panel or an alert rule uses is one the running service
exports (after traffic), so no panel shows "No data" and no alert stays silent over a typo."""

from collections import defaultdict

from tests.deploy.conftest import Service
from tests.deploy.support import (
    PROMETHEUS_SERIES,
    dashboard_prometheus_queries,
    exported_series,
    label_names,
    metric_names,
    rule_queries,
    sample_labels,
)

# Labels Prometheus attaches at scrape time (the service cannot export them), and `le`,
# which only the _bucket series carry.
TARGET_LABELS = {"job", "instance"}


def used_names() -> dict[str, list[str]]:
    used: dict[str, list[str]] = defaultdict(list)
    for where, expr in dashboard_prometheus_queries() + rule_queries():
        for name in metric_names(expr):
            used[name].append(where)
    return used


def missing_names(exported: set[str]) -> dict[str, list[str]]:
    return {
        name: wheres
        for name, wheres in used_names().items()
        if name not in exported and name not in PROMETHEUS_SERIES
    }


def test_every_metric_a_dashboard_or_alert_rule_uses_is_exported(service: Service) -> None:
    exported = exported_series(service.metrics())
    assert used_names(), "no query found in the dashboards and rules"
    assert missing_names(exported) == {}


def test_a_misspelt_metric_in_a_query_is_reported() -> None:
    # The cross-check itself: a name one letter off is not taken for an exported one.
    exported = {"usersvc_http_requests_total"}
    assert metric_names('sum(rate(usersvc_http_request_total{job="usersvc"}[5m]))') == {
        "usersvc_http_request_total"
    }
    assert "usersvc_http_request_total" not in exported


def test_every_label_a_query_matches_or_groups_by_is_on_its_series(service: Service) -> None:
    labels = sample_labels(service.metrics())
    wrong = []
    for where, expr in dashboard_prometheus_queries() + rule_queries():
        carried = set(TARGET_LABELS)
        for name in metric_names(expr):
            carried |= labels.get(name, set())
        if not any(name in labels for name in metric_names(expr)):
            continue  # no sample yet (a labelled series never observed): nothing to compare
        wrong += [(where, label) for label in label_names(expr) - carried]
    assert wrong == []


def test_metric_names_are_selectors_not_functions_labels_keywords_or_variables() -> None:
    expr = (
        'sum by (route) (rate(usersvc_http_requests_total{job="usersvc", status=~"5.."}'
        "[$__rate_interval])) / on (route) group_left sum by (route) (rate(b_total[5m]))"
        ' > 0.05 and absent(up{job="usersvc"} == 1) unless c offset 5m'
    )
    assert metric_names(expr) == {"usersvc_http_requests_total", "b_total", "up", "c"}
    assert metric_names('label_values(usersvc_http_requests_total{job="usersvc"}, route)') == {
        "usersvc_http_requests_total"
    }
    assert metric_names("histogram_quantile(0.99, sum by (le) (rate(x_bucket[1m]))) > 1e3") == {
        "x_bucket"
    }


def test_exported_series_include_those_a_type_line_declares_without_samples() -> None:
    text = "\n".join(
        [
            "# TYPE a_total counter",
            "# TYPE h histogram",
            'h_bucket{le="+Inf"} 1.0',
            "# TYPE g gauge",
            "g 1.0",
        ]
    )
    assert exported_series(text) == {"a_total", "h_bucket", "h_sum", "h_count", "g"}
