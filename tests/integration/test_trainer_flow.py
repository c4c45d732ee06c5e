"""The trainer sidecar end to end on a real broker: `dmm trainer` and `dmm worker` processes.

* A worker starts with a degraded machine (the zoo's synthesized-general with one output link
  scaled by 0.6, as in the demo); the trainer samples the live text, retrains, publishes a
  signed update; the outputs of the streams that run after the swap are ≥ 10× closer to the
  handcrafted teacher.
* A candidate worse than the running matrix (a learning rate of 1) is not published.
* With two trainer replicas, exactly one is active; killing it lets the standby take over.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from dmm_engine import default_registry, one_hot, run_messages, vvalue, zoo
from service.codec import OutputRecord
from service.control import decode_ack
from service.demo.run import degraded_model
from service.publish import read_history
from service.settings import Settings
from tests.helpers import sentences
from tests.integration.fixtures_worker import (
    by_stream,
    deduplicated,
    dmm_process,
    interleaved,
    produce,
    read_outputs,
    read_topic,
    run_async,
    stop_process,
    unique_settings,
    wait_until,
)
from tests.unit.service.test_dashboard import dashboard_series_missing_from


def teacher_error(outputs: list[OutputRecord], texts: dict[str, str]) -> float:
    """Mean squared error of the outputs against the handcrafted machine on the same text."""
    registry = default_registry()
    teacher = zoo.load("duplicate-detector", registry)
    grouped = by_stream(outputs)
    errors = []
    for stream, text in texts.items():
        expected = list(run_messages(teacher, registry, [one_hot(c) for c in text]))
        records = grouped[stream]
        assert [r.seq for r in records] == list(range(1, len(text) + 1)), stream
        for record, want in zip(records, expected, strict=True):
            for name in ("left", "right"):
                got = vvalue.get_number(vvalue.from_jsonable(record.outputs[name], name))
                errors.append((got - vvalue.get_number(want[name])) ** 2)
    return sum(errors) / len(errors)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def exposition(port: int) -> str:
    """The text of a process's /metrics (empty while it is not up)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
            return str(reply.read().decode("utf-8"))
    except OSError:
        return ""


def scrape(port: int) -> dict[str, float]:
    """The unlabelled samples of a process's /metrics, by name (empty while it is not up)."""
    text = exposition(port)
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


def with_trainer(bootstrap: str, **overrides: object) -> Settings:
    """`unique_settings` with a trainer group of its own that trains every 2 s once 8 streams
    are sampled (`overrides` use dotted paths as ``trainer__steps``)."""
    defaults = {
        "trainer__group": f"test-trainer-{uuid.uuid4().hex[:10]}",
        "trainer__interval_s": 2.0,
        "trainer__min_streams": 8,
    }
    return unique_settings(bootstrap, **(defaults | overrides))


def trainer_settings(settings: Settings, **overrides: object) -> Settings:
    """`settings` for one trainer replica: its own metrics port, the test's group."""
    return settings.model_copy(
        update={"metrics": settings.metrics.model_copy(update={"port": free_port()})}
        | {"trainer": settings.trainer.model_copy(update=overrides)}
    )


def start_trainer(settings: Settings, log: Path, *args: str) -> subprocess.Popen[bytes]:
    process = dmm_process(
        "trainer", *args, settings=settings, log=log, stdout=subprocess.PIPE
    )  # fmt: skip
    wait_until(
        lambda: (
            scrape(settings.metrics.port).get("dmm_trainer_active") == 1.0
            or process.poll() is not None
        ),
        90,
        f"the trainer to be active (log: {log})",
    )
    assert process.poll() is None, log.read_text()
    return process


def one_run(
    settings: Settings, log: Path, *batches: tuple[str | None, list[tuple[bytes, bytes]]]
) -> tuple[int, str, str]:
    """A ``dmm trainer --max-runs 1`` fed `batches` of (topic, messages) once it is active:
    its exit code, stdout and log."""
    trainer = start_trainer(trainer_settings(settings), log, "--max-runs", "1")
    try:
        for topic, messages in batches:
            run_async(produce(settings, messages, topic))
        code = trainer.wait(120)
    finally:
        _, out, _ = stop_process(trainer)
    return code, out, log.read_text()


