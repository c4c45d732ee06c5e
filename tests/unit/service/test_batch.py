"""The worker's pure core on plain lists: no broker, real machines from the zoo."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

import pytest
from aiokafka.structs import ConsumerRecord

from dmm_engine import NeuronRegistry, one_hot, run_messages, vvalue, zoo
from dmm_engine.streams import InterpreterMachines, Snapshot
from dmm_engine.vvalue import VValue
from service.batch import BatchResult, process_batch, state_sizes, to_messages
from service.codec import InputRecord, OutputRecord, decode_output
from service.dlq import header_map
from service.errors import StateRestoreError
from service.settings import LimitSettings, TopicSettings
from service.state import StreamState, decode_state, encode_state

LIMITS = LimitSettings()


class RecordingMachines:
    """`InterpreterMachines` that records each `step` call (a tiny real spy, no mock)."""

    def __init__(self, registry: NeuronRegistry) -> None:
        self.inner = InterpreterMachines(zoo.load("duplicate-detector", registry), registry)
        self.network = self.inner.network
        self.calls: list[list[str]] = []

    def step(self, batch: Sequence[tuple[str, VValue]]) -> list[dict[str, VValue]]:
        self.calls.append([stream for stream, _ in batch])
        return self.inner.step(batch)

    def snapshot(self, stream: str) -> Snapshot:
        return self.inner.snapshot(stream)

    def restore(self, stream: str, snapshot: Snapshot) -> None:
        self.inner.restore(stream, snapshot)

    def drop(self, stream: str) -> None:
        self.inner.drop(stream)

    def streams(self) -> list[str]:
        return self.inner.streams()


def records_of(
    texts: dict[str, str], partition_of: dict[str, int] | None = None
) -> list[InputRecord]:
    """Interleave the streams' symbols round-robin, with per-partition increasing offsets."""
    partition_of = partition_of or {}
    offsets: Counter[int] = Counter()
    out = []
    for i in range(max(len(t) for t in texts.values())):
        for stream, text in texts.items():
            if i < len(text):
                p = partition_of.get(stream, 0)
                out.append(InputRecord("in", p, offsets[p], stream.encode(), text[i].encode()))
                offsets[p] += 1
    return out


def law(text: str) -> list[dict[str, int]]:
    """The duplicate detector's law after each symbol of `text`."""
    counts: Counter[str] = Counter()
    expected = []
    for symbol in text:
        counts[symbol] += 1
        expected.append({"left": max(counts.values()) - 1, "right": min(counts["."], 4)})
    return expected


def run(
    machines: RecordingMachines, states: dict[str, StreamState], records: list[InputRecord]
) -> BatchResult:
    result = process_batch(machines, states, records, limits=LIMITS, model_version=3)
    states.update(result.states)
    return result


def test_outputs_follow_the_law_per_stream_with_one_step_per_round(
    registry: NeuronRegistry,
) -> None:
    texts = {"a": "test string.", "b": "aaa.b.", "c": "x"}
    machines = RecordingMachines(registry)

    result = process_batch(machines, {}, records_of(texts), limits=LIMITS, model_version=3)

    assert result.rounds == 12 and len(machines.calls) == 12
    assert machines.calls[0] == ["a", "b", "c"] and machines.calls[6] == ["a"]
    assert all(len(call) == len(set(call)) for call in machines.calls)
    for stream, text in texts.items():
        mine = [o for o in result.outputs if o.stream == stream]
        assert [o.outputs for o in mine] == law(text)
        assert [o.seq for o in mine] == list(range(1, len(text) + 1))
        assert [o.input for o in mine] == list(text)
        assert all(o.model_version == 3 for o in mine)
    last_of_a = max(r.offset for r in records_of(texts) if r.key == b"a")
    assert result.states["a"] == StreamState(12, last_of_a, partition=0, model_version=3)
    assert result.commit == {("in", 0): len(records_of(texts))}
    assert result.records == sum(map(len, texts.values())) and result.skipped == 0


def test_outputs_equal_the_embedded_run(registry: NeuronRegistry) -> None:
    network = zoo.load("duplicate-detector", registry)
    text = "the cat sat on the mat. the end.."
    machines = RecordingMachines(registry)
    result = process_batch(
        machines, {}, records_of({"s": text, "t": text[::-1]}), limits=LIMITS, model_version=1
    )
    embedded = [
        {name: vvalue.to_jsonable(v) for name, v in outputs.items()}
        for outputs in run_messages(network, registry, [one_hot(c) for c in text])
    ]
    assert [o.outputs for o in result.outputs if o.stream == "s"] == embedded


