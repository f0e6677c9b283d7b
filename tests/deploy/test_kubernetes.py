"""The Kubernetes manifests (deploy/kubernetes): rendered by kustomize (kubectl's, through
.ci/kubectl), valid against the Kubernetes version docs/operations.md names, and in step
with the service they run: its port, probe paths, drain and graceful timeouts, its user,
its settings and commands."""

import functools
import re
import runpy
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.support import REPO, final_stage
from usersvc.__main__ import COMMANDS
from usersvc.config import DEFAULTS
from usersvc.http.app import create_app

KUBERNETES = REPO / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
PRODUCTION = KUBERNETES / "overlays" / "production"
OPERATIONS = REPO / "docs" / "operations.md"
KUBERNETES_VERSION = "1.33.0"  # the oldest release the manifests are for (docs say so)


@functools.cache
def render(overlay: Path) -> tuple[dict[str, Any], ...]:
    """`kubectl kustomize` of a folder: its resources, as the cluster would get them."""
    result = subprocess.run(
        ["bash", str(REPO / ".ci" / "kubectl"), "kustomize", str(overlay)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def find(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    [found] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def pod_specs(docs: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in {"Deployment", "Job"}:
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]


def container(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    [only] = find(docs, kind, name)["spec"]["template"]["spec"]["containers"]
    return only


def environment(docs: tuple[dict[str, Any], ...], spec: dict[str, Any]) -> dict[str, str]:
    """A container's environment: its config maps, then its own values; a secret as
    ``secret:NAME/KEY``."""
    values: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        values |= find(docs, "ConfigMap", source["configMapRef"]["name"])["data"]
    for entry in spec.get("env", []):
        if "value" in entry:
            values[entry["name"]] = entry["value"]
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            values[entry["name"]] = f"secret:{ref['name']}/{ref['key']}"
    return values


def dockerfile(keyword: str) -> str:
    return next(args for kw, args in reversed(final_stage()) if kw == keyword)


def gunicorn_config(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict:
    """gunicorn.conf.py as gunicorn reads it, in the container's environment."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if "PROMETHEUS_MULTIPROC_DIR" not in env:  # else it would make a directory of its own
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    return runpy.run_path(str(REPO / "gunicorn.conf.py"))


@pytest.mark.parametrize("overlay", [BASE, PRODUCTION], ids=["base", "production"])
def test_the_manifests_render_and_are_valid_kubernetes_objects(overlay: Path):
    docs = render(overlay)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        ["ServiceAccount", "ConfigMap", "Service", "HorizontalPodAutoscaler", "Job"]
        + ["Deployment"] * 2
        + ["PodDisruptionBudget"] * 2
        + ["NetworkPolicy"] * 3
    )
    for doc in docs:
        # strict: a misspelt field is an error, not ignored
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_kubernetes_version_is_the_one_the_docs_and_ci_name():
    major_minor = KUBERNETES_VERSION.rsplit(".", 1)[0]
    assert f"Kubernetes {major_minor}" in OPERATIONS.read_text()
    assert f"KUBERNETES_VERSION={KUBERNETES_VERSION}" in (REPO / ".ci" / "run").read_text()


def test_a_misspelt_field_does_not_validate():
    """The validator is strict (else the test above could not fail on a typo)."""
    deployment = find(render(BASE), "Deployment", "usersvc")
    spec = deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    broken = {**spec, "readOnlyRootFileSystem": True}
    wrong = yaml.safe_load(yaml.safe_dump(deployment))
    wrong["spec"]["template"]["spec"]["containers"][0]["securityContext"] = broken
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, KUBERNETES_VERSION, strict=True)


def test_the_api_listens_on_the_services_port_and_the_service_sends_there():
    docs = render(PRODUCTION)
    api = container(docs, "Deployment", "usersvc")
    [port] = api["ports"]
    env = environment(docs, api)
    assert port["containerPort"] == int(DEFAULTS["USERSVC_PORT"]) == int(env["USERSVC_PORT"])
    assert str(port["containerPort"]) in dockerfile("EXPOSE").split()
    [service_port] = find(docs, "Service", "usersvc")["spec"]["ports"]
    assert service_port["targetPort"] == port["name"]
    pod = find(docs, "Deployment", "usersvc")["spec"]["template"]
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port["containerPort"])


def test_the_probes_are_the_services_get_routes_on_its_port():
    docs = render(PRODUCTION)
    api = container(docs, "Deployment", "usersvc")
    assert api["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert api["startupProbe"]["httpGet"]["path"] == "/livez"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    routes = {
        (route.method, route.resource.canonical)
        for route in create_app("postgresql://nobody@127.0.0.1/none").router.routes()
    }
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = api[probe]["httpGet"]
        assert ("GET", get["path"]) in routes, probe
        assert get["port"] == api["ports"][0]["name"], probe


def test_the_grace_period_covers_the_drain_and_gunicorns_graceful_timeout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    docs = render(PRODUCTION)
    api = container(docs, "Deployment", "usersvc")
    env = environment(docs, api)
    drain = float(env["USERSVC_DRAIN_SECONDS"])
    assert drain > float(DEFAULTS["USERSVC_DRAIN_SECONDS"])  # the image's default is 0
    gunicorn = gunicorn_config(env, monkeypatch, tmp_path)
    assert dockerfile("CMD") == '["gunicorn", "--config", "gunicorn.conf.py"]'
    assert "command" not in api  # the image's CMD: gunicorn
    pod = find(docs, "Deployment", "usersvc")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > drain + gunicorn["graceful_timeout"]
    assert "lifecycle" not in api  # no preStop sleep on top: the process drains itself


def test_the_relay_runs_alone_on_its_own_port_and_the_api_runs_none():
    docs = render(PRODUCTION)
    relay = container(docs, "Deployment", "usersvc-relay")
    assert relay["command"][0] == "usersvc"
    assert relay["command"][1] in COMMANDS
    assert relay["command"] == ["usersvc", "relay"]
    env = environment(docs, relay)
    [port] = relay["ports"]
    assert port["containerPort"] == int(env["USERSVC_RELAY_PORT"])
    assert port["containerPort"] == int(DEFAULTS["USERSVC_RELAY_PORT"])
    for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
        assert relay[probe]["httpGet"] == {"path": path, "port": port["name"]}
    api = environment(docs, container(docs, "Deployment", "usersvc"))
    assert api["USERSVC_RELAY"] == "off"


def test_every_pod_runs_as_the_images_user_on_a_read_only_root_with_a_writable_tmp(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    docs = render(PRODUCTION)
    uid, _, gid = dockerfile("USER").partition(":")
    for where, template in pod_specs(docs):
        spec = template["spec"]
        assert spec["securityContext"]["runAsUser"] == int(uid), where
        assert spec["securityContext"]["runAsGroup"] == int(gid), where
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["automountServiceAccountToken"] is False, where
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        for one in spec["containers"]:
            context = one["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            mounts = {mount["mountPath"]: mount["name"] for mount in one["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], where
            assert "requests" in one["resources"], where
            assert "memory" in one["resources"]["limits"], where
    # gunicorn's metrics files go where the API pod can write
    api = container(docs, "Deployment", "usersvc")
    env = environment(docs, api)
    metrics_dir = Path(gunicorn_config(env, monkeypatch, tmp_path)["metrics_dir"])
    assert metrics_dir == Path(env["PROMETHEUS_MULTIPROC_DIR"])
    assert metrics_dir.is_relative_to("/tmp")


def test_every_usersvc_setting_named_is_one_the_service_reads():
    """A misspelt variable would be ignored, the default silently used."""
    docs = render(PRODUCTION)
    for where, template in pod_specs(docs):
        for one in template["spec"]["containers"]:
            for name in environment(docs, one):
                if name.startswith("USERSVC_"):
                    assert name in DEFAULTS, (where, name)


def test_secrets_are_referenced_never_contained():
    docs = render(PRODUCTION)
    assert not [d for d in docs if d["kind"] == "Secret"]
    password_in_url = re.compile(r"://[^/@\s:]+:[^@\s]+@")
    for where, template in pod_specs(docs):
        for one in template["spec"]["containers"]:
            for name, value in environment(docs, one).items():
                assert not password_in_url.search(value), (where, name)
    text = "\n".join(path.read_text() for path in KUBERNETES.rglob("*.yaml"))
    assert not password_in_url.search(text)


def test_the_api_goes_through_pgbouncer_and_the_relay_and_migration_go_direct():
    docs = render(PRODUCTION)
    api = environment(docs, container(docs, "Deployment", "usersvc"))
    relay = environment(docs, container(docs, "Deployment", "usersvc-relay"))
    migrate = environment(docs, container(docs, "Job", "usersvc-migrate"))
    assert api["USERSVC_DATABASE_URL"] == "secret:usersvc-database/url"
    assert api["USERSVC_DATABASE_STATEMENT_CACHE"] == "0"
    assert relay["USERSVC_DATABASE_URL"] == "secret:usersvc-database/url"
    assert relay["USERSVC_RELAY_DATABASE_URL"] == "secret:usersvc-database/direct-url"
    assert migrate["USERSVC_DATABASE_URL"] == "secret:usersvc-database/direct-url"
    assert container(docs, "Job", "usersvc-migrate")["command"] == ["usersvc", "migrate"]


def test_production_authenticates_callers_and_the_base_leaves_it_to_an_overlay():
    base = environment(render(BASE), container(render(BASE), "Deployment", "usersvc"))
    assert "USERSVC_AUTH" not in base  # the image refuses to start until an overlay says
    docs = render(PRODUCTION)
    env = environment(docs, container(docs, "Deployment", "usersvc"))
    assert env["USERSVC_AUTH"] == "jwt"
    assert env["USERSVC_AUTH_ISSUER"].startswith("https://")
    assert env["USERSVC_AUTH_AUDIENCE"] == DEFAULTS["USERSVC_AUTH_AUDIENCE"]


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def test_network_policies_admit_only_labelled_callers_and_prometheus():
    docs = render(PRODUCTION)
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    prometheus = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }
    callers = {"namespaceSelector": {}, "podSelector": {"matchLabels": {"usersvc/client": "true"}}}
    allowed = {
        "usersvc": [callers, prometheus],
        "usersvc-relay": [prometheus],
        "usersvc-migrate": [],
    }
    for where, template in pod_specs(docs):
        labels = template["metadata"]["labels"]
        [policy] = [p for p in policies if _selects(p["spec"]["podSelector"], labels)]
        assert policy["spec"]["policyTypes"] == ["Ingress"], where
        peers = [peer for rule in policy["spec"].get("ingress", []) for peer in rule["from"]]
        assert peers == allowed[policy["metadata"]["name"]], where
        ports = {
            p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])
        }
        for rule in policy["spec"].get("ingress", []):
            names = {
                c["name"]: c["containerPort"] for c in template["spec"]["containers"][0]["ports"]
            }
            assert {names[p["port"]] for p in rule["ports"]} <= ports, where


def test_the_autoscaler_and_disruption_budgets_cover_the_deployments():
    docs = render(PRODUCTION)
    api = find(docs, "Deployment", "usersvc")
    assert "replicas" not in api["spec"]  # the autoscaler's to set
    hpa = find(docs, "HorizontalPodAutoscaler", "usersvc")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "usersvc",
    }
    assert 2 <= hpa["minReplicas"] < hpa["maxReplicas"]
    relay = find(docs, "Deployment", "usersvc-relay")
    assert relay["spec"]["replicas"] == 2  # one leads, one stands by
    for deployment, budget in ((api, "usersvc"), (relay, "usersvc-relay")):
        pdb = find(docs, "PodDisruptionBudget", budget)["spec"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert _selects(pdb["selector"], labels)
        assert pdb["maxUnavailable"] == 1
