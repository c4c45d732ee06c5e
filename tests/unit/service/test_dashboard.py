"""Dashboard and alert rules only use metrics that service/metrics.py declares.

Every PromQL query of every panel (and of the dashboard's variables) is parsed for metric
names; each must be a series the worker or trainer registry exposes (a histogram's
``_bucket``, ``_count`` and ``_sum`` included). The alert rules and their unit tests get the
same check, and the chart's copy of the dashboard must equal the one in deploy/grafana.

`dashboard_series_missing_from` makes the check against a scraped ``/metrics`` exposition
instead of the declared registries: tests/integration/test_metrics_prometheus.py calls it
with a running worker's; the trainer's integration test calls it with the trainer's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from service.dlq import REASONS
from service.metrics import trainer_metrics, worker_metrics

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "deploy" / "grafana" / "dmm-stream.json"
CHART_DASHBOARD = ROOT / "helm" / "dmm-stream" / "dashboards" / "dmm-stream.json"
RULES_DIR = ROOT / "deploy" / "prometheus"

HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")
PROMQL_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"}
    | {"and", "or", "unless", "atan2", "inf", "nan", "Inf", "NaN"}
)
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
# An identifier not glued to a preceding digit, letter, dot or colon (so "5m", "1e3" are not).
_IDENTIFIER = re.compile(r"(?<![\w:.$])[A-Za-z_:][\w:]*")


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (functions, keywords, labels and durations removed).

    Example: ``histogram_quantile(0.9, sum by (le) (rate(x_bucket{job="a"}[5m])))`` → ``{"x_bucket"}``.
    """
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries, incl. $__rate_interval
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)  # Grafana variables outside strings
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name = match.group()
        is_call = text[match.end() :].lstrip().startswith("(")
        if not is_call and name not in PROMQL_KEYWORDS:
            names.add(name)
    return names


def declared_series() -> tuple[set[str], set[str]]:
    """(series names the two registries expose, names of their histograms)."""
    registry = CollectorRegistry()
    worker_metrics(registry)
    trainer_metrics(registry)
    names, histograms = set(), set()
    for family in registry.collect():
        if family.type == "counter":
            names.add(family.name + "_total")
        else:
            names.add(family.name)
        if family.type == "histogram":
            histograms.add(family.name)
    return names, histograms


def undeclared(names: set[str]) -> set[str]:
    """The names in `names` that neither registry exposes."""
    declared, histograms = declared_series()
    missing = set()
    for name in names:
        base = next((name.removesuffix(s) for s in HISTOGRAM_SUFFIXES if name.endswith(s)), None)
        if name not in declared and base not in histograms:
            missing.add(name)
    return missing


Component = Literal["worker", "trainer"]
TRAINER_PREFIX = "dmm_trainer_"


def dashboard_metric_names(component: Component) -> set[str]:
    """Series names the dashboard's panels and variables query, of one component.

    The trainer's are the ``dmm_trainer_*`` names; every other name is the worker's.
    """
    dashboard = _dashboard()
    exprs = [expr for _, expr in _panel_queries(dashboard)]
    for variable in dashboard["templating"]["list"]:
        label_values = re.fullmatch(
            r"label_values\((.*),\s*(\w+)\)", variable.get("definition", "")
        )
        if label_values:
            exprs.append(label_values.group(1))
    names = set().union(*(metric_names(expr) for expr in exprs))
    return {name for name in names if name.startswith(TRAINER_PREFIX) == (component == "trainer")}


