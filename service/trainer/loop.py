"""The active trainer's periodic run: read what the workers run, fine-tune, gate, publish.

`TrainerLoop.run_once` is one run. It reads the control history, skips when an update is
still pending or the sample is too small, fine-tunes in a worker thread (so the Faust event
loop keeps heartbeating its consumer group), and publishes a candidate that passed the gate
as a ``delta`` on the version it was trained from. A delta with ``base_version`` is refused by
the workers (``wrong-base-version``) if anything else was applied in between — an operator's
`dmm swap`, or a second trainer that briefly thought it was the leader during a rebalance —
so a stale candidate can never overwrite a newer matrix.

Faust is not imported here: `service.trainer.app` calls `run_once` from a leader-only timer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sized
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from aiokafka.errors import KafkaError

from dmm_engine import DmmError, Network, NeuronRegistry
from service.control import build_update
from service.errors import ServiceError, UpdateRejected
from service.metrics import TrainerMetrics
from service.publish import ControlHistory, publish_update, read_history
from service.settings import Settings
from service.swap import plan_swap
from service.trainer.running import delta_between, next_version, pending_versions, running_model
from service.trainer.tuning import MIN_BUCKET, TargetSource, TuningConfig, TuningResult, fine_tune

logger = logging.getLogger(__name__)

Outcome = Literal["published", "kept", "waiting", "too-few-streams", "not-leader", "failed"]
Windows = Mapping[str, Any]
"""Stream → its sampled window (symbols, or labelled steps)."""


class Sampler(Protocol):
    """What the loop needs of a sample (`StreamSampler`, `LabelSampler`)."""

    symbols_seen: int

    def __len__(self) -> int: ...

    def split(
        self, holdout_fraction: float, max_train: int, *, min_symbols: int = 1
    ) -> tuple[Mapping[str, Sized], Mapping[str, Sized]]: ...


TargetsOf = Callable[[Windows], TargetSource]
"""Builds the targets of some windows: `TeacherTargets` or `LabelTargets`."""


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What one call of `run_once` did.

    Attributes:
        outcome: ``published`` (a new version was sent), ``kept`` (trained, candidate not
            better), ``waiting`` (an update is pending), ``too-few-streams``, ``not-leader``
            (leadership was lost during the run: nothing published), ``failed`` (broker
            unreachable, training diverged, or a candidate the workers' checks would refuse).
        detail: one line saying why.
        result: the training run, when there was one.
        version: the version published, when one was.
    """

    outcome: Outcome
    detail: str
    result: TuningResult | None = None
    version: int | None = None

    @property
    def trained(self) -> bool:
        """True when a training run completed (published, kept, or lost leadership)."""
        return self.result is not None


