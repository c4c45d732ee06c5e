"""One training run of the trainer: fine-tune the running matrix, then gate the candidate.

Pure: no Kafka and no Faust. `fine_tune` takes the network the workers run (its soft matrix
as the starting point), the sampled windows of live text split into training and held-out
streams, and a source of targets (`TeacherTargets`: the handcrafted machine; or labels, see
`service.trainer.labels`). It runs Adam on the training windows and scores both the running
matrix and the candidate on the held-out windows; `judge` decides whether the candidate may
be published.

A window of L symbols is run from the reset state for ``10·L + 3`` cycles (one symbol per 10
cycles, as the worker feeds a message per ``cycles_per_message`` = 10 cycles; the 3 extra
cycles show the last symbol's effect on both outputs, `dmm_engine.synthesis.presets`). Windows
of similar length are trained side by side: each is cut to the largest bucket length
(4, 8, 16, … up to the sample window) that fits, keeping its most recent symbols.

Scores are mean squared errors per output value (the prereg loss over the number of values it
sums), so `margin` and `min_gain` mean the same whatever the sample size.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from dmm_engine import Network, NeuronRegistry
from dmm_engine.compiled import GradMode
from dmm_engine.synthesis import Task, TrainingSet
from dmm_engine.synthesis.presets import clean_window
from dmm_engine.synthesis.prune import soft_matrix
from dmm_engine.synthesis.task import Evaluation
from dmm_engine.train import AdamConfig, DivergedError, Objective, train
from dmm_engine.vvalue import VValue
from service.settings import TrainerSettings

MIN_BUCKET = 4
"""Shortest window trained on: fewer symbols say little about counting."""

Windows = Mapping[str, Sequence[str]]
"""Stream id → its sampled symbols, oldest first."""


class TargetSource(Protocol):
    """Builds the objective of a network on some windows (targets from a teacher or labels)."""

    def objective(self, network: Network, lam: float) -> Objective:
        """The loss of `network`: Σ squared errors + λ·Σ|w|."""
        ...

    @property
    def outputs(self) -> int:
        """How many output values the prereg loss sums (the divisor of a mean)."""
        ...


@dataclass(frozen=True, slots=True)
class TuningConfig:
    """How a run trains and when its candidate is good enough (``DMM_TRAINER_*``)."""

    steps: int = 200
    learning_rate: float = 0.01
    l1: float = 0.0
    grad_mode: GradMode = "faithful"
    margin: float = 0.1
    min_gain: float = 1e-6

    @staticmethod
    def of(settings: TrainerSettings) -> TuningConfig:
        return TuningConfig(
            steps=settings.steps,
            learning_rate=settings.learning_rate,
            l1=settings.l1,
            grad_mode=settings.grad_mode,
            margin=settings.margin,
            min_gain=settings.min_gain,
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a candidate is published, and why (one line for the log and the report)."""

    publish: bool
    reason: str


@dataclass(frozen=True, slots=True)
class TuningResult:
    """What one run did.

    Attributes:
        matrix: the candidate soft matrix (the running one when training failed).
        train_before, train_after: mean squared error on the training windows, running
            matrix and candidate.
        holdout_before, holdout_after: the same on the held-out windows.
        verdict: `judge`'s decision.
        training_streams, held_out_streams: windows used on each side.
        steps: Adam steps taken.
        seconds: wall time of the run.
        diverged: the loss or its gradient became non-finite (the running matrix is kept).
    """

    matrix: VValue
    train_before: float
    train_after: float
    holdout_before: float
    holdout_after: float
    verdict: Verdict
    training_streams: int
    held_out_streams: int
    steps: int
    seconds: float
    diverged: bool = False


def buckets(window_symbols: int) -> list[int]:
    """Bucket lengths 4, 8, 16, … below `window_symbols`, and `window_symbols` itself."""
    lengths, length = [], MIN_BUCKET
    while length < window_symbols:
        lengths.append(length)
        length *= 2
    return [*lengths, window_symbols] if window_symbols >= MIN_BUCKET else []


