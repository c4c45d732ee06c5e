"""The Helm chart, rendered by the real helm (installed by .ci/install-tools).

ConfigMap keys are settings of `service.settings.Settings`; objects carry the standard labels;
pods are locked down and probed on /healthz and /readyz; optional objects appear only when
enabled (and, for custom resources, only where their API exists); validateValues refuses
inconsistent values naming the keys; values.yaml and values.schema.json describe every key a
template reads. Schema validation of the rendered objects is .ci/check-chart's job.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.settings import load_settings, settings_rows
from tests.helpers import missing_under_ci

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "dmm-stream"
SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))
TOOLS = Path(os.environ.get("DMM_CACHE_DIR", "~/.cache/dmm-stream")).expanduser() / "tools"
EXTRA_APIS = ("monitoring.coreos.com/v1", "keda.sh/v1alpha1")
# Variables the chart passes that Settings does not declare yet. When one is added to Settings,
# this test fails until it is removed from here.
PENDING_SETTINGS: dict[str, str] = {}  # variable name → what it is
Manifest = dict[str, Any]


@functools.cache
def _helm() -> str:
    found = shutil.which("helm") or str(TOOLS / "bin" / "helm")
    if not Path(found).is_file():
        missing_under_ci(f"helm not found on PATH or in {TOOLS}/bin: run .ci/install-tools")
    return found


def _yaml_documents(text: str) -> list[Manifest]:
    """Parse a multi-document YAML stream (empty documents dropped)."""
    return [document for document in yaml.safe_load_all(text) if document]


def _helm_template(*args: str) -> subprocess.CompletedProcess[str]:
    command = [_helm(), "template", "dmm", str(CHART), "--namespace", "dmm"]
    command += ["--kube-version", "1.34.0", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@functools.cache
def render(*args: str) -> tuple[Manifest, ...]:
    """Objects rendered with helm template ARGS (e.g. "-f", file, "--set", "a=b")."""
    done = _helm_template(*args)
    assert done.returncode == 0, done.stderr
    return tuple(_yaml_documents(done.stdout))


def render_error(*args: str) -> str:
    """helm template's error output for values that must be refused."""
    done = _helm_template(*args)
    assert done.returncode != 0, "helm template accepted values it should refuse"
    return done.stderr


def _scenario_args(path: Path) -> tuple[str, ...]:
    apis = [arg for api in EXTRA_APIS for arg in ("--api-versions", api)]
    return ("-f", str(path), *apis)


def _one(objects: tuple[Manifest, ...], kind: str, name_suffix: str = "") -> Manifest:
    found = [
        o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(name_suffix)
    ]
    assert len(found) == 1, f"expected one {kind} *{name_suffix}, got {len(found)}"
    return found[0]


def _kinds(objects: tuple[Manifest, ...]) -> set[str]:
    return {o["kind"] for o in objects}


def _settings_names() -> set[str]:
    return {name for name, _, _ in settings_rows()}


def _containers(objects: tuple[Manifest, ...]) -> list[Manifest]:
    return [
        container
        for o in objects
        if o["kind"] == "Deployment"
        for container in o["spec"]["template"]["spec"]["containers"]
    ]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda path: path.stem)
