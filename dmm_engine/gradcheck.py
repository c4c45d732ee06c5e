"""Numerical gradients by central differences, to check autograd (reference §6, §8 C).

The slides advise "do selective tests comparing vs. numerical derivatives"; the seed's own
check perturbed one matrix entry by ±0.01. `numerical_gradient` does that for chosen
coordinates, `check_gradient` compares with autograd and says which coordinates disagree.
Use float64 weights: central differences in float32 lose most digits.

Example::

    report = check_gradient(lambda w: objective.loss(w)[0], weights.double(), indices=[0, 5])
    assert report.ok, report.describe()
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from dmm_engine.errors import DmmError

ScalarFunction = Callable[[Tensor], Tensor]
"""``f(x) -> scalar tensor`` for ``x`` of shape ``[L]``."""


def numerical_gradient(
    f: ScalarFunction, x: Tensor, *, h: float = 1e-6, indices: Sequence[int] | None = None
) -> Tensor:
    """``(f(x + h·eᵢ) − f(x − h·eᵢ)) / 2h`` for each i in `indices` (default: all).

    Args:
        f: the function; evaluated without gradient, 2 times per index.
        x: ``[L]`` point.
        h: step (the seed used 0.01 on its matrix entries).
        indices: coordinates to differentiate.

    Returns:
        ``[len(indices)]`` in `x`'s dtype, in the order of `indices`.

    Raises:
        DmmError: `h` is not positive or an index is out of range.
    """
    if not h > 0:
        raise DmmError(f"numerical_gradient: h={h} must be > 0")
    chosen = list(range(x.numel())) if indices is None else list(indices)
    bad = [i for i in chosen if not 0 <= i < x.numel()]
    if bad:
        raise DmmError(f"numerical_gradient: indices {bad} are outside 0..{x.numel() - 1}")
    base = x.detach().clone()
    out = torch.zeros(len(chosen), dtype=x.dtype)
    with torch.no_grad():
        for k, i in enumerate(chosen):
            plus, minus = base.clone(), base.clone()
            plus[i] += h
            minus[i] -= h
            out[k] = (f(plus) - f(minus)) / (2 * h)
    return out


@dataclass(frozen=True, slots=True)
class GradCheck:
    """Autograd vs central differences at chosen coordinates.

    Attributes:
        indices: the coordinates checked.
        analytic: autograd's gradient there.
        numeric: the central differences there.
        mismatched: the indices where ``|a − n| > atol + rtol·|n|``.
    """

    indices: tuple[int, ...]
    analytic: tuple[float, ...]
    numeric: tuple[float, ...]
    mismatched: tuple[int, ...]

    @property
    def ok(self) -> bool:
        return not self.mismatched

    def describe(self) -> str:
        """One line per mismatched coordinate (or "all N agree")."""
        if self.ok:
            return f"all {len(self.indices)} coordinates agree"
        rows = {
            i: (a, n) for i, a, n in zip(self.indices, self.analytic, self.numeric, strict=True)
        }
        return "\n".join(
            f"index {i}: autograd {rows[i][0]:.8g}, central difference {rows[i][1]:.8g}"
            for i in self.mismatched
        )


def check_gradient(
    f: ScalarFunction,
    x: Tensor,
    *,
    indices: Sequence[int] | None = None,
    h: float = 1e-6,
    rtol: float = 1e-4,
    atol: float = 1e-6,
) -> GradCheck:
    """Compare ``torch.autograd`` with `numerical_gradient` at `indices` (default: all)."""
    chosen = tuple(range(x.numel())) if indices is None else tuple(indices)
    leaf = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(leaf), leaf)
    analytic = grad[list(chosen)] if chosen else grad[:0]
    numeric = numerical_gradient(f, x, h=h, indices=chosen)
    bad = (analytic - numeric).abs() > atol + rtol * numeric.abs()
    return GradCheck(
        indices=chosen,
        analytic=tuple(float(a) for a in analytic),
        numeric=tuple(float(n) for n in numeric),
        mismatched=tuple(i for i, b in zip(chosen, bad.tolist(), strict=True) if b),
    )