def training_sets(windows: Windows, window_symbols: int) -> list[TrainingSet]:
    """The windows as `TrainingSet`s: each cut to its bucket length (most recent symbols kept),
    one set per length; windows shorter than `MIN_BUCKET` are left out."""
    grouped: dict[int, list[tuple[str, ...]]] = {}
    lengths = buckets(window_symbols)
    for symbols in windows.values():
        fitting = [length for length in lengths if length <= len(symbols)]
        if fitting:
            grouped.setdefault(fitting[-1], []).append(tuple(symbols[-fitting[-1] :]))
    return [
        TrainingSet(tuple(texts), clean_window("x" * length))
        for length, texts in sorted(grouped.items())
    ]


class TeacherTargets:
    """`TargetSource` whose targets are a teacher machine's outputs on the same windows.

    ``evaluation="step"`` forces the cycle-by-cycle engine (benchmarks compare the two).

    Raises:
        DmmError: no window is long enough to train on (see `training_sets`).
    """

    def __init__(
        self,
        teacher: Network,
        registry: NeuronRegistry,
        windows: Windows,
        window_symbols: int,
        grad_mode: GradMode,
        evaluation: Evaluation = "auto",
    ) -> None:
        sets = training_sets(windows, window_symbols)
        self._task = Task(teacher, registry, sets, grad_mode=grad_mode, evaluation=evaluation)

    def objective(self, network: Network, lam: float) -> Objective:
        return self._task.objective(network, lam)

    @property
    def outputs(self) -> int:
        return self._task.outputs


def mean_error(source: TargetSource, network: Network) -> float:
    """Mean squared error per output value of `network` on `source`'s windows."""
    objective = source.objective(network, 0.0)
    return objective.evaluate(objective.engine.soft_weights).prereg / source.outputs


def judge(before: float, after: float, margin: float, min_gain: float) -> Verdict:
    """Publish only a candidate better than the running matrix on held-out streams by
    `margin` (relative) and `min_gain` (absolute); a tie or a worse one is not published."""
    if not after <= (1.0 - margin) * before:
        return Verdict(
            False,
            f"candidate held-out error {after:.6g} is not below (1 − {margin:g}) × the running "
            f"matrix's {before:.6g}",
        )
    if before - after < min_gain:
        return Verdict(
            False,
            f"candidate held-out error {after:.6g} improves on {before:.6g} by less than "
            f"{min_gain:g} (DMM_TRAINER_MIN_GAIN)",
        )
    return Verdict(True, f"held-out error {before:.6g} → {after:.6g}")


def fine_tune(
    network: Network,
    training: TargetSource,
    held_out: TargetSource,
    config: TuningConfig,
    *,
    streams: tuple[int, int] = (0, 0),
) -> TuningResult:
    """Train `network`'s soft matrix on `training` and gate the result on `held_out`.

    Args:
        network: the network the workers run, without Self; its matrix is the start.
        training, held_out: targets on the training and held-out windows.
        config: steps, learning rate, λ, gradient mode, margin, minimum gain.
        streams: ``(training, held_out)`` window counts, for the result.

    Returns:
        The candidate and its scores; a run whose loss diverged keeps the running matrix and
        is not published.
    """
    started = time.monotonic()
    objective = training.objective(network, config.l1)
    weights = objective.engine.soft_weights
    links = objective.engine.soft_links
    train_before = objective.evaluate(weights).prereg / training.outputs
    holdout_before = mean_error(held_out, network)
    try:
        result = train(objective, weights, config.steps, config=AdamConfig(lr=config.learning_rate))
    except DivergedError as exc:
        return TuningResult(
            network.matrix, train_before, float("nan"), holdout_before, float("nan"),
            Verdict(False, f"training diverged: {exc}"), *streams, config.steps,
            time.monotonic() - started, diverged=True,
        )  # fmt: skip
    candidate = dataclasses.replace(network, matrix=soft_matrix(links, result.weights))
    holdout_after = mean_error(held_out, candidate)
    verdict = judge(holdout_before, holdout_after, config.margin, config.min_gain)
    return TuningResult(
        candidate.matrix, train_before, result.report.prereg / training.outputs, holdout_before,
        holdout_after, verdict, *streams, config.steps, time.monotonic() - started,
    )  # fmt: skip