def test_configmap_keys_are_settings(scenario: Path) -> None:
    data = _one(render(*_scenario_args(scenario)), "ConfigMap", "dmm-stream")["data"]
    unknown = set(data) - _settings_names()
    assert not unknown, f"ConfigMap keys that are no DMM_* setting of Settings: {sorted(unknown)}"
    assert all(isinstance(value, str) for value in data.values())


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda path: path.stem)
def test_secret_variables_are_settings_or_pending(scenario: Path) -> None:
    names = {
        variable["name"]
        for container in _containers(render(*_scenario_args(scenario)))
        for variable in container.get("env", [])
    }
    assert names <= _settings_names() | set(PENDING_SETTINGS), sorted(names)
    now_declared = set(PENDING_SETTINGS) & _settings_names()
    assert not now_declared, f"Settings declares {now_declared} now: drop it from PENDING_SETTINGS"


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda path: path.stem)
def test_settings_accept_the_rendered_configmap(
    scenario: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _one(render(*_scenario_args(scenario)), "ConfigMap", "dmm-stream")["data"]
    for name in list(os.environ):
        if name.startswith("DMM_"):
            monkeypatch.delenv(name)
    for name, value in data.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()  # raises SettingsError naming any value it refuses
    assert settings.kafka.bootstrap == data["DMM_KAFKA_BOOTSTRAP"].replace(" ", "")
    assert settings.topics.partitions == int(data["DMM_TOPICS_PARTITIONS"])
    assert settings.control.max_soft_links == int(data["DMM_CONTROL_MAX_SOFT_LINKS"])


def test_default_configmap_carries_the_values() -> None:
    data = _one(render(), "ConfigMap", "dmm-stream")["data"]
    assert data["DMM_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert data["DMM_WORKER_GUARANTEE"] == "at-least-once"
    assert data["DMM_TOPICS_PARTITIONS"] == "8"
    assert data["DMM_METRICS_PORT"] == "9400"
    assert "DMM_KAFKA_SASL_USERNAME" not in data


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda path: path.stem)
def test_objects_use_the_standard_labels(scenario: Path) -> None:
    values = (_yaml_documents(scenario.read_text()) or [{}])[0]  # default-values.yaml is {}
    # labels the user asks for (e.g. "release" for kube-prometheus-stack's selector) are fine
    asked = set(values.get("metrics", {}).get("serviceMonitor", {}).get("labels", {}))
    for o in render(*_scenario_args(scenario)):
        labels = {k: v for k, v in o["metadata"]["labels"].items() if k not in asked}
        where = f"{o['kind']} {o['metadata']['name']}"
        assert labels["app.kubernetes.io/name"] == "dmm-stream", where
        assert labels["app.kubernetes.io/instance"] == "dmm", where
        assert labels["app.kubernetes.io/managed-by"] == "Helm", where
        assert labels["helm.sh/chart"] == "dmm-stream-" + _chart_version(), where
        assert not {"app", "release", "chart", "heritage"} & set(labels), where


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda path: path.stem)
def test_pods_are_locked_down_and_probed(scenario: Path) -> None:
    objects = render(*_scenario_args(scenario))
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        template = deployment["spec"]["template"]
        assert deployment["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == (
            component
        )
        assert template["metadata"]["labels"]["app.kubernetes.io/component"] == component
        assert "checksum/config" in template["metadata"]["annotations"]
        pod = template["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        (container,) = pod["containers"]
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert container["args"] == [component]
        probes = {
            kind: container[f"{kind}Probe"]["httpGet"]
            for kind in ("startup", "liveness", "readiness")
        }
        assert {kind: probe["path"] for kind, probe in probes.items()} == {
            "startup": "/healthz",
            "liveness": "/healthz",
            "readiness": "/readyz",
        }
        assert all(probe["port"] == "metrics" for probe in probes.values())
        assert container["resources"]["requests"]["memory"]


def test_config_checksum_rolls_the_pods_on_a_config_change() -> None:
    def checksum(*args: str) -> str:  # a fresh render each time (render() is cached)
        worker = _one(tuple(_yaml_documents(_helm_template(*args).stdout)), "Deployment", "-worker")
        return str(worker["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum() == checksum()
    assert checksum() != checksum("--set", "worker.batchMaxRecords=100")


def test_trainer_is_a_single_pod_replaced_not_rolled() -> None:
    trainer = _one(render(), "Deployment", "-trainer")
    assert trainer["spec"]["replicas"] == 1
    assert trainer["spec"]["strategy"] == {"type": "Recreate"}
    assert not [
        o for o in render("--set", "trainer.enabled=false") if "trainer" in o["metadata"]["name"]
    ]


def test_trainer_standbys_roll() -> None:
    trainer = _one(render("--set", "trainer.replicas=2"), "Deployment", "-trainer")
    assert trainer["spec"]["replicas"] == 2  # one leader trains, the other stands by
    assert trainer["spec"]["strategy"] == {"type": "RollingUpdate"}


def test_worker_replicas_are_left_to_the_autoscaler() -> None:
    assert _one(render(), "Deployment", "-worker")["spec"]["replicas"] == 2
    args = ("--set", "autoscaling.enabled=true", "--set", "autoscaling.maxReplicas=4")
    worker = _one(render(*args), "Deployment", "-worker")
    assert "replicas" not in worker["spec"]
    hpa = _one(render(*args), "HorizontalPodAutoscaler")
    assert hpa["spec"]["maxReplicas"] == 4
    (metric,) = hpa["spec"]["metrics"]
    assert metric["external"]["metric"]["name"] == "dmm_consumer_lag"
    assert metric["external"]["metric"]["selector"]["matchLabels"] == {
        "service": "dmm-dmm-stream-worker"
    }


def test_optional_objects_are_off_by_default() -> None:
    assert _kinds(render()) == {"ConfigMap", "Deployment", "Secret", "Service", "ServiceAccount"}


def test_custom_resources_only_where_their_api_exists() -> None:
    on = ("--set", "metrics.serviceMonitor.enabled=true", "--set", "autoscaling.enabled=true")
    on += ("--set", "autoscaling.engine=keda")
    assert not {"ServiceMonitor", "ScaledObject"} & _kinds(render(*on))
    apis = ("--api-versions", EXTRA_APIS[0], "--api-versions", EXTRA_APIS[1])
    objects = render(*on, *apis)
    monitor = _one(objects, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    scaled = _one(objects, "ScaledObject")
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["topic"] == "dmm.input"
    assert trigger["metadata"]["allowIdleConsumers"] == "false"


def test_signing_key_is_created_or_referenced() -> None:
    created = _one(render("--set", "signingKey.value=abc"), "Secret")
    assert created["data"] == {"signing-key": "YWJj"}  # base64 of "abc"
    generated = _one(render(), "Secret")
    assert len(generated["data"]["signing-key"]) == 64  # 48 random characters, base64

    referenced = render("--set", "signingKey.existingSecret=ours", "--set", "signingKey.key=k")
    assert "Secret" not in _kinds(referenced)
    for container in _containers(referenced):
        (variable,) = [v for v in container["env"] if v["name"] == "DMM_CONTROL_SIGNING_KEY"]
        assert variable["valueFrom"]["secretKeyRef"] == {"name": "ours", "key": "k"}


def test_dashboards_configmap_carries_the_dashboard_for_the_sidecar() -> None:
    configmap = _one(render("--set", "dashboards.enabled=true"), "ConfigMap", "-dashboards")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads((ROOT / "deploy" / "grafana" / "dmm-stream.json").read_text())
    assert json.loads(configmap["data"]["dmm-stream.json"]) == shipped


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--set", "worker.replicas=9"),
            "worker.replicas=9 is above topics.partitions=8",
        ),
        (
            ("--set", "autoscaling.enabled=true", "--set", "autoscaling.maxReplicas=12"),
            "autoscaling.maxReplicas=12 is above topics.partitions=8",
        ),
        (
            ("--set", "autoscaling.enabled=true", "--set", "autoscaling.minReplicas=5",
             "--set", "autoscaling.maxReplicas=3"),
            "autoscaling.minReplicas=5 is above autoscaling.maxReplicas=3",
        ),
        (
            ("--set", "signingKey.existingSecret=s", "--set", "signingKey.value=v"),
            "signingKey.existingSecret and signingKey.value are both set",
        ),
        (
            ("--set", "kafka.saslUsername=u"),
            "kafka.saslPassword.existingSecret is empty",
        ),
        (
            ("--set", "extraConfig.DMM_CONTROL_SIGNING_KEY=x"),
            "extraConfig.DMM_CONTROL_SIGNING_KEY is a secret",
        ),
    ],
)  # fmt: skip
def test_inconsistent_values_are_refused_naming_the_keys(
    args: tuple[str, ...], message: str
) -> None:
    assert message in render_error(*args)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--set", "worker.guarantee=exactly_once"), "worker"),
        (("--set", "kafka.bootstrap=no-port"), "bootstrap"),
        (("--set", "workers.replicas=1"), "workers"),
        (("--set-string", "extraConfig.lowercase=1"), "lowercase"),
    ],
)
def test_the_values_schema_refuses_bad_values(args: tuple[str, ...], message: str) -> None:
    assert message in render_error(*args)