def test_state_advances_across_batches_and_seq_continues(registry: NeuronRegistry) -> None:
    text = "abcabc.a.."
    records = records_of({"s": text})
    machines = RecordingMachines(registry)
    states: dict[str, StreamState] = {}

    first = run(machines, states, records[:4])
    second = run(machines, states, records[4:])

    assert [o.seq for o in first.outputs + second.outputs] == list(range(1, 11))
    assert [o.outputs for o in first.outputs + second.outputs] == law(text)
    assert states["s"] == StreamState(seq=10, last_offset=9, partition=0, model_version=3)
    assert second.changelog[0].state == states["s"]


def test_a_replayed_offset_is_skipped_never_applied_twice(registry: NeuronRegistry) -> None:
    records = records_of({"s": "aaaa", "t": "bb"})
    machines = RecordingMachines(registry)
    states: dict[str, StreamState] = {}
    run(machines, states, records[:4])  # s: a a, t: b b

    replay = run(machines, states, records)  # redelivered from offset 0 after a lost commit

    assert replay.skipped == 4
    assert [(o.stream, o.seq, o.outputs["left"]) for o in replay.outputs] == [
        ("s", 3, 2),
        ("s", 4, 3),
    ]
    assert replay.commit == {("in", 0): 6}


def test_offsets_of_another_partition_are_not_confused(registry: NeuronRegistry) -> None:
    machines = RecordingMachines(registry)
    states = {"s": StreamState(seq=5, last_offset=10, partition=1, model_version=1)}
    result = process_batch(
        machines, states, [InputRecord("in", 0, 3, b"s", b"x")], limits=LIMITS, model_version=1
    )
    assert [o.seq for o in result.outputs] == [6]


def test_restore_from_the_changelog_continues_like_an_uninterrupted_run(
    registry: NeuronRegistry,
) -> None:
    text = "hello world. hello again."
    records = records_of({"s": text})
    first = RecordingMachines(registry)
    states: dict[str, StreamState] = {}
    before = run(first, states, records[:11])

    # a new worker: fresh machines and states read back from the changelog bytes
    (entry,) = before.changelog
    restored = decode_state("s", 0, encode_state(entry))
    second = RecordingMachines(registry)
    second.restore("s", json.loads(json.dumps(restored.snapshot)))
    after = run(second, {"s": restored.state}, records)  # replays 0..10, then continues

    assert after.skipped == 11
    assert [o.outputs for o in before.outputs + after.outputs] == law(text)
    assert [o.seq for o in after.outputs] == list(range(12, len(text) + 1))


def test_bad_records_are_dead_lettered_and_good_ones_still_flow(registry: NeuronRegistry) -> None:
    records = [
        InputRecord("in", 0, 0, b"s", b"a"),
        InputRecord("in", 0, 1, None, b"a"),
        InputRecord("in", 0, 2, b"s", b"\xff"),
        InputRecord("in", 0, 3, b"s", b'{"token": "a"}'),
        InputRecord("in", 1, 0, b"u", b'{"v": {"q": 1}}'),
    ]
    result = process_batch(RecordingMachines(registry), {}, records, limits=LIMITS, model_version=1)
    assert [d.reason for d in result.dead_letters] == ["missing-key", "invalid-utf8"]
    assert [(o.stream, o.seq, o.offset, o.outputs["left"]) for o in result.outputs] == [
        ("s", 1, 0, 0),
        ("s", 2, 3, 1),
        ("u", 1, 0, 0),
    ]
    assert result.commit == {("in", 0): 4, ("in", 1): 1}


def test_a_stream_without_state_starts_from_the_reset_state(registry: NeuronRegistry) -> None:
    machines = RecordingMachines(registry)
    machines.step([("s", one_hot("a"))])  # leftover machine state, no StreamState for it
    result = process_batch(
        machines, {}, [InputRecord("in", 0, 0, b"s", b"a")], limits=LIMITS, model_version=1
    )
    assert result.outputs[0].outputs["left"] == 0


