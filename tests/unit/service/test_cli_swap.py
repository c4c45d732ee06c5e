"""`dmm swap` without a broker: usage and model errors are one line on stderr and exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DMM = [sys.executable, "-m", "service.cli", "swap"]


def swap(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DMM, *args], capture_output=True, text=True, timeout=60, check=False, env=env
    )


def test_exactly_one_action_is_required() -> None:
    for args in ((), ("--status", "--rollback", "2")):
        done = swap(*args)
        assert done.returncode == 2
        assert done.stderr.strip() == (
            "dmm: error: give exactly one of --model FILE, --rollback VERSION, --status"
        )


def test_an_unknown_model_is_named_before_any_broker_is_asked(tmp_path: Path) -> None:
    done = swap("--model", str(tmp_path / "missing.json"), "--bootstrap", "127.0.0.1:9")
    assert done.returncode == 2
    assert done.stderr.startswith("dmm: error: unknown model ")
    assert "missing.json" in done.stderr


def test_an_unreachable_broker_is_one_line_and_exit_2() -> None:
    done = swap("--status", "--bootstrap", "127.0.0.1:9")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("dmm: error: Kafka: ")
