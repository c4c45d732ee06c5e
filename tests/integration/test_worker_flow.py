"""The worker against a real broker, run in-process with bounds: outputs, DLQ, restarts, EOS."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition

from service.dlq import header_map
from service.settings import Settings
from service.state import decode_state
from service.worker import WorkerReport, run_worker
from tests.integration.fixtures_worker import (
    assert_streams_follow_the_law,
    by_stream,
    embedded,
    interleaved,
    produce,
    read_outputs,
    read_topic,
    run_async,
    stream_texts,
    unique_settings,
)


def work(settings: Settings, max_messages: int, timeout_s: float = 90.0) -> WorkerReport:
    return run_async(
        run_worker(settings, max_messages=max_messages, timeout_s=timeout_s, handle_signals=False)
    )


def test_100_interleaved_streams_follow_the_law_and_equal_the_embedded_run(
    kafka_bootstrap: str,
) -> None:
    settings = unique_settings(kafka_bootstrap)
    texts = stream_texts(100, 20)
    messages = interleaved(texts)
    run_async(produce(settings, messages))

    report = work(settings, max_messages=len(messages))

    assert (report.messages, report.applied, report.dead_letters) == (
        len(messages),
        len(messages),
        0,
    )
    outputs = run_async(read_outputs(settings, expect=len(messages)))
    assert len(outputs) == len(messages)
    assert_streams_follow_the_law(outputs, texts)
    grouped = by_stream(outputs)
    for stream in ("stream-000", "stream-042", "stream-099"):
        assert [r.outputs for r in grouped[stream]] == embedded(texts[stream])
    state = run_async(read_topic(settings, settings.topics.state))
    latest = {
        r.key.decode(): decode_state(r.key.decode(), r.partition, r.value)
        for r in state
        if r.key and r.value
    }
    assert {s: rec.state.seq for s, rec in latest.items()} == {s: len(t) for s, t in texts.items()}


def test_every_class_of_bad_input_lands_in_the_dlq_and_good_input_flows(
    kafka_bootstrap: str,
) -> None:
    settings = unique_settings(kafka_bootstrap, limits__max_message_bytes=64)
    bad = {
        "missing-key": (None, b"a"),
        "bad-key": (b"\xff\xfe", b"a"),
        "empty": (b"good", b""),
        "oversized": (b"good", b"x" * 100),
        "invalid-utf8": (b"good", b"\xc3\x28"),
        "invalid-json": (b"good", b'{"char": '),
        "unknown-field": (b"good", b'{"char": "a", "extra": 1}'),
        "bad-value": (b"good", b'{"char": "ab"}'),
    }
    good = "ab.ab.aa"
    messages = []
    for i, (key, value) in enumerate(bad.values()):
        messages += [(b"good", good[i].encode()), (key, value)]
    run_async(produce(settings, messages))

    report = work(settings, max_messages=len(messages))

    assert (report.applied, report.dead_letters, report.messages) == (
        len(good),
        len(bad),
        len(messages),
    )
    outputs = run_async(read_outputs(settings, expect=len(good)))
    assert_streams_follow_the_law(outputs, {"good": good})
    letters = run_async(read_topic(settings, settings.topics.dlq, expect=len(bad)))
    headers = [header_map(r.headers) for r in letters]
    assert sorted(h["dmm.error.reason"] for h in headers) == sorted(bad)
    for record, h in zip(letters, headers, strict=True):
        key, value = bad[h["dmm.error.reason"]]
        assert record.key == key
        assert record.value == (value[:64] if value else value)
        assert h["dmm.source.topic"] == settings.topics.input
        assert int(h["dmm.source.offset"]) >= 0 and h["dmm.error.class"].endswith("Error")
        assert h["dmm.error.message"]


def test_a_restarted_worker_continues_from_restored_state_and_skips_replays(
    kafka_bootstrap: str,
) -> None:
    settings = unique_settings(kafka_bootstrap)
    texts = stream_texts(12, 30, seed=5)
    halves = [{s: t[:15] for s, t in texts.items()}, {s: t[15:] for s, t in texts.items()}]
    first, second = interleaved(halves[0]), interleaved(halves[1])

    run_async(produce(settings, first))
    assert work(settings, max_messages=len(first)).applied == len(first)
    run_async(produce(settings, second))
    report = work(settings, max_messages=len(second))  # a new worker: state comes from dmm.state
    assert (report.applied, report.skipped) == (len(second), 0)

    # lose the committed offsets: everything is redelivered and every offset is skipped
    run_async(_commit(settings, offset=0))
    replay = work(settings, max_messages=len(first) + len(second))
    assert (replay.applied, replay.skipped) == (0, len(first) + len(second))

    outputs = run_async(read_outputs(settings, expect=len(first) + len(second)))
    assert len(outputs) == len(first) + len(second)  # no seq was applied twice
    assert_streams_follow_the_law(outputs, texts)  # counts kept growing across the restart


async def _commit(settings: Settings, offset: int) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap,
        group_id=settings.worker.group,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topics.input, p) for p in range(settings.topics.partitions)]
        consumer.assign(tps)
        await consumer.commit(dict.fromkeys(tps, offset))
    finally:
        await consumer.stop()


def test_exactly_once_delivers_each_stream_seq_once_to_a_read_committed_reader(
    kafka_bootstrap: str,
) -> None:
    settings = unique_settings(
        kafka_bootstrap, worker__guarantee="exactly-once", worker__batch_max_records=50
    )
    texts = stream_texts(10, 25, seed=9)
    messages = [*interleaved(texts), (None, b"x")]
    run_async(produce(settings, messages))

    report = work(settings, max_messages=len(messages))

    assert (report.applied, report.dead_letters) == (len(messages) - 1, 1)
    outputs = run_async(
        read_outputs(settings, expect=len(messages) - 1, isolation_level="read_committed")
    )
    assert len(outputs) == len(messages) - 1
    assert_streams_follow_the_law(outputs, texts)
    letters = run_async(
        read_topic(settings, settings.topics.dlq, expect=1, isolation_level="read_committed")
    )
    assert [header_map(r.headers)["dmm.error.reason"] for r in letters] == ["missing-key"]
    again = work(
        settings, max_messages=1, timeout_s=3.0
    )  # offsets were committed in the transactions
    assert again.messages == 0