def _chart_version() -> str:
    match = re.search(r"^version:\s*(\S+)", (CHART / "Chart.yaml").read_text(), re.MULTILINE)
    assert match
    return match.group(1)


def _schema() -> dict[str, Any]:
    return dict(json.loads((CHART / "values.schema.json").read_text()))


def _schema_node(path: list[str]) -> dict[str, Any] | None:
    node: dict[str, Any] | None = _schema()
    for key in path:
        if node is None or "properties" not in node:
            return node  # inside a free-form (Kubernetes) object
        node = node["properties"].get(key)
    return node


def test_every_values_path_a_template_reads_is_in_the_schema_and_values() -> None:
    values = _yaml_documents((CHART / "values.yaml").read_text())[0]
    paths = set()
    for template in (CHART / "templates").iterdir():
        paths |= set(re.findall(r"\.Values((?:\.[A-Za-z_]\w*)+)", template.read_text()))
    assert paths
    for path in sorted(paths):
        keys = path.strip(".").split(".")
        assert _schema_node(keys) is not None, f".Values{path} is not in values.schema.json"
        node: Any = values
        for key in keys:
            assert isinstance(node, dict) and key in node, f".Values{path} is not in values.yaml"
            node = node[key]


def test_every_schema_property_is_described_and_objects_are_closed() -> None:
    def walk(node: dict[str, Any], where: str) -> None:
        assert node.get("description"), f"{where}: no description"
        if "properties" in node:
            assert node.get("additionalProperties") is False, f"{where}: not closed"
            for key, child in node["properties"].items():
                walk(child, f"{where}.{key}")

    walk(_schema(), "values")


def test_values_yaml_points_at_the_schema_and_comments_every_key() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    assert lines[0] == "# yaml-language-server: $schema=values.schema.json"
    stack: list[tuple[int, str]] = []  # (indent, key) of the enclosing keys
    for number, line in enumerate(lines):
        match = re.match(r"^( *)([A-Za-z_][\w-]*):", line)
        if not match:
            continue
        indent, key = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = [k for _, k in stack] + [key]
        stack.append((indent, key))
        parent = _schema_node(path[:-1])
        if parent is None or key not in parent.get("properties", {}):
            continue  # inside a free-form Kubernetes object (resources, securityContext, ...)
        previous = lines[number - 1].strip()
        assert previous.startswith("#"), (
            f"values.yaml:{number + 1}: {'.'.join(path)} has no comment"
        )
