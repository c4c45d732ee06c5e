"""Builders for the worker's broker tests: unique topics and groups, produce, read back, the law."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from dmm_engine import default_registry, one_hot, run_messages, vvalue, zoo
from service.codec import OutputRecord, decode_output
from service.settings import Settings, child_environment, load_settings
from service.topics import ensure_topics

T = TypeVar("T")
TIMEOUT_S = 120.0
ROOT = Path(__file__).resolve().parents[2]


def run_async(coroutine: Coroutine[Any, Any, T], timeout_s: float = TIMEOUT_S) -> T:
    """Run `coroutine` to completion with a time limit (aiokafka's test habit)."""
    return asyncio.run(asyncio.wait_for(coroutine, timeout_s))


def unique_settings(bootstrap: str, **overrides: Any) -> Settings:
    """Settings with topics and a group no other test uses; `overrides` use dotted paths."""
    tag = uuid.uuid4().hex[:10]
    given: dict[str, Any] = {
        "kafka.bootstrap": bootstrap,
        "kafka.unavailable_timeout_s": 60.0,
        "topics.input": f"test-in-{tag}",
        "topics.output": f"test-out-{tag}",
        "topics.state": f"test-state-{tag}",
        "topics.control": f"test-control-{tag}",
        "topics.control_acks": f"test-acks-{tag}",
        "topics.dlq": f"test-dlq-{tag}",
        "topics.partitions": 3,
        "worker.group": f"test-group-{tag}",
        "worker.id": f"test-worker-{tag}",
        "worker.fetch_timeout_ms": 100,
        "worker.session_timeout_ms": 6000,
        "metrics.host": "127.0.0.1",
        "metrics.port": 0,  # several workers of a test run side by side on this machine
        "trainer.start_from": "earliest",  # a trainer started just before the test's text
    }
    return load_settings(given | {k.replace("__", "."): v for k, v in overrides.items()})


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``DMM_*`` variables that make a subprocess see `settings` (plus this environment)."""
    return child_environment(settings)


def dmm_process(
    *args: str, settings: Settings, log: Path | None = None, **popen: Any
) -> subprocess.Popen[bytes]:
    """``python -m service.cli ARGS`` with `settings` in its environment.

    With `log`, stderr is appended to that file (a pipe nobody reads could fill and block
    a worker that logs while the broker is away).
    """
    if log is not None:
        with log.open("ab") as stderr:
            return dmm_process(*args, settings=settings, stderr=stderr, **popen)
    return subprocess.Popen(
        [sys.executable, "-m", "service.cli", *args], env=settings_env(settings), cwd=ROOT, **popen
    )


def interleaved(texts: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """(key, value) messages: the streams' characters round-robin, as concurrent writers would."""
    out = []
    for i in range(max(len(text) for text in texts.values())):
        out += [(s.encode(), text[i].encode()) for s, text in texts.items() if i < len(text)]
    return out


def stream_texts(count: int, length: int, seed: int = 0) -> dict[str, str]:
    """`count` distinct texts of `length` characters with repeats and sentence ends."""
    alphabet = "abcde .."
    return {
        f"stream-{i:03d}": "".join(
            alphabet[(i * 7 + j * j * 3 + seed) % len(alphabet)] for j in range(length)
        )
        for i in range(count)
    }


def law(text: str) -> list[dict[str, int]]:
    """The duplicate detector's outputs after each symbol: left = max count − 1, right = min(#'.', 4)."""
    counts: Counter[str] = Counter()
    expected = []
    for symbol in text:
        counts[symbol] += 1
        expected.append({"left": max(counts.values()) - 1, "right": min(counts["."], 4)})
    return expected


def embedded(text: str) -> list[dict[str, Any]]:
    """`dmm run`'s outputs on `text` (the embedded run, no broker)."""
    registry = default_registry()
    network = zoo.load("duplicate-detector", registry)
    return [
        {name: vvalue.to_jsonable(v) for name, v in outputs.items()}
        for outputs in run_messages(network, registry, [one_hot(c) for c in text])
    ]


async def produce(
    settings: Settings,
    messages: Sequence[tuple[bytes | None, bytes | None]],
    topic: str | None = None,
) -> None:
    """Send `messages` in order (topics created first, as `dmm produce` does)."""
    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic or settings.topics.input, v, key=k) for k, v in messages
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_topic(
    settings: Settings,
    topic: str,
    *,
    expect: int | None = None,
    idle_s: float = 2.0,
    isolation_level: str = "read_uncommitted",
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every message of `topic` from the beginning: stop at `expect` messages, else when idle."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level=isolation_level,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        consumer.subscribe([topic])  # no group: every partition
        last_new = time.monotonic()
        while expect is None or len(records) < expect:
            batch = await consumer.getmany(timeout_ms=200)
            got = [r for rs in batch.values() for r in rs]
            records += got
            if got:
                last_new = time.monotonic()
            elif time.monotonic() - last_new > idle_s:
                break  # with `expect`, a safety net: the caller's count check then fails
    finally:
        await consumer.stop()
    return records


async def read_outputs(settings: Settings, **options: Any) -> list[OutputRecord]:
    """The output topic's records, decoded."""
    return [
        decode_output(r.value or b"")
        for r in await read_topic(settings, settings.topics.output, **options)
    ]


def by_stream(outputs: Sequence[OutputRecord]) -> dict[str, list[OutputRecord]]:
    """Outputs grouped per stream, in seq order."""
    grouped: dict[str, list[OutputRecord]] = {}
    for record in outputs:
        grouped.setdefault(record.stream, []).append(record)
    return {s: sorted(records, key=lambda r: r.seq) for s, records in grouped.items()}


def assert_streams_follow_the_law(outputs: Sequence[OutputRecord], texts: dict[str, str]) -> None:
    """Each stream has seq 1..n exactly once, its inputs in order, outputs by the law."""
    grouped = by_stream(outputs)
    assert sorted(grouped) == sorted(texts)
    for stream, text in texts.items():
        records = grouped[stream]
        assert [r.seq for r in records] == list(range(1, len(text) + 1)), stream
        assert "".join(r.input for r in records) == text, stream
        assert [r.outputs for r in records] == law(text), stream


def deduplicated(outputs: Sequence[OutputRecord]) -> list[OutputRecord]:
    """One record per (stream, seq); asserts that duplicates are exact replays."""
    first: dict[tuple[str, int], OutputRecord] = {}
    for record in outputs:
        key = (record.stream, record.seq)
        if key in first:
            assert record == first[key], f"{key} was applied twice with different results"
        first.setdefault(key, record)
    return list(first.values())


async def count_messages(settings: Settings, topic: str) -> int:
    """Messages in `topic` (sum of end offsets; transaction markers included)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.topics.partitions)]
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return sum(ends.values())


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll `condition` until true; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(0.2)


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> tuple[int, str, str]:
    """SIGTERM `process`; return its exit code, stdout and stderr (pipes closed).

    A process that ignores SIGTERM for `timeout_s` is killed and the test fails.
    """
    if process.poll() is None:
        process.terminate()
    try:
        out, err = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    text = (out or b"").decode("utf-8", "replace"), (err or b"").decode("utf-8", "replace")
    return process.returncode, *text
