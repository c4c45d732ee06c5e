"""Metrics: declared on the registry passed in, with the names, types and labels of issue 8."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from service.metrics import OUTCOMES, SWAP_STATUSES, TRAINER_SETS, trainer_metrics, worker_metrics

# name as exposed → (type, label names), from issue 8
WORKER = {
    "dmm_messages_total": ("counter", ("outcome",)),
    "dmm_ticks_total": ("counter", ()),
    "dmm_batch_size": ("histogram", ()),
    "dmm_tick_seconds": ("histogram", ()),
    "dmm_end_to_end_seconds": ("histogram", ()),
    "dmm_consumer_lag": ("gauge", ("partition",)),
    "dmm_dlq_total": ("counter", ("reason",)),
    "dmm_streams_active": ("gauge", ()),
    "dmm_state_bytes": ("gauge", ()),
    "dmm_model_version": ("gauge", ()),
    "dmm_swaps_total": ("counter", ("status",)),
}
TRAINER = {
    "dmm_trainer_loss": ("gauge", ("set",)),
    "dmm_trainer_runs_total": ("counter", ()),
    "dmm_trainer_publishes_total": ("counter", ()),
    "dmm_trainer_failures_total": ("counter", ()),
    "dmm_trainer_active": ("gauge", ()),
    "dmm_trainer_streams_sampled": ("gauge", ()),
    "dmm_trainer_run_seconds": ("gauge", ()),
}


def _families(registry: CollectorRegistry) -> dict[str, str]:
    """Exposed family name → type (prometheus_client names counters without ``_total``)."""
    return {
        family.name + ("_total" if family.type == "counter" else ""): family.type
        for family in registry.collect()
    }


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_worker_metrics_have_the_issue_names_and_types() -> None:
    registry = CollectorRegistry()
    worker_metrics(registry)
    assert _families(registry) == {name: kind for name, (kind, _) in WORKER.items()}


def test_trainer_metrics_have_the_issue_names_and_types() -> None:
    registry = CollectorRegistry()
    trainer_metrics(registry)
    assert _families(registry) == {name: kind for name, (kind, _) in TRAINER.items()}


def test_label_names_are_the_declared_ones() -> None:
    registry = CollectorRegistry()
    worker = worker_metrics(registry)
    trainer = trainer_metrics(registry)
    metrics = {
        "dmm_messages_total": worker.messages,
        "dmm_consumer_lag": worker.consumer_lag,
        "dmm_dlq_total": worker.dlq,
        "dmm_swaps_total": worker.swaps,
        "dmm_trainer_loss": trainer.loss,
    }
    expected = {**WORKER, **TRAINER}
    for name, metric in metrics.items():
        (label,) = expected[name][1]
        metric.labels(**{label: "x"})  # prometheus_client refuses other label names
        with pytest.raises(ValueError, match="Incorrect label names"):
            metric.labels(stream="x")


def test_worker_and_trainer_share_a_registry_without_clashes() -> None:
    registry = CollectorRegistry()
    worker_metrics(registry)
    trainer_metrics(registry)
    assert set(_families(registry)) == set(WORKER) | set(TRAINER)


def test_nothing_lands_on_the_global_registry() -> None:
    worker_metrics(CollectorRegistry()).ticks.inc()
    trainer_metrics(CollectorRegistry()).runs.inc()
    assert b"dmm_" not in generate_latest(REGISTRY)


def test_declaring_twice_on_one_registry_is_an_error() -> None:
    registry = CollectorRegistry()
    worker_metrics(registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        worker_metrics(registry)


def test_known_label_values_start_at_zero() -> None:
    registry = CollectorRegistry()
    worker_metrics(registry, dlq_reasons=("invalid-json", "oversized"))
    trainer_metrics(registry)
    for outcome in OUTCOMES:
        assert _value(registry, "dmm_messages_total", outcome=outcome) == 0.0
    for status in SWAP_STATUSES:
        assert _value(registry, "dmm_swaps_total", status=status) == 0.0
    for reason in ("invalid-json", "oversized"):
        assert _value(registry, "dmm_dlq_total", reason=reason) == 0.0
    for name in TRAINER_SETS:
        assert _value(registry, "dmm_trainer_loss", set=name) == 0.0


def test_recorded_values_show_in_the_exposition() -> None:
    registry = CollectorRegistry()
    worker = worker_metrics(registry)
    worker.messages.labels(outcome="applied").inc(5)
    worker.ticks.inc()
    worker.batch_size.observe(500)
    worker.tick_seconds.observe(0.003)
    worker.end_to_end_seconds.observe(0.2)
    worker.model_version.set(7)
    worker.streams_active.set(12)
    worker.state_bytes.set(4096)

    assert _value(registry, "dmm_messages_total", outcome="applied") == 5
    assert _value(registry, "dmm_ticks_total") == 1
    assert _value(registry, "dmm_batch_size_bucket", le="500.0") == 1
    assert _value(registry, "dmm_batch_size_bucket", le="200.0") == 0
    assert _value(registry, "dmm_tick_seconds_count") == 1
    assert _value(registry, "dmm_end_to_end_seconds_sum") == pytest.approx(0.2)
    text = generate_latest(registry).decode()
    assert "dmm_model_version 7.0" in text
    assert "dmm_streams_active 12.0" in text
    assert "dmm_state_bytes 4096.0" in text


def test_consumer_lag_follows_the_assigned_partitions() -> None:
    registry = CollectorRegistry()
    worker = worker_metrics(registry)
    worker.set_consumer_lag({0: 10, 1: 3})
    assert _value(registry, "dmm_consumer_lag", partition="0") == 10
    assert _value(registry, "dmm_consumer_lag", partition="1") == 3

    # a rebalance takes partition 0 away and gives partition 5
    worker.set_consumer_lag({1: 0, 5: 42})
    assert _value(registry, "dmm_consumer_lag", partition="0") is None
    assert _value(registry, "dmm_consumer_lag", partition="1") == 0
    assert _value(registry, "dmm_consumer_lag", partition="5") == 42

    worker.set_consumer_lag({})
    assert "dmm_consumer_lag{" not in generate_latest(registry).decode()


def test_buckets_are_sorted_and_positive() -> None:
    registry = CollectorRegistry()
    worker = worker_metrics(registry)
    for histogram in (worker.batch_size, worker.tick_seconds, worker.end_to_end_seconds):
        histogram.observe(1)
    for family in registry.collect():
        if family.type != "histogram":
            continue
        bounds = [float(s.labels["le"]) for s in family.samples if s.name.endswith("_bucket")]
        assert bounds == sorted(bounds) and bounds[0] > 0 and bounds[-1] == float("inf")
