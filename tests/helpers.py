"""Test builders shared across the suite."""

from __future__ import annotations

import os
import random
import shutil
from typing import NoReturn

import pytest

from dmm_engine import vvalue
from dmm_engine.vvalue import VValue

WORDS = ("the", "test", "string", "is", "a", "tets", "of", "dots", "and", "ants", "at", "a")
WORDS += ("bat", "in", "the", "sand")


def sentences(prefix: str, count: int, seed: int) -> dict[str, str]:
    """`count` streams of two to four words and a full stop: short, and no symbol more than 8
    times, inside the envelope the synthesized machines were trained for."""
    rng = random.Random(seed)
    return {
        f"{prefix}-{i:02d}": " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 4))) + "."
        for i in range(count)
    }


def numbers(outputs: dict[str, VValue]) -> tuple[float, ...]:
    """The scalar of each named output, in name order."""
    return tuple(vvalue.get_number(outputs[name]) for name in sorted(outputs))


def segments(trace: list[tuple[float, ...]]) -> list[tuple[int, int, tuple[float, ...]]]:
    """Runs of equal values: ``(first_cycle, last_cycle, value)`` with 1-based cycles."""
    runs: list[tuple[int, int, tuple[float, ...]]] = []
    for cycle_number, value in enumerate(trace, start=1):
        if runs and runs[-1][2] == value:
            runs[-1] = (runs[-1][0], cycle_number, value)
        else:
            runs.append((cycle_number, cycle_number, value))
    return runs


def assert_vvalues_close(a: VValue, b: VValue, tol: float = 1e-9) -> None:
    """Equal up to `tol` at every leaf path, a missing leaf counting as zero."""
    fa, fb = vvalue.flatten(a), vvalue.flatten(b)
    for path in set(fa) | set(fb):
        x, y = fa.get(path, 0.0), fb.get(path, 0.0)
        assert abs(x - y) <= tol * max(1.0, abs(x), abs(y)), f"{path}: {x} != {y}"


def in_ci() -> bool:
    """True under CI: ``CI`` set to anything but empty, 0, false or no (`.ci/run` sets it)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing_under_ci(reason: str) -> NoReturn:
    """Skip on a developer machine that lacks a tool; fail under CI, which must run everything."""
    if in_ci():
        pytest.fail(f"CI must run this test: {reason}", pytrace=False)
    pytest.skip(reason)


def require_broker_tools(what: str) -> None:
    """`what` starts a local Kafka broker from the Maven jars: it needs ``java`` and ``mvn``."""
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if missing:
        missing_under_ci(f"{what} needs {' and '.join(missing)} for its local broker")
