"""The streaming commands' error handling without a broker: one line on stderr, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DMM = [sys.executable, "-m", "service.cli"]


def dmm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DMM, *args], capture_output=True, text=True, timeout=60, check=False, env=env
    )


def test_a_bad_flag_value_names_the_flag_and_the_rule() -> None:
    done = dmm("worker", "--guarantee", "twice", "--batch-max-records", "0")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "dmm: error: invalid settings: --guarantee=\"twice\": must be one of 'at-least-once' "
        "or 'exactly-once'; --batch-max-records=\"0\": must be an integer >= 1"
    ]


def test_a_bad_variable_names_the_variable(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DMM_TOPICS_PARTITIONS": "0"}
    done = dmm("tail", env=env)
    assert done.returncode == 2
    assert 'DMM_TOPICS_PARTITIONS="0": must be an integer >= 1' in done.stderr


def test_kafka_status_without_a_broker_says_not_running(tmp_path: Path) -> None:
    done = dmm("kafka", "status", "--run-dir", str(tmp_path))
    assert (done.returncode, done.stdout) == (1, "not running\n")
    done = dmm("kafka", "stop", "--run-dir", str(tmp_path))
    assert (done.returncode, done.stdout) == (0, "not running\n")


def test_an_unreachable_broker_is_one_line_and_exit_2() -> None:
    done = dmm("produce", "--key", "s", "--bootstrap", "127.0.0.1:9")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("dmm: error: Kafka: ")
