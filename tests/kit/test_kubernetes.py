"""``examples/k8s``: the committed manifests are what the generator writes, and every object is
valid against its schema (kubernetes-validate for core objects; the prometheus-operator CRDs'
openAPIV3Schema, kept in tests/data/schemas, for ServiceMonitor, PodMonitor and
PrometheusRule)."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from asgi_mcp_metrics.__main__ import main
from asgi_mcp_metrics.kit.yaml import dump

from ..promtool import PROMTOOL_TIMEOUT_SECONDS, promtool_binary

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "examples" / "k8s"
SCHEMAS = ROOT / "tests" / "data" / "schemas"
CRDS = {"ServiceMonitor": "servicemonitors", "PodMonitor": "podmonitors",
        "PrometheusRule": "prometheusrules"}
KUBERNETES_VERSION = "1.30.0"


def readme_commands() -> list[list[str]]:
    """The generator commands of examples/k8s/README.md, as argument lists."""
    text = (K8S / "README.md").read_text()
    prefix = "../../.venv/bin/python -m asgi_mcp_metrics "
    return [shlex.split(line[len(prefix):]) for line in text.splitlines()
            if line.startswith(prefix)]


def crd_schema(plural: str) -> dict[str, Any]:
    """A CRD's schema; Go's mid-pattern ``^(?i)`` becomes Python's leading ``(?i)^``."""
    def fix(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: (value.replace("^(?i)", "(?i)^") if key == "pattern" else fix(value))
                    for key, value in node.items()}
        if isinstance(node, list):
            return [fix(item) for item in node]
        return node
    schema: dict[str, Any] = fix(json.loads((SCHEMAS / f"{plural}.v1.openapi.json").read_text()))
    return schema


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_the_readme_names_every_generated_file() -> None:
    outputs = {argv[argv.index("-o") + 1] for argv in readme_commands()}
    assert outputs == {"servicemonitor.yaml", "podmonitor.yaml", "prometheusrule.yaml"}


@pytest.mark.parametrize("argv", readme_commands(), ids=lambda argv: argv[0])
def test_committed_manifests_are_what_the_generator_writes(argv: list[str],
                                                           tmp_path: Path) -> None:
    index = argv.index("-o") + 1
    committed = K8S / argv[index]
    argv = [*argv[:index], str(tmp_path / argv[index]), *argv[index + 1:]]
    assert main(argv) == 0
    assert (tmp_path / committed.name).read_bytes() == committed.read_bytes(), (
        f"{committed} is stale: regenerate it with the command in examples/k8s/README.md")


@pytest.mark.parametrize("name", ["deployment.yaml", "service.yaml"])
def test_core_objects_are_valid(name: str) -> None:
    for document in documents(K8S / name):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_deployments_share_metrics_between_workers() -> None:
    for deployment in documents(K8S / "deployment.yaml"):
        spec = deployment["spec"]["template"]["spec"]
        container = spec["containers"][0]
        workers = int(container["command"][container["command"].index("--workers") + 1])
        assert workers > 1
        env = {item["name"]: item["value"] for item in container["env"]}
        mount = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        directory = env["PROMETHEUS_MULTIPROC_DIR"]
        (volume,) = [name for name, path in mount.items() if path == directory]
        assert "emptyDir" in volumes[volume]
        assert deployment["spec"]["template"]["metadata"]["labels"]["variant"]


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_operator_objects_match_their_crd_schema(kind: str) -> None:
    schema = crd_schema(CRDS[kind])
    (document,) = documents(K8S / f"{kind.lower()}.yaml")
    assert document["kind"] == kind
    jsonschema.validate(document, schema)
    if kind != "PrometheusRule":
        (endpoint,) = document["spec"].get("endpoints") or document["spec"][
            "podMetricsEndpoints"]
        assert endpoint["relabelings"] == [{
            "action": "replace", "sourceLabels": ["__meta_kubernetes_pod_label_variant"],
            "targetLabel": "variant"}]


def test_a_broken_monitor_fails_the_crd_schema() -> None:
    schema = crd_schema("servicemonitors")
    (document,) = documents(K8S / "servicemonitor.yaml")
    document["spec"]["endpoints"][0]["relabelings"][0]["action"] = "copy"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema)


def test_the_selected_labels_match_the_service_and_the_pods() -> None:
    (monitor,) = documents(K8S / "servicemonitor.yaml")
    (service,) = documents(K8S / "service.yaml")
    selected = monitor["spec"]["selector"]["matchLabels"]
    assert selected.items() <= service["metadata"]["labels"].items()
    port_names = {port["name"] for port in service["spec"]["ports"]}
    assert monitor["spec"]["endpoints"][0]["port"] in port_names
    for deployment in documents(K8S / "deployment.yaml"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selected.items() <= labels.items()
        assert service["spec"]["selector"].items() <= labels.items()
    (rule,) = documents(K8S / "prometheusrule.yaml")
    exprs = [r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]]
    assert all('job="mcp-proxy"' in expr for expr in exprs)  # the Service name is the job


def test_the_prometheusrule_passes_promtool(tmp_path: Path) -> None:
    promtool = promtool_binary()
    (rule,) = documents(K8S / "prometheusrule.yaml")
    (tmp_path / "rules.yml").write_text(dump(rule["spec"]))
    completed = subprocess.run([promtool, "check", "rules", str(tmp_path / "rules.yml")],
                               capture_output=True, text=True,
                               timeout=PROMTOOL_TIMEOUT_SECONDS, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
