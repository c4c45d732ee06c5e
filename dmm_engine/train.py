"""Training the soft matrix: the loss of reference §5.2, Adam as §5.4, two gradient modes.

The trainable object is the vector of soft weights of a `CompiledEngine` (``engine.soft_weights``,
``[L]``, in ``engine.soft_links`` order); hard links are never trained nor regularised.

Loss (§5.2): both machines are reset and driven by the same strings (the seed's timer-driven
input, one string per batch row); after each of the window's cycles the ``":number"`` of every
named output (``left``, ``right``) of the trainable machine is compared with the target
(the teacher machine's, or given labels). ``prereg`` is the sum of squared errors over cycles,
outputs and strings (not averaged); ``loss = prereg + λ·reg_l1`` with ``reg_l1 = Σ|w|`` over
the soft links except those into the clock (rows ``timer`` and ``input``, as ``FF3/loss.jl``);
``reg_l2 = Σw²`` over the same links is only reported.

Gradient modes (``CompiledEngine(..., grad_mode=...)``), side by side:

* ``"faithful"`` — an accumulator's previous state (its ``dict-1`` input) is detached: the
  gradient of its output at cycle t reaches only the cycle-t ``dict-2`` term. This is what
  Zygote computed in every 2022 run (§5.3) and reproduces the published trajectories
  (§8 E: step-2 prereg 417.8722). It is truncated BPTT through accumulator memory.
* ``"full"`` — true backpropagation through time, accumulator memory included (§8 E: step-2
  prereg 414.36; §8 C: −479.94 for the accumulator's own loop where faithful gives 0).

Adam (§5.4/§9.8, ``TreeADAM``): moments start at zero, bias correction from step 1 with the
powers ``β^t`` kept in float32, ``ε`` added after the square root; η = 1e-3, β = (0.9, 0.999),
ε = 1e-8. The first step is effectively ``w −= η·sign(g)``.

Example::

    objective = Objective.against_teacher(student, teacher, ["test string."], 140, lam=0.001)
    result = train(objective, student.soft_weights, steps=4)
    result.history[1].prereg  # 417.8722 from the ff3-initial matrix, faithful mode
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import torch
from torch import Tensor

from dmm_engine.compiled import CompiledEngine, GradMode, TimerFeed
from dmm_engine.errors import DmmError

__all__ = [
    "AdamConfig",
    "AdamState",
    "DivergedError",
    "GradMode",
    "LossReport",
    "Objective",
    "StepUnroll",
    "TrainResult",
    "Unroll",
    "adam_step",
    "train",
]


class DivergedError(DmmError):
    """Training produced a non-finite loss or gradient."""


class Unroll(Protocol):
    """Runs a machine over a window from the reset state and returns its named outputs.

    Attributes:
        names: the named outputs, in the order of `outputs`' first axis.
        engine: the compiled network whose soft weights `outputs` takes.
        texts: the B symbol sequences (one per batch row), timer-driven (reference §4.2).
        window: T, the cycles whose outputs are returned.
        detached_prefix: cycles run before the window with the gradient stopped.
    """

    names: tuple[str, ...]
    engine: CompiledEngine
    texts: tuple[tuple[str, ...], ...]
    window: int
    detached_prefix: int

    def outputs(self, weights: Tensor) -> Tensor:
        """``[n_outputs, T, B]``: the ``":number"`` of each named output after cycles 1..T.

        Args:
            weights: ``[L]`` soft weights in ``engine.soft_links`` order; differentiable.
        """
        ...


class StepUnroll:
    """`Unroll` on the compiled engine, one two-stroke cycle after another (any network).

    Args:
        engine: the compiled machine; its `grad_mode` decides the gradient mode.
        texts: B symbol sequences, one per batch row, fed by the timer-driven input (§4.2).
        window: T, the cycles whose outputs are returned.
        detached_prefix: cycles run once, here, with the engine's installed soft matrix; the
            state they reach is the constant starting point of every `outputs` call
            (reference §8 C: "state after cycle 155 treated as constant").
    """

    def __init__(
        self,
        engine: CompiledEngine,
        texts: Sequence[Sequence[str]],
        window: int,
        *,
        detached_prefix: int = 0,
    ) -> None:
        if window < 1 or detached_prefix < 0:
            raise DmmError(
                f"window={window}, detached_prefix={detached_prefix}: "
                "need window >= 1 and detached_prefix >= 0"
            )
        self.engine = engine
        self.names = tuple(engine.network.outputs)
        self.texts = tuple(tuple(t) for t in texts)
        self.window = window
        self.detached_prefix = detached_prefix
        self.feed = TimerFeed.of_texts(engine, [list(t) for t in texts])
        self._start = engine.new_state(len(texts))
        with torch.no_grad():
            for _ in range(detached_prefix):
                self._start, _ = engine.cycle(self._start, timer_feed=self.feed)

    def outputs(self, weights: Tensor) -> Tensor:
        """See `Unroll.outputs`."""
        engine = self.engine
        blocks = engine.blocks_of(engine.dense_with(weights))
        state, series = self._start, []
        for _ in range(self.window):
            state, out = engine.cycle(state, timer_feed=self.feed, read=True, matrix=blocks)
            assert out is not None  # read=True always returns the outputs
            series.append(torch.stack([out[name][:, 0] for name in self.names]))
        return torch.stack(series, dim=1)


@dataclass(frozen=True, slots=True)
class LossReport:
    """One evaluation of an `Objective` (floats, for logs and reports).

    Attributes:
        prereg: Σ squared errors over cycles, outputs and strings.
        reg_l1: Σ|w| over the regularised soft links.
        reg_l2: Σw² over the same links (reported only).
        lam: λ, the L1 multiplier.
        loss: prereg + λ·reg_l1.
        max_element_error: the largest single squared error (the seed's "max per-element").
        soft_links: L, the number of soft links.
    """

    prereg: float
    reg_l1: float
    reg_l2: float
    lam: float
    loss: float
    max_element_error: float
    soft_links: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "prereg_loss": self.prereg,
            "reg_l1": self.reg_l1,
            "reg_l2": self.reg_l2,
            "lam": self.lam,
            "loss": self.loss,
            "max_element_error": self.max_element_error,
            "soft_links": self.soft_links,
        }


def clock_links(engine: CompiledEngine) -> list[bool]:
    """Per soft link: True when it feeds the clock (a ``timer`` neuron or the input neuron)."""
    network = engine.network
    clock = {name for name, t in network.neurons.items() if t == "timer"}
    if network.input is not None:
        clock.add(network.input)
    return [link[0] in clock for link in engine.soft_links]


@dataclass(frozen=True, slots=True)
class Objective:
    """``prereg + λ·reg_l1`` of one machine against targets on one or more training sets.

    Attributes:
        parts: ``(unroll, targets)`` pairs; targets ``[n_outputs, T, B]`` match
            ``unroll.outputs``, NaN where there is no target (that value adds nothing). All
            unrolls share one engine's soft-link order.
        lam: λ, the L1 multiplier.
        regularized: ``[L]`` bool, which soft links enter reg_l1/reg_l2.
    """

    parts: tuple[tuple[Unroll, Tensor], ...]
    lam: float
    regularized: Tensor = field(repr=False)

    @staticmethod
    def against_teacher(
        student: CompiledEngine,
        teacher: CompiledEngine,
        texts: Sequence[str],
        window: int,
        *,
        lam: float = 0.0,
        unroll: Unroll | None = None,
    ) -> Objective:
        """The §5.2 loss: `student` vs `teacher` on `texts` over `window` cycles.

        Args:
            unroll: how to run the student (default: a `StepUnroll`); the teacher always runs
                on the step engine, once, without gradient.

        Raises:
            DmmError: the two engines do not share one key registry (columns would differ).
        """
        if student.keys is not teacher.keys:
            raise DmmError(
                "against_teacher: student and teacher must share one KeyRegistry "
                "(build the student with CompiledEngine(..., keys=teacher.keys))"
            )
        return Objective.of_parts([(unroll or StepUnroll(student, texts, window), teacher)], lam)

    @staticmethod
    def of_parts(parts: Sequence[tuple[Unroll, CompiledEngine | Tensor]], lam: float) -> Objective:
        """An objective from unrolls and, for each, a teacher engine or a target tensor."""
        if not parts:
            raise DmmError("Objective: needs at least one (unroll, teacher or targets) part")
        built = []
        for unroll, target in parts:
            if unroll.engine is not parts[0][0].engine:
                raise DmmError("Objective: every part must run the same CompiledEngine")
            if isinstance(target, CompiledEngine):
                target = teacher_targets(target, unroll)
            shape = (len(unroll.names), unroll.window, len(unroll.texts))
            if tuple(target.shape) != shape:
                raise DmmError(
                    f"Objective: targets of shape {tuple(target.shape)} for an unroll whose "
                    f"outputs are {shape} (outputs {list(unroll.names)} × cycles × strings)"
                )
            built.append((unroll, target.to(unroll.engine.dtype)))
        mask = torch.tensor(clock_links(parts[0][0].engine)).logical_not()
        return Objective(tuple(built), lam, mask)

    @property
    def engine(self) -> CompiledEngine:
        return self.parts[0][0].engine

    def with_lam(self, lam: float) -> Objective:
        """The same objective with L1 multiplier `lam`."""
        return replace(self, lam=lam)

    def loss(self, weights: Tensor) -> tuple[Tensor, LossReport]:
        """The differentiable loss at `weights` (``[L]``) and its report."""
        prereg = torch.zeros((), dtype=weights.dtype)
        worst = torch.zeros((), dtype=weights.dtype)
        for unroll, targets in self.parts:
            # NaN marks "no target here" (labels exist only where outputs are read): such
            # values add nothing, and nan_to_num keeps their gradient finite (0, not NaN).
            known = ~torch.isnan(targets)
            errors = (unroll.outputs(weights) - torch.nan_to_num(targets)) ** 2 * known
            prereg = prereg + errors.sum()
            worst = torch.maximum(worst, errors.detach().max())
        regularised = weights[self.regularized]
        reg_l1 = regularised.abs().sum()
        total = prereg + self.lam * reg_l1
        report = LossReport(
            prereg=float(prereg.detach()),
            reg_l1=float(reg_l1.detach()),
            reg_l2=float((regularised.detach() ** 2).sum()),
            lam=self.lam,
            loss=float(total.detach()),
            max_element_error=float(worst),
            soft_links=int(weights.numel()),
        )
        return total, report

    def evaluate(self, weights: Tensor) -> LossReport:
        """The report at `weights`, without gradient."""
        with torch.no_grad():
            return self.loss(weights)[1]

    def value_and_grad(self, weights: Tensor) -> tuple[LossReport, Tensor]:
        """The report and ``∂loss/∂weights`` (``[L]``) at `weights`.

        Raises:
            DivergedError: the loss or the gradient is not finite.
        """
        leaf = weights.detach().requires_grad_(True)
        total, report = self.loss(leaf)
        (grad,) = torch.autograd.grad(total, leaf)
        if not math.isfinite(report.loss) or not bool(torch.isfinite(grad).all()):
            raise DivergedError(
                f"non-finite loss {report.loss} or gradient with {report.soft_links} soft links; "
                "lower the learning rate or λ, or restart from the last good weights"
            )
        return report, grad


def teacher_targets(teacher: CompiledEngine, like: Unroll) -> Tensor:
    """``[n_outputs, T, B]``: `teacher`'s outputs on the strings, window and prefix of `like`.

    Raises:
        DmmError: the teacher's named outputs differ from the student's.
    """
    names = tuple(teacher.network.outputs)
    if names != like.names:
        raise DmmError(
            f"teacher {teacher.network.name!r} has outputs {list(names)}, the trained machine "
            f"{like.engine.network.name!r} has {list(like.names)}: they must match"
        )
    run = StepUnroll(teacher, like.texts, like.window, detached_prefix=like.detached_prefix)
    with torch.no_grad():
        return run.outputs(teacher.soft_weights)


@dataclass(frozen=True, slots=True)
class AdamConfig:
    """Adam's constants (reference §5.4: η = 1e-3, β = (0.9, 0.999), ε = 1e-8)."""

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8


@dataclass(frozen=True, slots=True)
class AdamState:
    """Adam's moments for L weights, and the bias-correction powers (float32, as TreeADAM).

    Attributes:
        m, v: ``[L]`` first and second moments (zero when fresh).
        beta_powers: ``[2]`` β1^t, β2^t for the *next* step t (``[β1, β2]`` when fresh).
        steps: updates taken so far.
    """

    m: Tensor
    v: Tensor
    beta_powers: Tensor
    steps: int = 0

    @staticmethod
    def fresh(
        n: int, config: AdamConfig = AdamConfig(), dtype: torch.dtype = torch.float32
    ) -> AdamState:
        """Empty moments for `n` weights (TreeADAM's new optimizer after every pruning)."""
        powers = torch.tensor([config.beta1, config.beta2], dtype=torch.float32)
        return AdamState(torch.zeros(n, dtype=dtype), torch.zeros(n, dtype=dtype), powers)

    def trimmed(self, keep: Tensor) -> AdamState:
        """The moments of the weights at indices `keep` (``[L']`` long), powers unchanged.

        This is the compare-free protocol's moment trimming (reference §5.9).
        """
        return AdamState(self.m[keep], self.v[keep], self.beta_powers, self.steps)


def adam_step(
    weights: Tensor, grad: Tensor, state: AdamState, config: AdamConfig = AdamConfig()
) -> tuple[Tensor, AdamState]:
    """One Adam update: ``w − η · m̂ / (sqrt(v̂) + ε)`` (TreeADAM's order of operations).

    Args:
        weights, grad: ``[L]``.
        state: the moments before this step.

    Returns:
        The new weights (detached) and the new state.
    """
    if weights.shape != grad.shape or weights.shape != state.m.shape:
        raise DmmError(
            f"adam_step: weights {tuple(weights.shape)}, grad {tuple(grad.shape)} and moments "
            f"{tuple(state.m.shape)} must have one shape (trim the moments after pruning)"
        )
    with torch.no_grad():
        m = config.beta1 * state.m + (1 - config.beta1) * grad
        v = config.beta2 * state.v + (1 - config.beta2) * grad * grad
        p1, p2 = state.beta_powers.to(weights.dtype)
        delta = (m / (1 - p1)) / (torch.sqrt(v / (1 - p2)) + config.eps)
        new_weights = weights.detach() - config.lr * delta
        betas = torch.tensor([config.beta1, config.beta2], dtype=torch.float32)
    return new_weights, AdamState(m, v, state.beta_powers * betas, state.steps + 1)


@dataclass(frozen=True, slots=True)
class TrainResult:
    """What `train` returns.

    Attributes:
        weights: ``[L]`` after the last update, or the best weights seen with ``keep_best``.
        adam: the optimizer state after the last update.
        history: one report per step, evaluated *before* that step's update (as the seed logs).
        report: the report at `weights`.
    """

    weights: Tensor
    adam: AdamState
    history: tuple[LossReport, ...]
    report: LossReport


StepCallback = Callable[[int, LossReport], None]
"""``(step number from 1, report before the update)``; called once per step."""


def train(
    objective: Objective,
    weights: Tensor,
    steps: int,
    *,
    adam: AdamState | None = None,
    config: AdamConfig = AdamConfig(),
    on_step: StepCallback | None = None,
    keep_best: bool = False,
) -> TrainResult:
    """Take `steps` Adam steps on `objective` from `weights` (``[L]``, not modified).

    Args:
        adam: optimizer state to continue from (default: fresh, as after every pruning).
        config: Adam's constants.
        on_step: progress callback.
        keep_best: return the weights with the lowest loss seen (the start and the end
            included) instead of the last ones: a stage can then never end worse than it began.

    Raises:
        DivergedError: a loss or gradient became non-finite.

    Example::

        result = train(objective, engine.soft_weights, 100)
        print(result.history[-1].prereg, result.report.prereg)
    """
    if steps < 0:
        raise DmmError(f"train: steps={steps} must be >= 0")
    adam = adam or AdamState.fresh(weights.numel(), config, weights.dtype)
    current = weights.detach().clone()
    best: tuple[Tensor, LossReport] | None = None
    history = []
    for step in range(1, steps + 1):
        report, grad = objective.value_and_grad(current)
        if best is None or report.loss < best[1].loss:
            best = (current, report)
        current, adam = adam_step(current, grad, adam, config)
        history.append(report)
        if on_step is not None:
            on_step(step, report)
    final = objective.evaluate(current)
    if keep_best and best is not None and best[1].loss < final.loss:
        return TrainResult(best[0], adam, tuple(history), best[1])
    return TrainResult(current, adam, tuple(history), final)
