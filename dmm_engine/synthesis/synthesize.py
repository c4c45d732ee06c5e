"""Unattended synthesis: dense training, then sparsification with backtracking (see `schedule`).

`synthesize` takes a `Task` (strings, window, teacher), a trainable network (e.g.
``ff3(zoo.matrix("ff3-initial"))``) and a `Schedule`, and returns the final sparse network
with a record of every round (accepted or undone) and the loss/link curve. A callback sees
every Adam step, for progress bars and logs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from dmm_engine.network import Network
from dmm_engine.synthesis.prune import (
    cut_links,
    inert_links,
    keep_largest,
    reorder,
    with_weights,
)
from dmm_engine.synthesis.schedule import Schedule
from dmm_engine.synthesis.task import Task
from dmm_engine.train import AdamConfig, AdamState, LossReport, Objective, train

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Point:
    """One Adam step of an accepted stage: for the loss/link curves."""

    step: int
    prereg: float
    links: int
    lam: float


@dataclass(frozen=True, slots=True)
class StageRecord:
    """One stage (dense, a sweep or endgame round, polish), kept or undone.

    Attributes:
        name: ``dense``, ``inert`` (links that cannot matter, cut untrained), ``sweep``,
            ``endgame`` or ``polish``.
        links_before, links_after: soft links before and after its cut.
        lam: λ while training.
        lr: Adam's learning rate.
        steps: Adam steps taken.
        prereg_after_cut: prereg right after the cut, before training.
        prereg_end: prereg after training.
        accepted: False when the cut was undone (loss beyond the tolerance).
        wall_s: seconds spent.
    """

    name: str
    links_before: int
    links_after: int
    lam: float
    lr: float
    steps: int
    prereg_after_cut: float
    prereg_end: float
    accepted: bool
    wall_s: float


@dataclass(frozen=True, slots=True)
class Synthesis:
    """The result: final network and weights, and how it got there."""

    network: Network
    weights: Tensor
    report: LossReport
    stages: tuple[StageRecord, ...]
    curve: tuple[Point, ...]
    steps_total: int
    wall_s: float


Progress = Callable[[str, int, LossReport], None]
"""``(stage name, step within the stage, report before the step)``."""


@dataclass(frozen=True, slots=True)
class _Trained:
    network: Network
    objective: Objective
    weights: Tensor
    adam: AdamState
    report: LossReport


@dataclass(slots=True)
class _Run:
    task: Task
    schedule: Schedule
    progress: Progress | None
    stages: list[StageRecord] = field(default_factory=list)
    curve: list[Point] = field(default_factory=list)
    steps_total: int = 0

    def fit(
        self, start: _Trained, steps: int, name: str, lr: float = 1e-3
    ) -> tuple[_Trained, list[Point]]:
        objective, points = start.objective, []
        offset = self.steps_total

        def on_step(step: int, report: LossReport) -> None:
            points.append(Point(offset + step, report.prereg, report.soft_links, report.lam))
            if self.progress is not None:
                self.progress(name, step, report)

        config = AdamConfig(lr=lr)
        result = train(
            objective,
            start.weights,
            steps,
            adam=start.adam,
            config=config,
            on_step=on_step,
            keep_best=True,
        )
        self.steps_total += steps
        network = with_weights(start.network, objective.engine.soft_links, result.weights)
        return _Trained(network, objective, result.weights, result.adam, result.report), points

    def cut(self, current: _Trained, keep: Tensor, lam: float) -> _Trained:
        """`current` without the links not in `keep`, with λ = `lam` and Adam per schedule."""
        engine = current.objective.engine
        network, _ = cut_links(current.network, engine, current.weights, keep)
        objective = self.task.objective(network, lam)
        order = reorder(engine.soft_links, objective.engine.soft_links)
        weights = current.weights[order]
        if self.schedule.moments == "trimmed":
            adam = current.adam.trimmed(order)
        else:
            adam = AdamState.fresh(weights.numel(), dtype=weights.dtype)
        return _Trained(network, objective, weights, adam, objective.evaluate(weights))

    def stage(
        self,
        name: str,
        current: _Trained,
        keep: Tensor,
        steps: int,
        lam: float,
        lr: float = 1e-3,
    ) -> _Trained | None:
        """Cut, train, and keep the result if it is within tolerance (else None).

        Dense training is always kept; polishing only when it lowers the prereg loss.
        """
        started = time.perf_counter()
        cut = self.cut(current, keep, lam)
        trained, points = self.fit(cut, steps, name, lr)
        if name in ("dense", "inert"):
            accepted = True
        elif name == "polish":  # nothing is cut: keep it only if it helped
            accepted = trained.report.prereg <= current.report.prereg
        else:
            limit = self.schedule.limit(current.report.prereg, self.task.outputs)
            accepted = trained.report.prereg <= limit
        record = StageRecord(
            name,
            current.report.soft_links,
            cut.report.soft_links,
            lam,
            lr,
            steps,
            cut.report.prereg,
            trained.report.prereg,
            accepted,
            time.perf_counter() - started,
        )
        self.stages.append(record)
        logger.info(
            "stage=%s links=%d->%d lam=%g lr=%g prereg_after_cut=%.6g prereg=%.6g accepted=%s",
            name,
            record.links_before,
            record.links_after,
            lam,
            lr,
            record.prereg_after_cut,
            record.prereg_end,
            accepted,
        )
        if not accepted:
            return None
        self.curve.extend(points)
        return trained


def _drop_inert(run: _Run, current: _Trained) -> _Trained:
    """Cut every inert link (exact: the outputs do not change), untrained."""
    inert = inert_links(current.network, run.task.registry)
    if not inert:
        return current
    links = current.objective.engine.soft_links
    keep = torch.tensor([link not in inert for link in links], dtype=torch.bool)
    lam = current.objective.lam
    kept = run.stage("inert", current, keep, 0, lam)
    assert kept is not None  # inert cuts are always kept
    return kept


def _sweep(run: _Run, current: _Trained) -> _Trained:
    schedule = run.schedule
    floor = max(schedule.endgame_links, schedule.target_links)
    while (current := _drop_inert(run, current)).report.soft_links > floor:
        cut = schedule.sweep_cut(current.report.soft_links)
        while cut > 0:
            keep = keep_largest(current.weights, cut)
            lam = schedule.lam_for(current.report.soft_links)
            trained = run.stage("sweep", current, keep, schedule.round_steps, lam)
            if trained is not None:
                current = trained
                break
            cut //= 2
        if cut == 0:
            logger.warning("sweep: no cut within tolerance at %d links", current.report.soft_links)
            break
    return current


def _candidates(run: _Run, current: _Trained) -> list[int]:
    """The links to try cutting, best first by the prereg loss right after removing each.

    The pool is the `candidates` smallest |w|; the first `attempts` of the ranking are kept.
    """
    order = torch.argsort(current.weights.abs(), stable=True).tolist()
    pool = order[: run.schedule.candidates]
    plain = current.objective.with_lam(0.0)
    losses = []
    for i in pool:
        trial = current.weights.clone()
        trial[i] = 0.0  # a zero weight computes exactly what a removed link does
        losses.append(plain.evaluate(trial).prereg)
    ranked = [i for _, i in sorted(zip(losses, pool, strict=True))]
    return ranked[: run.schedule.attempts]


def _endgame(run: _Run, current: _Trained) -> _Trained:
    schedule = run.schedule
    while (current := _drop_inert(run, current)).report.soft_links > schedule.target_links:
        lam = schedule.lam_for(current.report.soft_links)
        accepted = None
        for index in _candidates(run, current):
            keep = torch.ones(current.weights.numel(), dtype=torch.bool)
            keep[index] = False
            accepted = run.stage("endgame", current, keep, schedule.endgame_steps, lam)
            if accepted is not None:
                break
        if accepted is None:
            logger.warning("endgame: no link can be cut at %d links", current.report.soft_links)
            break
        current = accepted
    return current


def synthesize(
    task: Task, network: Network, schedule: Schedule, *, progress: Progress | None = None
) -> Synthesis:
    """Train `network` on `task` and sparsify it per `schedule`, with no human in the loop.

    Args:
        task: strings, windows, teacher and gradient mode.
        network: the trainable network with its initial soft matrix.
        schedule: the phases and their knobs.
        progress: called at every Adam step.

    Returns:
        The final network (soft matrix = trained weights) and the record of the run.

    Raises:
        DivergedError: training produced a non-finite loss.
    """
    started = time.perf_counter()
    run = _Run(task, schedule, progress)
    objective = task.objective(network, schedule.dense_lam)
    weights = objective.engine.soft_weights
    start = _Trained(
        network,
        objective,
        weights,
        AdamState.fresh(weights.numel(), dtype=weights.dtype),
        objective.evaluate(weights),
    )
    everything = torch.ones(weights.numel(), dtype=torch.bool)
    dense = run.stage("dense", start, everything, schedule.dense_steps, schedule.dense_lam)
    assert dense is not None  # dense training is always kept
    current = _endgame(run, _sweep(run, dense))
    links = torch.ones(current.weights.numel(), dtype=torch.bool)
    final = current
    for lr in schedule.polish_lrs:
        polished = run.stage("polish", final, links, schedule.polish_steps, schedule.polish_lam, lr)
        final = polished or final
    return Synthesis(
        final.network,
        final.weights,
        final.report,
        tuple(run.stages),
        tuple(run.curve),
        run.steps_total,
        time.perf_counter() - started,
    )