def exposed_series(exposition: str) -> set[str]:
    """Names of the samples in a ``/metrics`` text exposition.

    A metric without a sample (a labelled gauge none of whose children was set yet) is not
    there: the dashboard would show nothing for it.
    """
    return {
        sample.name
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def dashboard_series_missing_from(exposition: str, component: Component) -> set[str]:
    """The `component`'s dashboard series that have no sample in `exposition` (empty = all).

    Example (the trainer's integration test)::

        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        assert not dashboard_series_missing_from(text, "trainer")
    """
    return dashboard_metric_names(component) - exposed_series(exposition)


def _panels(container: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows."""
    for panel in container.get("panels", []):
        yield panel
        yield from _panels(panel)


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in _panels(dashboard)
        for target in panel.get("targets", [])
        if "expr" in target
    ]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'histogram_quantile(0.9, sum by (le) (rate(dmm_x_bucket{job=~"a|b"}[$__rate_interval])))',
            {"dmm_x_bucket"},
        ),
        (
            "sum(rate(a_total[5m])) / on(job) group_left sum(b offset 1h) > bool 1e3",
            {"a_total", "b"},
        ),
        ('count_values("version", dmm_model_version)', {"dmm_model_version"}),
        ("label_values(dmm_model_version, namespace)", {"dmm_model_version", "namespace"}),
        ('max_over_time(up{job="x"}[5m:1m]) unless ignoring(pod) c', {"up", "c"}),
        ("deriv(lag[10m]) > 0 and sum without (partition) (lag) > 1000", {"lag"}),
    ],
)
def test_metric_names_are_parsed_from_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_every_panel_query_uses_declared_metrics() -> None:
    queries = _panel_queries(_dashboard())
    assert len(queries) >= 15, "the dashboard lost its panels"
    problems = {
        f"{title}: {sorted(missing)}"
        for title, expr in queries
        if (missing := undeclared(metric_names(expr)))
    }
    assert not problems, "metrics not declared in service/metrics.py: " + "; ".join(problems)


def test_every_declared_metric_is_on_the_dashboard() -> None:
    used = set().union(*(metric_names(expr) for _, expr in _panel_queries(_dashboard())))
    used |= {name.removesuffix("_bucket") for name in used}
    declared, _ = declared_series()
    assert declared - used == set()


def test_dashboard_variables_query_declared_metrics() -> None:
    for variable in _dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        label_values = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", variable["definition"])
        assert label_values, variable["name"]
        assert not undeclared(metric_names(label_values.group(1))), variable["name"]


def test_panels_are_described_and_use_the_datasource_variable() -> None:
    dashboard = _dashboard()
    ids = [panel["id"] for panel in _panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in _panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel["description"], panel["id"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


def test_latency_panels_use_histogram_quantile() -> None:
    exprs = [expr for _, expr in _panel_queries(_dashboard())]
    for histogram in ("dmm_end_to_end_seconds", "dmm_tick_seconds"):
        quantiles = [e for e in exprs if f"{histogram}_bucket" in e]
        assert quantiles and all(e.startswith("histogram_quantile(") for e in quantiles)
        assert all("by (le)" in e for e in quantiles), histogram


def test_alert_rules_and_their_tests_use_declared_metrics() -> None:
    for name in ("rules.yml", "rules_test.yml"):
        text = (RULES_DIR / name).read_text()
        used = set(re.findall(r"\bdmm_[a-z0-9_]+", text))
        assert used, name
        assert not undeclared(used), f"{name}: {sorted(undeclared(used))}"


def test_the_dashboard_names_split_into_worker_and_trainer_series() -> None:
    worker, trainer = dashboard_metric_names("worker"), dashboard_metric_names("trainer")
    assert {"dmm_messages_total", "dmm_tick_seconds_bucket", "dmm_consumer_lag"} <= worker
    assert {"dmm_trainer_failures_total", "dmm_trainer_active"} <= trainer
    assert not worker & trainer


def test_a_registry_with_samples_for_every_series_leaves_nothing_missing() -> None:
    registry = CollectorRegistry()
    worker_metrics(registry, dlq_reasons=REASONS).set_consumer_lag({0: 3})
    trainer_metrics(registry)
    exposition = generate_latest(registry).decode()
    assert dashboard_series_missing_from(exposition, "worker") == set()
    assert dashboard_series_missing_from(exposition, "trainer") == set()

    unset = CollectorRegistry()
    worker_metrics(unset, dlq_reasons=REASONS)  # no lag set yet: a labelled gauge, no samples
    missing = dashboard_series_missing_from(generate_latest(unset).decode(), "worker")
    assert missing == {"dmm_consumer_lag"}


def test_the_chart_ships_the_same_dashboard() -> None:
    # Helm reads only files inside the chart, so the chart keeps a copy: keep them identical
    # (cp deploy/grafana/dmm-stream.json helm/dmm-stream/dashboards/).
    assert CHART_DASHBOARD.read_bytes() == DASHBOARD.read_bytes(), (
        "helm/dmm-stream/dashboards/dmm-stream.json differs from deploy/grafana/dmm-stream.json: "
        "copy the latter over the former"
    )
