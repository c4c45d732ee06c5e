"""What a machine is trained on: strings, windows and a teacher; builds `Objective`s for networks.

A `Task` compiles each network it is asked about (sharing one key registry with the teacher),
runs it with the fastest evaluation that fits (`TimeParallelUnroll` for layered networks,
else the step engine) and computes the teacher's targets once per training set.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from dmm_engine.compiled import CompiledEngine, GradMode, KeyRegistry
from dmm_engine.errors import CompileError, DmmError
from dmm_engine.network import Network
from dmm_engine.neurons import NeuronRegistry
from dmm_engine.synthesis.timewise import TimeParallelUnroll
from dmm_engine.train import LossReport, Objective, StepUnroll, Unroll, teacher_targets


@dataclass(frozen=True, slots=True)
class TrainingSet:
    """Strings run side by side (one batch row each) for `window` cycles from the reset state.

    Attributes:
        texts: the strings (or tuples of symbols, e.g. tokens); each is fed one symbol per 10
            cycles (reference §4.2).
        window: cycles per evaluation (the seed: 140).
    """

    texts: tuple[Sequence[str], ...]
    window: int

    def __post_init__(self) -> None:
        if not self.texts or self.window < 1 or any(not t for t in self.texts):
            raise DmmError(
                f"TrainingSet(texts={self.texts!r}, window={self.window}): needs at least one "
                "non-empty string and window >= 1"
            )


Evaluation = Literal["auto", "step"]
"""How a `Task` runs a network: the fastest path that fits, or always cycle by cycle."""


def unroll_for(
    engine: CompiledEngine,
    texts: Sequence[Sequence[str]],
    window: int,
    evaluation: Evaluation = "auto",
) -> Unroll:
    """`TimeParallelUnroll` when the network is layered, else (or with ``evaluation="step"``)
    `StepUnroll`: the same numbers either way."""
    if evaluation == "auto":
        with contextlib.suppress(CompileError):
            return TimeParallelUnroll(engine, [list(t) for t in texts], window)
    return StepUnroll(engine, [list(t) for t in texts], window)


class Task:
    """Training sets and a teacher; see the module docstring.

    Args:
        teacher: the target machine (e.g. ``zoo.load("duplicate-detector", registry)``).
        registry: neuron types of both machines.
        sets: what to train on; the losses of all sets are summed.
        grad_mode: ``"faithful"`` or ``"full"`` (see `dmm_engine.train`).
        dtype: float32 as the seed, or float64.
        evaluation: ``"auto"`` (time-parallel where the network allows) or ``"step"``.
    """

    def __init__(
        self,
        teacher: Network,
        registry: NeuronRegistry,
        sets: Sequence[TrainingSet],
        *,
        grad_mode: GradMode = "faithful",
        dtype: torch.dtype = torch.float32,
        evaluation: Evaluation = "auto",
    ) -> None:
        if not sets:
            raise DmmError("Task: needs at least one TrainingSet")
        self.registry = registry
        self.sets = tuple(sets)
        self.grad_mode: GradMode = grad_mode
        self.dtype = dtype
        self.evaluation: Evaluation = evaluation
        self.keys = KeyRegistry()
        for training_set in self.sets:  # register every symbol before any engine lays out keys
            for text in training_set.texts:
                for symbol in text:
                    self.keys.id(symbol)
        self.teacher = CompiledEngine(teacher, registry, keys=self.keys, dtype=dtype)
        self._targets: dict[TrainingSet, Tensor] = {}

    @property
    def outputs(self) -> int:
        """How many values a prereg loss sums: teacher outputs × window × strings, all sets."""
        n = len(self.teacher.network.outputs)
        return sum(n * s.window * len(s.texts) for s in self.sets)

    def compile(self, network: Network) -> CompiledEngine:
        """`network` compiled with this task's keys, dtype and gradient mode."""
        return CompiledEngine(
            network, self.registry, keys=self.keys, dtype=self.dtype, grad_mode=self.grad_mode
        )

    def objective(self, network: Network, lam: float) -> Objective:
        """The summed §5.2 loss of `network` over every training set, with L1 multiplier `lam`."""
        engine = self.compile(network)
        parts: list[tuple[Unroll, CompiledEngine | Tensor]] = []
        for training_set in self.sets:
            unroll = unroll_for(engine, training_set.texts, training_set.window, self.evaluation)
            if training_set not in self._targets:
                self._targets[training_set] = teacher_targets(self.teacher, unroll)
            parts.append((unroll, self._targets[training_set]))
        return Objective.of_parts(parts, lam)


def evaluate(
    network: Network, teacher: Network, registry: NeuronRegistry, text: str, window: int
) -> LossReport:
    """The seed's ``test_this!``: `network` vs `teacher` on one string (λ = 0, float32).

    Example::

        evaluate(ff3(zoo.matrix("sparse20-after-100")), zoo.load("duplicate-detector", r), r,
                 "test string.", 140).prereg  # 0.0016100588
    """
    task = Task(teacher, registry, [TrainingSet((text,), window)])
    objective = task.objective(network, 0.0)
    return objective.evaluate(objective.engine.soft_weights)