def outputs_of(
    settings: Settings, texts: dict[str, str], timeout_s: float = 90
) -> list[OutputRecord]:
    """The outputs of every message of `texts`, once each (a reader may see a record twice)."""
    wanted = {(stream, seq) for stream, text in texts.items() for seq in range(1, len(text) + 1)}
    deadline = time.monotonic() + timeout_s
    while True:
        found = deduplicated(run_async(read_outputs(settings, idle_s=1.0)))
        mine = [r for r in found if (r.stream, r.seq) in wanted]
        if len(mine) == len(wanted) or time.monotonic() > deadline:
            return mine
        time.sleep(0.5)


def applied_versions(settings: Settings) -> list[int]:
    records = run_async(read_topic(settings, settings.topics.control_acks, idle_s=0.5))
    acks = [decode_ack(r.value) for r in records]
    return [a.version for a in acks if a and a.status == "applied" and a.version]


def test_the_trainer_repairs_a_degraded_worker_through_a_hot_swap(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = with_trainer(
        kafka_bootstrap,
        worker__model=str(degraded_model(tmp_path)),
        control__signing_key="trainer-test-key",  # the worker accepts only signed updates
    )
    log = tmp_path / "processes.log"
    worker = dmm_process("worker", settings=settings, log=log, stdout=subprocess.PIPE)
    replica = trainer_settings(settings)
    trainer = start_trainer(replica, log)
    try:
        before = sentences("before", 16, seed=1)
        run_async(produce(settings, interleaved(before)))
        outputs = outputs_of(settings, before)
        assert {r.model_version for r in outputs} == {1}
        error_before = teacher_error(outputs, before)

        wait_until(lambda: applied_versions(settings), 120, f"an applied swap (log: {log})")
        version = max(applied_versions(settings))
        after = sentences("after", 16, seed=2)
        run_async(produce(settings, interleaved(after)))
        late = outputs_of(settings, after)
        assert {r.model_version for r in late} == {version}
        error_after = teacher_error(late, after)
        metrics = scrape(replica.metrics.port)
        assert (
            metrics["dmm_trainer_publishes_total"] >= 1 and metrics["dmm_trainer_runs_total"] >= 1
        )
        # every trainer series the dashboard queries is served by this running trainer
        assert not dashboard_series_missing_from(exposition(replica.metrics.port), "trainer")
    finally:
        trainer_code, trainer_out, _ = stop_process(trainer)
        stop_process(worker)
    print(f"teacher error before {error_before:.6g}, after v{version} {error_after:.6g}")
    assert error_before >= 10 * error_after, (error_before, error_after, log.read_text()[-3000:])
    assert trainer_code == 0 and "published=" in trainer_out


def test_a_candidate_worse_than_the_running_model_is_not_published(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = with_trainer(
        kafka_bootstrap,
        worker__model="synthesized-general",
        trainer__learning_rate=1.0,  # one Adam step of ±1 on every link: far worse
        trainer__steps=1,
    )
    code, out, text = one_run(
        settings, tmp_path / "trainer.log", (None, interleaved(sentences("s", 16, seed=3)))
    )
    run = re.search(r"outcome=kept .* holdout=([0-9.e+-]+)->([0-9.e+-]+|nan)", text)
    assert code == 0 and run, text[-3000:]
    assert float(run.group(2)) > float(run.group(1))  # the candidate really was worse
    assert "runs=1 published=0" in out and "last=kept" in out
    history = run_async(read_history(settings))
    assert history.updates == () and history.versions == ()  # nothing reached dmm.control


def test_killing_the_active_trainer_lets_the_standby_take_over(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = with_trainer(
        kafka_bootstrap,
        worker__model="synthesized-general",  # already close to the teacher: runs keep it
        trainer__interval_s=1.0,
        trainer__min_streams=4,
        trainer__steps=20,
        trainer__session_timeout_ms=6000,
    )
    first, second = trainer_settings(settings), trainer_settings(settings)
    logs = tmp_path / "first.log", tmp_path / "second.log"
    one = start_trainer(first, logs[0])
    two = dmm_process("trainer", settings=second, log=logs[1], stdout=subprocess.PIPE)
    replicas = {first.metrics.port: one, second.metrics.port: two}
    try:
        wait_until(
            lambda: all("dmm_trainer_active" in scrape(p) for p in replicas), 90, "two replicas"
        )
        run_async(produce(settings, interleaved(sentences("a", 12, seed=4))))
        wait_until(
            lambda: sum(scrape(p).get("dmm_trainer_runs_total", 0) for p in replicas) >= 1,
            90,
            "a training run",
        )
        states = {p: scrape(p) for p in replicas}
        active = [p for p, m in states.items() if m["dmm_trainer_active"] == 1.0]
        assert len(active) == 1, states  # one active trainer per model
        standby = next(p for p in replicas if p not in active)
        assert states[standby]["dmm_trainer_runs_total"] == 0.0, states

        replicas[active[0]].send_signal(signal.SIGKILL)
        replicas[active[0]].communicate(timeout=30)
        killed_at = time.monotonic()
        run_async(produce(settings, interleaved(sentences("b", 12, seed=5))))
        wait_until(
            lambda: scrape(standby).get("dmm_trainer_active") == 1.0, 60, "the standby to lead"
        )
        took_over_s = time.monotonic() - killed_at
        wait_until(
            lambda: scrape(standby).get("dmm_trainer_runs_total", 0) >= 1, 90, "the standby's run"
        )
        print(
            f"standby active {took_over_s:.1f}s and trained "
            f"{time.monotonic() - killed_at:.1f}s after the kill"
        )
    finally:
        for process in replicas.values():
            if process.poll() is None:
                stop_process(process)


def labels_of(texts: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """Label messages: the handcrafted machine's outputs after each symbol, seq from 1."""
    registry = default_registry()
    teacher = zoo.load("duplicate-detector", registry)
    messages = []
    for stream, text in texts.items():
        outputs = run_messages(teacher, registry, [one_hot(c) for c in text])
        for seq, (symbol, named) in enumerate(zip(text, outputs, strict=True), start=1):
            value = {
                "seq": seq,
                "input": symbol,
                "outputs": {n: vvalue.get_number(v) for n, v in named.items()},
            }
            messages.append((stream.encode(), json.dumps(value).encode()))
    return messages


def test_the_trainer_learns_from_a_labels_topic(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = with_trainer(
        kafka_bootstrap,
        worker__model=str(degraded_model(tmp_path)),
        trainer__labels_topic=f"test-labels-{uuid.uuid4().hex[:10]}",
    )
    labels = labels_of(sentences("l", 16, seed=6))
    code, out, text = one_run(
        settings,
        tmp_path / "trainer.log",
        # a stream joined late (no seq 1: ignored) and a message that is no label (skipped)
        (settings.trainer.labels_topic, [(b"late", b'{"seq": 5, "input": "x", "outputs": {}}')]),
        (settings.trainer.labels_topic, [*labels, (b"bad", b"not a label")]),
    )
    assert code == 0 and "runs=1 published=1" in out, text[-3000:]
    assert "skipped a label: label of stream 'bad' is not UTF-8 JSON" in text
    history = run_async(read_history(settings))
    assert [(u.kind, u.version, u.base_version) for u in history.updates] == [("delta", 2, 1)]


def test_a_candidate_the_workers_would_refuse_is_not_sent(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = with_trainer(
        kafka_bootstrap,
        worker__model=str(degraded_model(tmp_path)),
        control__max_abs_weight=0.5,  # the machine's own links are larger than that
    )
    code, out, text = one_run(
        settings, tmp_path / "trainer.log", (None, interleaved(sentences("r", 16, seed=7)))
    )
    assert code == 0, text[-3000:]
    assert "last=failed: the workers would refuse the candidate: weight-too-large" in out, out
    assert run_async(read_history(settings)).versions == ()  # nothing reached dmm.control
