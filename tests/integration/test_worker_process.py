"""`dmm worker` as an operator runs it: a process that is killed, stopped, restarted."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from service import kafka_local
from service.kafka_local import BrokerInfo
from service.settings import Settings
from tests.integration.fixtures_worker import (
    assert_streams_follow_the_law,
    count_messages,
    deduplicated,
    dmm_process,
    interleaved,
    produce,
    read_outputs,
    read_topic,
    run_async,
    stop_process,
    stream_texts,
    unique_settings,
    wait_until,
)


def outputs_in(settings: Settings) -> int:
    return run_async(count_messages(settings, settings.topics.output), 30.0)


def wait_for_outputs(settings: Settings, at_least: int, timeout_s: float, what: str) -> None:
    wait_until(lambda: outputs_in(settings) >= at_least, timeout_s, what)


def unique_outputs(settings: Settings, isolation_level: str = "read_uncommitted") -> int:
    records = run_async(read_outputs(settings, idle_s=0.5, isolation_level=isolation_level))
    return len({(r.stream, r.seq) for r in records})


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_sigkill_three_times_then_outputs_deduplicated_by_seq_equal_the_law(
    kafka_bootstrap: str, guarantee: str, tmp_path: Path
) -> None:
    settings = unique_settings(
        kafka_bootstrap, worker__guarantee=guarantee, worker__batch_max_records=10
    )
    # small batches: each costs a commit round trip, so even a fast engine is killed mid-run
    texts = stream_texts(60, 40, seed=3)
    messages = interleaved(texts)
    run_async(produce(settings, messages))
    isolation = "read_committed" if guarantee == "exactly-once" else "read_uncommitted"

    log = tmp_path / "worker.log"
    after_kills = []
    for kill in (1, 2, 3):
        worker = dmm_process("worker", settings=settings, log=log, stdout=subprocess.DEVNULL)
        try:
            wait_for_outputs(settings, kill * len(messages) // 4, 90, f"outputs before kill {kill}")
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(30)
        after_kills.append(outputs_in(settings))
    assert min(after_kills) < len(messages), f"no kill happened mid-run: {after_kills}"
    worker = dmm_process("worker", settings=settings, log=log, stdout=subprocess.DEVNULL)
    try:
        wait_until(
            lambda: unique_outputs(settings, isolation) == len(messages), 120, "every (stream, seq)"
        )
    finally:
        code, _, _ = stop_process(worker)
    assert code == 0, log.read_text()[-3000:]

    outputs = run_async(read_outputs(settings, isolation_level=isolation, idle_s=1.0))
    if guarantee == "exactly-once":
        assert len(outputs) == len(messages)  # a read_committed reader sees each (stream, seq) once
    assert_streams_follow_the_law(deduplicated(outputs), texts)


def test_cli_produce_worker_tail_and_a_graceful_sigterm(kafka_bootstrap: str) -> None:
    settings = unique_settings(kafka_bootstrap)
    chars = dmm_process(
        "produce",
        "--key",
        "alpha",
        settings=settings,
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, err = chars.communicate(b"test string.", timeout=60)
    assert chars.returncode == 0 and b"produced 12 messages" in err
    tokens = dmm_process(
        "produce", "--key", "beta", "--tokens", "--rate", "200",
        settings=settings, stdin=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    _, err = tokens.communicate(b"the cat .\nthe cat .", timeout=60)
    assert tokens.returncode == 0 and b"produced 6 messages" in err

    worker = dmm_process(
        "worker", settings=settings, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        wait_for_outputs(settings, 18, 60, "18 outputs")
    finally:
        code, out, err = stop_process(worker)
    assert code == 0, err[-2000:]
    assert "worker: messages=18 applied=18 skipped=0 dead_letters=0" in out

    tail = dmm_process(
        "tail", "--from-beginning", "--max-messages", "18", "--timeout", "30",
        settings=settings, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    shown, _ = tail.communicate(timeout=60)
    lines = shown.decode().splitlines()
    assert tail.returncode == 0 and len(lines) == 18
    assert any(line.split()[:5] == ["alpha", "#12", '"."', "left=2", "right=1"] for line in lines)
    assert any(line.split()[:5] == ["beta", "#6", '"."', "left=1", "right=2"] for line in lines)


def test_kafka_start_status_stop_commands(tmp_path: Path, kafka_cache_dir: Path) -> None:
    settings = unique_settings("127.0.0.1:1")
    run_dir = str(tmp_path / "run")
    common = ["--run-dir", run_dir, "--cache-dir", str(kafka_cache_dir)]
    try:
        start = dmm_process("kafka", "start", *common, settings=settings, stdout=subprocess.PIPE)
        out, _ = start.communicate(timeout=180)
        assert start.returncode == 0
        last = out.decode().splitlines()[-1]
        assert last.startswith("bootstrap=127.0.0.1:")
        status = dmm_process("kafka", "status", *common, settings=settings, stdout=subprocess.PIPE)
        assert last in status.communicate(timeout=60)[0].decode().splitlines()
        again = dmm_process("kafka", "start", *common, settings=settings, stdout=subprocess.PIPE)
        assert again.communicate(timeout=60)[0].decode().splitlines()[-1] == last  # idempotent
    finally:
        stop = dmm_process("kafka", "stop", *common, settings=settings, stdout=subprocess.PIPE)
        assert stop.communicate(timeout=60)[0] == b"stopped\n"
    assert kafka_local.status(Path(run_dir)) is None


def test_the_worker_recovers_when_the_broker_restarts(
    local_broker: BrokerInfo | None, kafka_bootstrap: str, kafka_cache_dir: Path, tmp_path: Path
) -> None:
    if local_broker is None:
        pytest.skip("DMM_KAFKA_BOOTSTRAP names an external broker, which this test cannot restart")
    settings = unique_settings(kafka_bootstrap, kafka__unavailable_timeout_s=120.0)
    texts = stream_texts(30, 40, seed=11)
    halves = [{s: t[:20] for s, t in texts.items()}, {s: t[20:] for s, t in texts.items()}]
    run_async(produce(settings, interleaved(halves[0])))
    log = tmp_path / "worker.log"
    worker = dmm_process("worker", settings=settings, log=log, stdout=subprocess.DEVNULL)
    try:
        wait_for_outputs(settings, 300, 60, "outputs before the broker stops")
        assert kafka_local.stop(local_broker.run_dir)
        restarted = kafka_local.start(local_broker.run_dir, kafka_cache_dir)
        assert restarted.bootstrap == kafka_bootstrap, "the broker came back on another port"
        run_async(produce(settings, interleaved(halves[1])))
        wait_until(
            lambda: unique_outputs(settings) == 1200, 150, "every (stream, seq) after the restart"
        )
    finally:
        code, _, _ = stop_process(worker)
    assert code == 0, log.read_text()[-3000:]
    outputs = run_async(read_outputs(settings, idle_s=1.0))
    # nothing lost, nothing applied twice
    assert_streams_follow_the_law(deduplicated(outputs), texts)
    assert run_async(read_topic(settings, settings.topics.dlq, idle_s=0.5)) == []