class TrainerLoop:
    """State of one trainer replica's runs.

    Args:
        settings: connection, topics, ``DMM_WORKER_MODEL`` (what the workers run) and
            ``DMM_TRAINER_*``.
        base: ``DMM_WORKER_MODEL``'s network, without Self.
        registry: neuron types of `base` (for the workers' checks on a candidate).
        sampler: the live sample (filled by the app's agent).
        targets_of: the targets of sampled windows (a teacher's outputs, or labels).
        metrics: the trainer's metrics.
        is_leader: asked again before publishing; a replica that lost leadership while it
            trained publishes nothing.
    """

    def __init__(
        self,
        settings: Settings,
        base: Network,
        registry: NeuronRegistry,
        sampler: Sampler,
        targets_of: TargetsOf,
        metrics: TrainerMetrics,
        is_leader: Callable[[], bool],
    ) -> None:
        self.settings = settings
        self.base = base
        self.registry = registry
        self.sampler = sampler
        self.targets_of = targets_of
        self.metrics = metrics
        self.is_leader = is_leader
        self.config = TuningConfig.of(settings.trainer)
        self.runs = 0
        self.published = 0
        self.last: RunOutcome | None = None
        self._unconfirmed: set[int] = set()  # published, no rejection seen yet

    async def run_once(self) -> RunOutcome:
        """One run; expected failures (broker, training) are counted and reported, not raised."""
        try:
            outcome = await self._run()
        except (ServiceError, KafkaError, DmmError) as exc:
            self.metrics.failures.inc()
            outcome = RunOutcome("failed", f"{type(exc).__name__}: {exc}")
        if outcome.trained:
            self.runs += 1
        self.last = outcome
        self._log(outcome)
        return outcome

    async def _run(self) -> RunOutcome:
        trainer = self.settings.trainer
        history = await read_history(self.settings)
        self._report_refusals(history)
        running = running_model(history, self.base)
        pending = pending_versions(history, self.base.name, running.version)
        if pending:
            return RunOutcome(
                "waiting", f"version {pending[0]} is published but no worker acknowledged it"
            )
        training, held_out = self.sampler.split(
            trainer.holdout_fraction, trainer.max_train_streams, min_symbols=MIN_BUCKET
        )
        self.metrics.streams_sampled.set(len(self.sampler))
        if len(training) + len(held_out) < trainer.min_streams or not training or not held_out:
            return RunOutcome(
                "too-few-streams",
                f"{len(training)} training and {len(held_out)} held-out streams of at least "
                f"{MIN_BUCKET} symbols; need {trainer.min_streams} in all and one on each side "
                "(DMM_TRAINER_MIN_STREAMS)",
            )
        result = await asyncio.to_thread(
            self._tune, running.network, training, held_out
        )  # a thread: the event loop keeps the consumer group's heartbeats going
        self._record(result)
        if result.diverged:
            self.metrics.failures.inc()
            return RunOutcome("failed", result.verdict.reason, result)
        if not result.verdict.publish:
            return RunOutcome("kept", result.verdict.reason, result)
        if not self.is_leader():
            return RunOutcome("not-leader", "lost leadership while training", result)
        version = next_version(history, self.base)
        delta = delta_between(running.network.matrix, result.matrix)
        try:  # the workers' own checks, so that the trainer never sends what they refuse
            plan_swap(
                build_update(self.base.name, version, "delta", delta, base_version=running.version),
                running.network, running.network.matrix, running.version, self.registry,
                self.settings.control,
            )  # fmt: skip
        except UpdateRejected as exc:
            self.metrics.failures.inc()
            return RunOutcome("failed", f"the workers would refuse the candidate: {exc}", result)
        await publish_update(
            self.settings, model=self.base.name, delta=delta, version=version,
            base_version=running.version,
        )  # fmt: skip
        self.published += 1
        self._unconfirmed.add(version)
        self.metrics.publishes.inc()
        return RunOutcome(
            "published", f"v{running.version} → v{version}: {result.verdict.reason}", result,
            version,
        )  # fmt: skip

    def _tune(self, network: Network, training: Windows, held_out: Windows) -> TuningResult:
        return fine_tune(
            network, self.targets_of(training), self.targets_of(held_out), self.config,
            streams=(len(training), len(held_out)),
        )  # fmt: skip

    def _report_refusals(self, history: ControlHistory) -> None:
        """Log (once) and count every update of this replica that a worker rejected."""
        for ack in history.acks:
            if ack.status == "rejected" and ack.version in self._unconfirmed:
                self._unconfirmed.discard(ack.version)
                self.metrics.failures.inc()
                logger.warning(
                    "worker %s rejected the trainer's v%d: %s", ack.worker, ack.version, ack.reason
                )

    def _record(self, result: TuningResult) -> None:
        self.metrics.runs.inc()
        self.metrics.loss.labels(set="train").set(result.train_after)
        self.metrics.loss.labels(set="holdout").set(result.holdout_after)
        self.metrics.run_seconds.set(result.seconds)

    def _log(self, outcome: RunOutcome) -> None:
        result = outcome.result
        if result is None:
            log = logger.warning if outcome.outcome == "failed" else logger.info
            log("trainer run skipped outcome=%s: %s", outcome.outcome, outcome.detail)
            return
        logger.info(
            "trainer run=%d outcome=%s streams=%d/%d train=%.6g->%.6g holdout=%.6g->%.6g "
            "steps=%d seconds=%.2f: %s",
            self.runs, outcome.outcome, result.training_streams, result.held_out_streams,
            result.train_before, result.train_after, result.holdout_before, result.holdout_after,
            result.steps, result.seconds, outcome.detail,
        )  # fmt: skip
