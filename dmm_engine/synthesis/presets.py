"""Training sets and held-out cases: the seed's, and a richer "general" one.

``seed``: the single string "test string." over 140 cycles (reference §5.2) and the §5.8
generalisation table. ``general``: strings with a character repeated up to 8 times and up to
4 dots, so that the machine must count beyond 3 — the seed's 19-link machine fails once a
character appears 4 times (§5.8). Each general string runs for ``10·len + 3`` cycles: every
character's effect on both outputs is seen (``left`` 4 cycles after its input, ``right`` 3)
and none of the re-emissions of the last character after the text ends (§4.2).
"""

from __future__ import annotations

import random

from dmm_engine.errors import DmmError
from dmm_engine.synthesis.report import SEED_TABLE
from dmm_engine.synthesis.task import TrainingSet

ALPHABET = "abcdefg "
"""Letters (and space) of the general strings; ``"."`` is added as the end-of-sentence key."""


def clean_window(text: str) -> int:
    """``10·len + 3``: all of `text`'s effects, none of the last character's re-emissions."""
    return 10 * len(text) + 3


def general_strings(
    count: int,
    length: int,
    seed: int,
    *,
    max_repeat: int = 8,
    min_repeat: int = 3,
    max_dots: int = 4,
) -> tuple[str, ...]:
    """`count` strings of `length` characters from `ALPHABET` and ``"."``.

    String i has one character repeated r = ``max_repeat − (i mod (max_repeat − min_repeat
    + 1))`` times and ``min(i mod (max_dots + 1), r)`` dots; no other character appears more
    than r times. Deterministic in `seed` (a private `random.Random`, not the global one).

    Raises:
        DmmError: the constraints leave no room (e.g. `length` below the repeat count).
    """
    rng = random.Random(seed)
    texts = []
    for i in range(count):
        repeat = max_repeat - i % (max_repeat - min_repeat + 1)
        dots = min(i % (max_dots + 1), repeat)
        if repeat + dots > length or len(ALPHABET) * repeat + dots < length:
            raise DmmError(
                f"general_strings: length {length} cannot hold a {repeat}-fold character "
                f"and {dots} dots with no character above {repeat}"
            )
        hot = rng.choice(ALPHABET.strip())
        chars = [hot] * repeat + ["."] * dots
        counts = {hot: repeat}
        while len(chars) < length:
            c = rng.choice([a for a in ALPHABET if a != hot and counts.get(a, 0) < repeat])
            counts[c] = counts.get(c, 0) + 1
            chars.append(c)
        rng.shuffle(chars)
        texts.append("".join(chars))
    return tuple(texts)


SEED_SETS: tuple[TrainingSet, ...] = (TrainingSet(("test string.",), 140),)

GENERAL_SETS: tuple[TrainingSet, ...] = (
    TrainingSet(general_strings(8, 16, seed=1), clean_window("x" * 16)),
)
"""Eight 16-character strings (max counts 8..1, 0..4 dots), one batch, 163 cycles."""

_HAND_PICKED = (
    "test string.",
    "tets. str.ingtb str.ingtb",
    "aaaaaaaa.",
    "mississippi.",
    "banana bandana.",
    "..abab.cdcd.",
)
GENERAL_HOLDOUT: tuple[tuple[str, int], ...] = (
    *((t, clean_window(t)) for t in general_strings(8, 13, seed=2)),
    *((t, clean_window(t)) for t in _HAND_PICKED),
    ("test string.", 150),  # the seed machine's failure: the 4th '.' (§5.8)
)
"""Held-out cases for the general machine: other random strings and hand-picked ones."""

PRESETS: dict[str, tuple[tuple[TrainingSet, ...], tuple[tuple[str, int], ...]]] = {
    "seed": (SEED_SETS, SEED_TABLE),
    "general": (GENERAL_SETS, GENERAL_HOLDOUT),
}
"""Preset name → (training sets, generalisation cases)."""
