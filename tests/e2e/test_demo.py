"""`dmm demo` as a new user runs it (README command 1): to the end, and stopped with Ctrl-C.

The demo starts its own broker from the Maven jars, so these tests need ``java`` and ``mvn``;
without them they skip on a developer machine and fail under CI (``CI`` set).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service import kafka_local
from tests.helpers import require_broker_tools

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _needs_java_and_maven() -> None:
    require_broker_tools("dmm demo")


def demo(run_dir: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMM_")}
    env["DMM_CACHE_DIR"] = os.environ.get("DMM_CACHE_DIR", str(Path.home() / ".cache/dmm-stream"))
    return subprocess.Popen(
        [sys.executable, "-m", "service.cli", "demo", "--run-dir", str(run_dir), "--keep", *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def alive(pid_file: Path) -> bool:
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


def assert_cleaned_up(run_dir: Path) -> None:
    assert kafka_local.status(run_dir / "kafka") is None  # the broker is stopped
    for name in ("worker", "trainer"):
        pid_file = run_dir / f"{name}.pid"
        if pid_file.exists():
            assert not alive(pid_file), f"the demo's {name} is still running"


def test_the_demo_shows_several_streams_and_a_hot_swap_and_cleans_up(tmp_path: Path) -> None:
    started = time.monotonic()
    process = demo(tmp_path / "run", "--after-swap", "4")
    out, _ = process.communicate(timeout=600)
    seconds = time.monotonic() - started
    print(out[-2500:], f"\n(the demo took {seconds:.0f} s)")
    assert process.returncode == 0, out[-4000:]
    streams = set(re.findall(r"^(chat-\d+)/\d+ ", out, re.M))
    assert len(streams) >= 3, out[-3000:]  # outputs from several channels' streams
    assert re.search(r"\*\*\* hot swap: model v2 applied by demo-worker, \d+ ms after", out)
    assert re.search(r"^summary: \d+ messages on \d+ streams", out, re.M)
    assert "dead letters: 1 (invalid-utf8)" in out
    errors = [float(e) for e in re.findall(r"v\d+ ([0-9.e+-]+) \(\d+ streams\)", out)]
    assert len(errors) >= 2 and errors[-1] < errors[0] / 10, out[-1500:]
    assert_cleaned_up(tmp_path / "run")


def test_ctrl_c_stops_the_demo_and_everything_it_started(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    process = demo(run_dir)
    deadline = time.monotonic() + 300
    while not (run_dir / "trainer.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.5)  # the broker is up and the children are starting
    time.sleep(3)
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 130, out[-3000:]
    assert "interrupted" in out
    assert_cleaned_up(run_dir)
