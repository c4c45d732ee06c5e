"""The worker's pure core: one batch of input records in, outputs and state changes out.

No I/O and no ``await``: `process_batch` runs the machines on plain lists, so it is tested
without a broker; the async shell (`service.worker`) only moves the bytes.

Within a batch the records are grouped by stream. Round r advances every stream that has an
r-th message with one ``machines.step`` call, in which each stream appears once, so a stream
with k messages takes k rounds and its messages keep their order.

The core also measures what the shell reports as metrics without doing I/O itself: the wall
time of each ``machines.step`` call (`time.perf_counter`) and the Kafka timestamps of the
applied records, from which the shell computes the end-to-end latency once the outputs are
acknowledged.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dmm_engine import vvalue
from dmm_engine.streams import StreamMachines
from service.codec import (
    InputEvent,
    OutputRecord,
    RawRecord,
    encode_key,
    encode_output,
    input_of,
)
from service.dlq import DeadLetter, Headers, classify
from service.settings import LimitSettings, TopicSettings
from service.state import StateRecord, StreamState, encode_state

TopicPartitionKey = tuple[str, int]


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one batch produced.

    Attributes:
        outputs: one record per applied message, in input order per stream.
        changelog: the new state of every stream that advanced.
        dead_letters: the rejected records.
        states: the new `StreamState` of every stream that advanced (merge into the map).
        commit: next offset to commit per ``(topic, partition)`` seen in the batch.
        skipped: records whose offset the stream had applied already (replays).
        rounds: ``machines.step`` calls made.
        tick_seconds: wall time of each of those calls, seconds (`time.perf_counter`).
        input_timestamps_ms: Kafka timestamps (ms since the epoch) of the applied records
            that carry one (aiokafka's ``ConsumerRecord.timestamp``; a plain `InputRecord` or
            a timestamp of -1 carries none), in no particular order.
    """

    outputs: tuple[OutputRecord, ...]
    changelog: tuple[StateRecord, ...]
    dead_letters: tuple[DeadLetter, ...]
    states: dict[str, StreamState]
    commit: dict[TopicPartitionKey, int]
    skipped: int
    rounds: int
    tick_seconds: tuple[float, ...] = ()
    input_timestamps_ms: tuple[int, ...] = ()

    @property
    def records(self) -> int:
        """Input records handled (applied, skipped or dead-lettered)."""
        return len(self.outputs) + self.skipped + len(self.dead_letters)


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message to produce: `partition` None lets the producer's partitioner choose."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None
    headers: Headers | None = None


def process_batch(
    machines: StreamMachines,
    states: Mapping[str, StreamState],
    records: Sequence[RawRecord],
    *,
    limits: LimitSettings,
    model_version: int,
) -> BatchResult:
    """Apply a batch of consumed records to `machines`.

    Args:
        machines: the per-stream machines (advanced in place).
        states: the current state of every known stream (not modified).
        records: consumed records in fetch order (offsets increase within a partition).
        limits: input limits; a record over a limit becomes a dead letter.
        model_version: stamped on every output and state.

    Returns:
        The `BatchResult`; replayed offsets are skipped, bad records dead-lettered.
    """
    queues, timestamps, dead_letters, skipped = _sort_records(states, records, limits)
    for stream in queues:
        if stream not in states:  # no state means the reset state, whatever machines holds
            machines.drop(stream)
    by_stream: dict[str, list[OutputRecord]] = {stream: [] for stream in queues}
    rounds = max((len(queue) for queue in queues.values()), default=0)
    tick_seconds = []
    for r in range(rounds):
        batch = [(stream, queue[r]) for stream, queue in queues.items() if len(queue) > r]
        started = time.perf_counter()
        results = machines.step([(stream, event.value) for stream, event in batch])
        tick_seconds.append(time.perf_counter() - started)
        for (stream, event), named in zip(batch, results, strict=True):
            done = by_stream[stream]
            seq = _seq_before(states, stream) + len(done) + 1
            jsonable = {name: vvalue.to_jsonable(v) for name, v in named.items()}
            done.append(
                OutputRecord(stream, seq, event.offset, model_version, input_of(event), jsonable)
            )
    new_states = {
        stream: StreamState(
            done[-1].seq, done[-1].offset, queues[stream][-1].partition, model_version
        )
        for stream, done in by_stream.items()
    }
    changelog = tuple(
        StateRecord(stream, state, machines.snapshot(stream))
        for stream, state in new_states.items()
    )
    outputs = tuple(record for done in by_stream.values() for record in done)
    return BatchResult(
        outputs,
        changelog,
        tuple(dead_letters),
        new_states,
        _next_offsets(records),
        skipped,
        rounds,
        tuple(tick_seconds),
        tuple(timestamps),
    )


def _sort_records(
    states: Mapping[str, StreamState], records: Sequence[RawRecord], limits: LimitSettings
) -> tuple[dict[str, list[InputEvent]], list[int], list[DeadLetter], int]:
    """Valid events queued per stream (first-seen order), the Kafka timestamps of the queued
    records that have one, dead letters, and replays skipped."""
    queues: dict[str, list[InputEvent]] = {}
    timestamps: list[int] = []
    dead_letters: list[DeadLetter] = []
    skipped = 0
    for record in records:
        event = classify(record, limits)
        if isinstance(event, DeadLetter):
            dead_letters.append(event)
            continue
        state = states.get(event.stream)
        if state is not None and state.has_applied(event.partition, event.offset):
            skipped += 1
            continue
        queues.setdefault(event.stream, []).append(event)
        timestamp = getattr(record, "timestamp", None)  # not part of RawRecord: optional
        if timestamp is not None and timestamp >= 0:
            timestamps.append(timestamp)
    return queues, timestamps, dead_letters, skipped


def _seq_before(states: Mapping[str, StreamState], stream: str) -> int:
    state = states.get(stream)
    return state.seq if state is not None else 0


def _next_offsets(records: Sequence[RawRecord]) -> dict[TopicPartitionKey, int]:
    offsets: dict[TopicPartitionKey, int] = {}
    for record in records:
        key = (record.topic, record.partition)
        offsets[key] = max(offsets.get(key, 0), record.offset + 1)
    return offsets


def to_messages(result: BatchResult, topics: TopicSettings) -> list[OutgoingMessage]:
    """The messages that deliver `result`: outputs, then state changes, then dead letters.

    State goes to the partition number of the stream's input partition (co-partitioning);
    outputs and dead letters are partitioned by key.
    """
    messages = [
        OutgoingMessage(topics.output, encode_key(r.stream), encode_output(r))
        for r in result.outputs
    ]
    messages += [
        OutgoingMessage(topics.state, encode_key(c.stream), encode_state(c), c.state.partition)
        for c in result.changelog
    ]
    messages += [
        OutgoingMessage(topics.dlq, d.key, d.value, None, d.headers()) for d in result.dead_letters
    ]
    return messages


def state_sizes(result: BatchResult, messages: Sequence[OutgoingMessage]) -> dict[str, int]:
    """Stream → size in bytes of its new state message, read from ``to_messages(result, …)``.

    Those messages come right after the outputs, one per changelog entry, in its order.
    """
    first = len(result.outputs)
    states = messages[first : first + len(result.changelog)]
    return {c.stream: len(m.value or b"") for c, m in zip(result.changelog, states, strict=True)}
