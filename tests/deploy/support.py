"""Helpers for the deployment tests: the stack's files, read as the tools that load them do.

No Docker engine runs where these tests run, so what a container would do is done here with
the same commands: the Dockerfile's CMD and HEALTHCHECK, compose's migrate command, a real
Prometheus with the project's scrape config and rules.
"""

import json
import re
import shlex
import shutil
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "monitoring"
COMPOSE = REPO / "compose.yml"
DOCKERFILE = REPO / "Dockerfile"
PROMETHEUS_CONFIG = MONITORING / "prometheus" / "prometheus.yml"
RULES_DIR = MONITORING / "prometheus" / "rules"
DASHBOARDS_DIR = MONITORING / "grafana" / "dashboards"
DATASOURCES = MONITORING / "grafana" / "provisioning" / "datasources" / "datasources.yml"

# Series Prometheus makes itself for every target; the service cannot export them.
PROMETHEUS_SERIES = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    pairs = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        pairs.append((keyword.upper(), rest.strip()))
    return pairs


def final_stage() -> list[tuple[str, str]]:
    """The instructions of the last stage: what the image is made of."""
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def exec_form(arguments: str) -> list[str]:
    """A JSON-array (exec form) argument list; anything else is an error."""
    value = json.loads(arguments)
    assert isinstance(value, list), arguments
    assert all(isinstance(v, str) for v in value), arguments
    return value


def image_cmd() -> list[str]:
    return exec_form(next(args for keyword, args in reversed(final_stage()) if keyword == "CMD"))


def runtime_tree(destination: Path) -> Path:
    """The image's /app as the runtime stage's COPY lines make it, from this checkout (the
    virtual environment excepted: the test runs with the checkout's own)."""
    for keyword, arguments in final_stage():
        if keyword != "COPY":
            continue
        *options, source, target = arguments.split()
        if source.endswith(".venv"):
            continue
        if any(option.startswith("--from=") for option in options):
            source = source.removeprefix("/app/")  # the build stage's /app is this checkout
        copied = destination / target.removeprefix("/app").lstrip("/")
        if (REPO / source).is_dir():
            shutil.copytree(REPO / source, copied, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            copied.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / source, copied)
    return destination


def image_healthcheck() -> list[str]:
    """The HEALTHCHECK's command (exec form, after its --options)."""
    arguments = next(args for keyword, args in final_stage() if keyword == "HEALTHCHECK")
    _, _, command = arguments.partition("CMD ")
    return exec_form(command)


def image_healthcheck_options() -> dict[str, str]:
    arguments = next(args for keyword, args in final_stage() if keyword == "HEALTHCHECK")
    options, _, _ = arguments.partition("CMD ")
    return dict(option.removeprefix("--").split("=", 1) for option in shlex.split(options))


# ---------------------------------------------------------------------------- PromQL

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
    | {"group_left", "group_right", "inf", "nan", "atan2", "start", "end"}
)
_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<selector>.+),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers that are not functions,
    aggregations, keywords, label names or durations. Grafana's label_values(selector, label)
    counts as its selector."""
    if match := _LABEL_VALUES.match(expr):
        expr = match["selector"]
    expr = _STRING.sub('""', expr)
    expr = _MATCHERS.sub(" ", expr)
    expr = _RANGE.sub(" ", expr)
    expr = _GROUPING.sub(" ", expr)
    names = set()
    for match in _IDENTIFIER.finditer(expr):
        word = match.group()
        before = expr[: match.start()]
        if before.endswith("$") or re.search(r"\d\.?$", before):
            continue  # a Grafana variable, or the exponent/unit of a number
        if expr[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if word.lower() in _KEYWORDS:
            continue
        names.add(word)
    return names


def dashboards() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, json.loads(p.read_text())) for p in sorted(DASHBOARDS_DIR.glob("*.json"))]


def _panels(panels: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_prometheus_queries() -> list[tuple[str, str]]:
    """(where, expr) for every Prometheus query of every dashboard: panels and variables."""
    queries = []
    for name, dashboard in dashboards():
        for panel in _panels(dashboard.get("panels", [])):
            for target in panel.get("targets", []):
                if (
                    target.get("datasource", panel.get("datasource", {})).get("type")
                    == "prometheus"
                ):
                    queries.append((f"{name}: panel {panel['title']!r}", target["expr"]))
        for variable in dashboard.get("templating", {}).get("list", []):
            if variable.get("type") == "query" and variable["datasource"]["type"] == "prometheus":
                query = variable["query"]
                expr = query["query"] if isinstance(query, dict) else query
                queries.append((f"{name}: variable ${variable['name']}", expr))
    return queries


def dashboard_loki_queries() -> list[tuple[str, str]]:
    queries = []
    for name, dashboard in dashboards():
        for panel in _panels(dashboard.get("panels", [])):
            for target in panel.get("targets", []):
                if target.get("datasource", panel.get("datasource", {})).get("type") == "loki":
                    queries.append((f"{name}: panel {panel['title']!r}", target["expr"]))
    return queries


def alert_rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in sorted(RULES_DIR.glob("*.yml"))
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
    ]


def rule_queries() -> list[tuple[str, str]]:
    return [
        (f"rule {rule.get('alert') or rule.get('record')}", rule["expr"]) for rule in alert_rules()
    ]


def grafana_to_promql(expr: str) -> str:
    """A dashboard query as Grafana sends it, with the dashboard's variables at their defaults."""
    return expr.replace("$__rate_interval", "1m").replace("$__range", "5m").replace("$route", ".*")


# ---------------------------------------------------------------------------- exposition


def exported_series(text: str) -> set[str]:
    """Every series name a Prometheus text exposition offers: the names of its samples, and
    those its TYPE lines declare (a labelled metric with no child yet still declares them)."""
    names = set()
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "summary": ("", "_sum", "_count"),
        "gauge": ("",),
        "untyped": ("",),
    }
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            base = name.removesuffix("_total") if kind == "counter" else name
            names.update(base + suffix for suffix in suffixes.get(kind, ("",)))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def series_with_samples(text: str) -> set[str]:
    return {
        re.split(r"[{\s]", line, maxsplit=1)[0]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


_SAMPLE = re.compile(r"^(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples of one series name: (labels, value)."""
    found = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and match["name"] == name:
            labels = dict(_LABEL.findall(match["labels"] or ""))
            found.append((labels, float(match["value"])))
    return found


def sample_labels(text: str) -> dict[str, set[str]]:
    """Series name -> the label names its samples carry."""
    labels: dict[str, set[str]] = {}
    for line in text.splitlines():
        if match := _SAMPLE.match(line):
            names = labels.setdefault(match["name"], set())
            names.update(name for name, _ in _LABEL.findall(match["labels"] or ""))
    return labels


def label_names(expr: str) -> set[str]:
    """Label names an expression matches on or groups by (not those of label_values)."""
    if match := _LABEL_VALUES.match(expr):
        expr = match["selector"]
    expr = _STRING.sub('""', expr)
    names = set()
    for matchers in re.findall(r"\{([^{}]*)\}", expr):
        names.update(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
    for grouping in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^()]*)\)", expr):
        names.update(n.strip() for n in grouping.split(",") if n.strip())
    return names
