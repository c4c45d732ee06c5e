"""Every Prometheus metric of the service, declared in one place on a registry passed in.

Nothing here touches the global ``prometheus_client.REGISTRY``: the worker and the trainer each
build their own `CollectorRegistry`, and tests use a fresh one. Names carry the ``dmm_`` prefix
and base units (seconds, bytes); counters end in ``_total``. Labels stay low-cardinality
(outcome, partition, reason, status, set): never a stream id.

Example:
    >>> from prometheus_client import CollectorRegistry
    >>> metrics = worker_metrics(CollectorRegistry())
    >>> metrics.messages.labels(outcome="applied").inc(3)
    >>> metrics.model_version.set(7)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

OUTCOMES: tuple[str, ...] = ("applied", "skipped", "dead_lettered")
"""``dmm_messages_total{outcome}``: applied to a stream, skipped as a replayed offset, or sent to
the DLQ. Every input record counts exactly once."""

SWAP_STATUSES: tuple[str, ...] = ("applied", "rejected")
"""``dmm_swaps_total{status}``: the statuses of a ``dmm.control.acks`` acknowledgement."""

TRAINER_SETS: tuple[str, ...] = ("train", "holdout")
"""``dmm_trainer_loss{set}``: loss on the training sample and on the held-out recent streams."""

BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
TICK_SECONDS_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
# From the input message's timestamp to its output being acknowledged: includes queueing, so
# the buckets reach further than a tick's.
END_TO_END_SECONDS_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class WorkerMetrics:
    """The worker's metrics (all on one registry).

    Attributes:
        messages: ``dmm_messages_total{outcome}``, input records handled, by `OUTCOMES`.
        ticks: ``dmm_ticks_total``, batched ticks run (one per round of a batch).
        batch_size: ``dmm_batch_size``, input records per fetched batch.
        tick_seconds: ``dmm_tick_seconds``, wall time of one batched tick.
        end_to_end_seconds: ``dmm_end_to_end_seconds``, from the input message's timestamp to
            its output being acknowledged by the broker.
        consumer_lag: ``dmm_consumer_lag{partition}``, records between the consumer's position
            and the highwater of each assigned input partition (set with `set_consumer_lag`).
        dlq: ``dmm_dlq_total{reason}``, records sent to the DLQ, by the error's reason label.
        streams_active: ``dmm_streams_active``, streams with state in this worker.
        state_bytes: ``dmm_state_bytes``, encoded size of that state.
        model_version: ``dmm_model_version``, version of the running network matrix.
        swaps: ``dmm_swaps_total{status}``, control updates acknowledged, by `SWAP_STATUSES`.
    """

    messages: Counter
    ticks: Counter
    batch_size: Histogram
    tick_seconds: Histogram
    end_to_end_seconds: Histogram
    consumer_lag: Gauge
    dlq: Counter
    streams_active: Gauge
    state_bytes: Gauge
    model_version: Gauge
    swaps: Counter

    def set_consumer_lag(self, lag_by_partition: Mapping[int, int]) -> None:
        """Set the lag of every assigned partition and drop the series of the others.

        Args:
            lag_by_partition: input partition → records not yet committed (>= 0); exactly the
                partitions this worker holds now, so a revoked partition stops being reported
                here (another worker reports it).
        """
        current = {str(partition) for partition in lag_by_partition}
        # collect() yields one sample per child series: the partitions reported so far.
        reported = {
            sample.labels["partition"]
            for family in self.consumer_lag.collect()
            for sample in family.samples
        }
        for label in reported - current:
            self.consumer_lag.remove(label)
        for partition, lag in lag_by_partition.items():
            self.consumer_lag.labels(partition=str(partition)).set(lag)


@dataclass(frozen=True, slots=True)
class TrainerMetrics:
    """The trainer sidecar's metrics (Faust adds its own sensors beside these).

    Attributes:
        loss: ``dmm_trainer_loss{set}``, loss of the latest candidate, by `TRAINER_SETS`.
        runs: ``dmm_trainer_runs_total``, training runs completed.
        publishes: ``dmm_trainer_publishes_total``, candidates published to ``dmm.control``.
        failures: ``dmm_trainer_failures_total``, runs that ended in an error (diverged, broker
            unreachable), so "trainer failing" can alert.
        active: ``dmm_trainer_active``, 1 while this replica is the model's active trainer (the
            leader of its group), 0 on a standby.
        streams_sampled: ``dmm_trainer_streams_sampled``, streams in the sample window.
        run_seconds: ``dmm_trainer_run_seconds``, wall time of the last training run.
    """

    loss: Gauge
    runs: Counter
    publishes: Counter
    failures: Counter
    active: Gauge
    streams_sampled: Gauge
    run_seconds: Gauge


def worker_metrics(
    registry: CollectorRegistry, *, dlq_reasons: Iterable[str] = ()
) -> WorkerMetrics:
    """Declare the worker's metrics on `registry`.

    Known label values start at zero, so ``rate()`` and alerts see a series before the first
    event instead of none.

    Args:
        registry: where the metrics are registered (not the global one).
        dlq_reasons: reason labels to start at zero, e.g. ``service.dlq.REASONS``.

    Raises:
        ValueError: a metric of the same name is already on `registry` (prometheus_client's
            "Duplicated timeseries" error): build the metrics once per registry.
    """
    metrics = WorkerMetrics(
        messages=Counter(
            "dmm_messages_total",
            "Input records handled, by outcome (applied, skipped replay, dead-lettered).",
            ["outcome"],
            registry=registry,
        ),
        ticks=Counter("dmm_ticks_total", "Batched ticks run.", registry=registry),
        batch_size=Histogram(
            "dmm_batch_size",
            "Input records per fetched batch.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        ),
        tick_seconds=Histogram(
            "dmm_tick_seconds",
            "Wall time of one batched tick, seconds.",
            buckets=TICK_SECONDS_BUCKETS,
            registry=registry,
        ),
        end_to_end_seconds=Histogram(
            "dmm_end_to_end_seconds",
            "From the input message timestamp to its output acknowledged, seconds.",
            buckets=END_TO_END_SECONDS_BUCKETS,
            registry=registry,
        ),
        consumer_lag=Gauge(
            "dmm_consumer_lag",
            "Input records not yet handled (highwater minus position), per assigned partition.",
            ["partition"],
            registry=registry,
        ),
        dlq=Counter(
            "dmm_dlq_total",
            "Input records sent to the DLQ, by reason.",
            ["reason"],
            registry=registry,
        ),
        streams_active=Gauge(
            "dmm_streams_active", "Streams with state in this worker.", registry=registry
        ),
        state_bytes=Gauge(
            "dmm_state_bytes", "Encoded size of the per-stream state, bytes.", registry=registry
        ),
        model_version=Gauge(
            "dmm_model_version", "Version of the running network matrix.", registry=registry
        ),
        swaps=Counter(
            "dmm_swaps_total",
            "Control updates acknowledged, by status (applied, rejected).",
            ["status"],
            registry=registry,
        ),
    )
    for outcome in OUTCOMES:
        metrics.messages.labels(outcome=outcome)
    for status in SWAP_STATUSES:
        metrics.swaps.labels(status=status)
    for reason in dlq_reasons:
        metrics.dlq.labels(reason=reason)
    return metrics


def trainer_metrics(registry: CollectorRegistry) -> TrainerMetrics:
    """Declare the trainer's metrics on `registry` (see `worker_metrics` for errors)."""
    metrics = TrainerMetrics(
        loss=Gauge(
            "dmm_trainer_loss",
            "Loss of the latest candidate matrix, by set (train, holdout).",
            ["set"],
            registry=registry,
        ),
        runs=Counter("dmm_trainer_runs_total", "Training runs completed.", registry=registry),
        publishes=Counter(
            "dmm_trainer_publishes_total",
            "Candidate matrices published to the control topic.",
            registry=registry,
        ),
        failures=Counter(
            "dmm_trainer_failures_total",
            "Training runs that ended in an error.",
            registry=registry,
        ),
        active=Gauge(
            "dmm_trainer_active",
            "1 while this replica is the active trainer of its model, 0 on a standby.",
            registry=registry,
        ),
        streams_sampled=Gauge(
            "dmm_trainer_streams_sampled", "Streams in the sample window.", registry=registry
        ),
        run_seconds=Gauge(
            "dmm_trainer_run_seconds",
            "Wall time of the last training run, seconds.",
            registry=registry,
        ),
    )
    for name in TRAINER_SETS:
        metrics.loss.labels(set=name)
    return metrics