def test_messages_route_outputs_state_and_dead_letters(registry: NeuronRegistry) -> None:
    records = [InputRecord("in", 2, 0, b"s", b"a"), InputRecord("in", 2, 1, b"s", b"")]
    result = process_batch(RecordingMachines(registry), {}, records, limits=LIMITS, model_version=1)
    topics = TopicSettings(output="out", state="st", dlq="dead")
    output, state, dead = to_messages(result, topics)
    assert (output.topic, output.key, output.partition) == ("out", b"s", None)
    assert decode_output(output.value or b"") == OutputRecord(
        "s", 1, 0, 1, "a", {"left": 0, "right": 0}
    )
    assert (state.topic, state.key, state.partition) == ("st", b"s", 2)  # co-partitioned with input
    body = json.loads(state.value or b"")
    assert set(body) == {"snapshot", "seq", "last_offset", "model_version"}
    assert (body["seq"], body["last_offset"], body["model_version"]) == (1, 0, 1)
    assert (dead.topic, dead.key, dead.value) == ("dead", b"s", b"")
    assert header_map(dead.headers)["dmm.error.reason"] == "empty"


def test_an_empty_batch_does_nothing(registry: NeuronRegistry) -> None:
    result = process_batch(RecordingMachines(registry), {}, [], limits=LIMITS, model_version=1)
    assert (result.outputs, result.changelog, result.commit, result.rounds) == ((), (), {}, 0)
    assert (result.tick_seconds, result.input_timestamps_ms) == ((), ())


def kafka_record(offset: int, key: bytes | None, value: bytes, timestamp: int) -> ConsumerRecord:
    """aiokafka's own record type, as the worker gets it from getmany (partition 0)."""
    return ConsumerRecord("in", 0, offset, timestamp, 0, key, value, None, 1, len(value), ())


def test_each_step_is_timed_and_applied_records_give_their_timestamps(
    registry: NeuronRegistry,
) -> None:
    records = [
        kafka_record(0, b"s", b"a", 1_000),
        kafka_record(1, b"t", b"b", 1_001),
        kafka_record(2, None, b"c", 1_002),  # dead letter: no timestamp reported
        kafka_record(3, b"s", b"a", 1_003),
        kafka_record(4, b"s", b"a", -1),  # Kafka's "no timestamp"
    ]
    states = {"t": StreamState(seq=1, last_offset=1, partition=0, model_version=1)}  # t replayed
    machines = RecordingMachines(registry)
    result = process_batch(machines, states, records, limits=LIMITS, model_version=1)

    assert result.rounds == 3 and len(result.tick_seconds) == len(machines.calls) == 3
    assert all(0.0 < seconds < 60.0 for seconds in result.tick_seconds)
    assert sorted(result.input_timestamps_ms) == [1_000, 1_003]
    assert (len(result.outputs), result.skipped, len(result.dead_letters)) == (3, 1, 1)
    # plain InputRecords (tools, tests) carry no timestamp at all
    plain = process_batch(machines, {}, records_of({"u": "ab"}), limits=LIMITS, model_version=1)
    assert plain.input_timestamps_ms == () and len(plain.outputs) == 2


def test_state_sizes_are_the_sizes_of_the_state_messages(registry: NeuronRegistry) -> None:
    records = [*records_of({"a": "abc", "b": "x"}), InputRecord("in", 0, 9, None, b"z")]
    result = process_batch(RecordingMachines(registry), {}, records, limits=LIMITS, model_version=1)
    messages = to_messages(result, TopicSettings(state="st"))
    sizes = state_sizes(result, messages)
    assert sizes == {
        (m.key or b"").decode(): len(m.value or b"") for m in messages if m.topic == "st"
    }
    assert set(sizes) == {"a", "b"} and all(size > 0 for size in sizes.values())
    assert sizes["a"] == len(encode_state(next(c for c in result.changelog if c.stream == "a")))


@pytest.mark.parametrize(
    "data",
    [
        b"{",
        b"[]",
        b'{"seq": 1}',
        b'{"snapshot": 1, "seq": 1, "last_offset": 0, "model_version": 1}',
    ],
)
def test_a_corrupt_changelog_record_names_the_stream(data: bytes) -> None:
    with pytest.raises(StateRestoreError, match="stream 's9' in partition 4 is corrupt"):
        decode_state("s9", 4, data)
