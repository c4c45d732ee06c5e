"""What the worker reports about itself: its metrics, heartbeat and readiness flags.

`WorkerTelemetry.serve` builds a fresh `CollectorRegistry` with `service.metrics.worker_metrics`,
a `service.health.HealthState` and starts the `service.health.HealthServer` that serves them.
The worker (`service.worker`) calls it at its boundaries only — after the control replay,
after each delivered batch, at each rebalance — never per record, except one histogram
observation per applied record for the end-to-end latency.

Readiness flags (`service.health.WORKER_READINESS`):

- ``model_loaded``: the control history is replayed, the running matrix is the latest version.
- ``partitions_assigned``: the worker owns at least one input partition (cleared when a
  rebalance leaves it none).
- ``state_restored``: the state of every owned partition was read back from the changelog
  (cleared while a new assignment is being restored).

Example:
    >>> telemetry = WorkerTelemetry.serve(load_settings({"metrics.port": 0}))
    >>> telemetry.server.port > 0
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from prometheus_client import CollectorRegistry

from service.batch import BatchResult
from service.control import AckStatus
from service.dlq import REASONS
from service.health import HealthServer, HealthState, serve_health
from service.metrics import OUTCOMES, SWAP_STATUSES, WorkerMetrics, worker_metrics
from service.settings import Settings
from service.state import StateRecord, encode_state


class WorkerTelemetry:
    """The worker's metrics, heartbeat and readiness flags, served by a `HealthServer`.

    Keeps the encoded size of each stream's latest state message, so that
    ``dmm_state_bytes`` is a running sum instead of a scan of every stream per batch, and the
    last consumer lag per partition, so that a revocation drops exactly the revoked series.

    Args:
        metrics: the worker's metrics (on the registry `server` exposes).
        health: the heartbeat and flags `server` reports.
        server: the started HTTP server (stopped by the owner).
    """

    def __init__(self, metrics: WorkerMetrics, health: HealthState, server: HealthServer) -> None:
        self.metrics = metrics
        self.health = health
        self.server = server
        self._outcomes = {outcome: metrics.messages.labels(outcome=outcome) for outcome in OUTCOMES}
        self._swaps = {status: metrics.swaps.labels(status=status) for status in SWAP_STATUSES}
        self._state_bytes: dict[str, int] = {}
        self._state_total = 0
        self._lag: dict[int, int] = {}

    @classmethod
    def serve(cls, settings: Settings) -> WorkerTelemetry:
        """Fresh metrics on a fresh registry, served on ``DMM_METRICS_HOST``:``DMM_METRICS_PORT``.

        Raises:
            MetricsPortError: the address cannot be bound (names both variables).
        """
        registry = CollectorRegistry()
        health = HealthState()
        metrics = worker_metrics(registry, dlq_reasons=REASONS)
        return cls(metrics, health, serve_health(registry, health, settings.metrics))

    def beat(self) -> None:
        """The worker's loop is alive (once per iteration; ``/healthz`` reads it)."""
        self.health.beat()

    def polled(self, version: int, lag: Mapping[int, int]) -> None:
        """After each fetch: the running model `version` and the consumer `lag`.

        Args:
            version: the model version running now (it changes only between batches).
            lag: input partition → records behind the end, for every owned partition.
        """
        self.metrics.model_version.set(version)
        self.set_lag(lag)

    def count_swap(self, status: AckStatus) -> None:
        """`service.controller.Controller` callback: one update acknowledged with `status`."""
        self._swaps[status].inc()

    def loaded(self, version: int) -> None:
        """The control history is replayed: the model runs at `version`."""
        self.metrics.model_version.set(version)
        self.health.set_flag("model_loaded")

    def restoring(self) -> None:
        """A new assignment's state is being read back: not ready until `restored`."""
        self.health.set_flag("state_restored", False)

    def restored(self, records: Mapping[str, StateRecord], owned: set[int], streams: int) -> None:
        """An assignment's state is back: `records` restored, `owned` partitions held now.

        Args:
            records: the restored streams' changelog records (their size is re-encoded once).
            owned: every input partition the worker holds after the assignment.
            streams: streams with state in the worker now.
        """
        self.set_state_sizes({stream: len(encode_state(r)) for stream, r in records.items()})
        self.metrics.streams_active.set(streams)
        self.health.set_flag("partitions_assigned", bool(owned))
        self.health.set_flag("state_restored")

    def revoked(self, dropped: Sequence[str], owned: set[int], streams: int) -> None:
        """Partitions were taken away with the `dropped` streams; `owned` remain."""
        for stream in dropped:
            self._state_total -= self._state_bytes.pop(stream, 0)
        self.metrics.state_bytes.set(self._state_total)
        self.metrics.streams_active.set(streams)
        self.set_lag({p: lag for p, lag in self._lag.items() if p in owned})
        if not owned:
            self.health.set_flag("partitions_assigned", False)

    def set_state_sizes(self, sizes: Mapping[str, int]) -> None:
        """Record the encoded size (bytes) of each stream's latest state message in `sizes`."""
        for stream, size in sizes.items():
            self._state_total += size - self._state_bytes.get(stream, 0)
            self._state_bytes[stream] = size
        self.metrics.state_bytes.set(self._state_total)

    def set_lag(self, lag: Mapping[int, int]) -> None:
        """Set ``dmm_consumer_lag`` to `lag` (every owned partition; the others are dropped)."""
        self._lag = dict(lag)
        self.metrics.set_consumer_lag(self._lag)

    def delivered(self, result: BatchResult, acked_at_s: float, streams: int) -> None:
        """`result` was acknowledged by the brokers at `acked_at_s`.

        Args:
            result: the delivered batch.
            acked_at_s: when `service.worker` saw the acknowledgement, seconds since the epoch
                (Kafka timestamps are milliseconds since the epoch).
            streams: streams with state in the worker now.
        """
        m = self.metrics
        self._outcomes["applied"].inc(len(result.outputs))
        self._outcomes["skipped"].inc(result.skipped)
        self._outcomes["dead_lettered"].inc(len(result.dead_letters))
        for letter in result.dead_letters:
            m.dlq.labels(reason=letter.reason).inc()
        m.ticks.inc(result.rounds)
        m.batch_size.observe(result.records)
        for seconds in result.tick_seconds:
            m.tick_seconds.observe(seconds)
        observe = m.end_to_end_seconds.observe
        for timestamp_ms in result.input_timestamps_ms:
            # a producer's clock may run ahead of this one: count a negative latency as zero
            observe(max(acked_at_s - timestamp_ms * 0.001, 0.0))
        m.streams_active.set(streams)
