"""The sparsification schedule: λ per link count, how much to cut, when a cut is acceptable.

The author's schedule (reference §5.6) was picked by hand round by round; this one is a fixed
policy with the same shape, so that synthesis runs unattended:

1. **dense** training (``dense_steps`` at λ = ``dense_lam``);
2. **sweep** rounds while more than ``endgame_links`` links remain: cut the ``cut_fraction``
   smallest |w| (the seed removed ≈ 12 % per round), raise λ by the ``lam_by_links`` table,
   train ``round_steps``;
3. **endgame** rounds down to ``target_links``: cut one link at a time, chosen among the
   ``candidates`` smallest by the loss right after removing it (the author's "cut without
   retraining and look" step), train ``endgame_steps``;
4. **polish**: with the links fixed, train ``polish_steps`` at λ = ``polish_lam`` for each
   learning rate of ``polish_lrs`` in turn (a decaying step size settles into the minimum that a
   constant one circles around; the author
   lowered λ for the last stage: "counter-intuitively, we should decrease regularization").

A round is accepted when its prereg loss after training is at most
``max(tolerance_per_output · outputs, tolerance_rel · prereg before the cut)``, where
``outputs`` counts the compared values (2 outputs × window × strings: 280 for the seed, so
the absolute part is 0.5 there); otherwise it is undone and a
smaller cut (sweep: half as many links) or the next candidate (endgame) is tried. After each
cut Adam restarts (``moments="fresh"``, the FF3/SP protocol) or keeps the surviving moments
(``"trimmed"``, the compare-free protocol of §5.9).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

from dmm_engine.errors import DmmError

Moments = Literal["fresh", "trimmed"]


@dataclass(frozen=True, slots=True)
class Schedule:
    """Every knob of a synthesis run (defaults: the `dmm synth` defaults).

    Attributes:
        dense_steps: Adam steps of dense training (the seed: 2500).
        dense_lam: λ of dense training (the seed: 0.001).
        lam_by_links: ``(above, λ)`` pairs in decreasing `above`: a round that starts with
            more than `above` links trains with that λ; the last pair should have above = 0.
        cut_fraction: fraction of the links cut per sweep round.
        round_steps: Adam steps per sweep round.
        endgame_links: below this many links, cut one link per round.
        endgame_steps: Adam steps per endgame round.
        candidates: smallest-|w| links whose removal is evaluated per endgame cut.
        attempts: of those, how many (least harmful first) are trained before giving up.
        tolerance_per_output, tolerance_rel: the acceptance rule (module docstring).
        target_links: stop cutting at this many soft links.
        polish_steps: Adam steps after the last cut, per learning rate of `polish_lrs`.
        polish_lam: λ while polishing.
        polish_lrs: Adam learning rates of the polishing stages, in order.
        moments: Adam state after a cut: ``"fresh"`` or ``"trimmed"``.
    """

    dense_steps: int = 2500
    dense_lam: float = 0.001
    lam_by_links: tuple[tuple[int, float], ...] = (
        (900, 0.01),
        (700, 0.03),
        (400, 0.06),
        (60, 0.1),
        (0, 0.05),
    )
    cut_fraction: float = 0.12
    round_steps: int = 100
    endgame_links: int = 60
    endgame_steps: int = 200
    candidates: int = 64
    attempts: int = 4
    tolerance_per_output: float = 0.5 / 280
    tolerance_rel: float = 2.0
    target_links: int = 20
    polish_steps: int = 1000
    polish_lam: float = 0.0
    polish_lrs: tuple[float, ...] = (1e-3, 3e-4, 1e-4, 3e-5)
    moments: Moments = "fresh"

    def __post_init__(self) -> None:
        problems = []
        for name in ("dense_steps", "round_steps", "endgame_steps", "polish_steps"):
            if getattr(self, name) < 0:
                problems.append(f"{name}={getattr(self, name)} must be >= 0")
        if not 0.0 < self.cut_fraction < 1.0:
            problems.append(f"cut_fraction={self.cut_fraction} must be in (0, 1)")
        if min(self.target_links, self.candidates, self.attempts) < 1:
            problems.append(
                f"target_links={self.target_links}, candidates={self.candidates}, "
                f"attempts={self.attempts}: each must be >= 1"
            )
        aboves = [above for above, _ in self.lam_by_links]
        if not aboves or aboves != sorted(aboves, reverse=True) or aboves[-1] != 0:
            problems.append(
                f"lam_by_links={self.lam_by_links}: needs (above, λ) pairs with decreasing "
                "`above`, ending with above = 0"
            )
        if self.moments not in ("fresh", "trimmed"):
            problems.append(f"moments={self.moments!r} must be 'fresh' or 'trimmed'")
        if problems:
            raise DmmError("Schedule: " + "; ".join(problems))

    def lam_for(self, links: int) -> float:
        """λ for a round that starts with `links` soft links."""
        for above, lam in self.lam_by_links:
            if links > above:
                return lam
        return self.lam_by_links[-1][1]

    def sweep_cut(self, links: int) -> int:
        """How many links a sweep round cuts (at least 1, never below `endgame_links`)."""
        floor = max(self.endgame_links, self.target_links)
        return max(1, min(math.ceil(self.cut_fraction * links), links - floor))

    def limit(self, prereg_before: float, outputs: int) -> float:
        """The largest prereg loss after a round that still accepts its cut.

        Args:
            prereg_before: the prereg loss before the cut.
            outputs: how many values the prereg loss sums (outputs × cycles × strings).
        """
        return max(self.tolerance_per_output * outputs, self.tolerance_rel * prereg_before)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


QUICK = Schedule(
    dense_steps=300,
    round_steps=30,
    endgame_links=28,
    endgame_steps=60,
    candidates=8,
    attempts=2,
    tolerance_per_output=50.0 / 280,
    polish_steps=30,
    polish_lrs=(1e-3, 1e-4),
)
"""A short schedule for tests and demos: same phases, few steps (no quality promise)."""
