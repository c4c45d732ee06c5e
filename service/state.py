"""Per-stream state and its changelog, the compacted ``dmm.state`` topic.

A changelog record has key = stream id and value =
``{"snapshot": <StreamMachines.snapshot>, "seq": n, "last_offset": o, "model_version": v}``,
and is written to the same partition number as the stream's input partition, so the state of
an assigned input partition is read back from the state partition with the same number.
``seq`` counts the messages applied to the stream; ``last_offset`` is the input offset of the
last one, so a replayed offset (≤ ``last_offset``) is recognised and skipped.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from dmm_engine.streams import Snapshot
from service.errors import StateRestoreError

logger = logging.getLogger(__name__)

RESTORE_POLL_MS = 200


@dataclass(frozen=True, slots=True)
class StreamState:
    """Where a stream stands.

    Attributes:
        seq: messages applied so far (the last output's ``seq``).
        last_offset: input offset of the last applied message.
        partition: the input (and state) partition of the stream.
        model_version: the model version of the last applied message.
    """

    seq: int
    last_offset: int
    partition: int
    model_version: int

    def has_applied(self, partition: int, offset: int) -> bool:
        """True if the input message at `partition`/`offset` was applied already."""
        return partition == self.partition and offset <= self.last_offset


@dataclass(frozen=True, slots=True)
class StateRecord:
    """One changelog entry: a stream's state and its machine snapshot."""

    stream: str
    state: StreamState
    snapshot: Snapshot


def encode_state(record: StateRecord) -> bytes:
    """The changelog value of `record` (compact JSON)."""
    body = {
        "snapshot": record.snapshot,
        "seq": record.state.seq,
        "last_offset": record.state.last_offset,
        "model_version": record.state.model_version,
    }
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")


def decode_state(stream: str, partition: int, data: bytes) -> StateRecord:
    """Read a changelog value of `stream` stored in `partition`.

    Raises:
        StateRestoreError: the value is not a state record (names the stream and the field).
    """
    try:
        body = json.loads(data)
        state = StreamState(
            seq=int(body["seq"]),
            last_offset=int(body["last_offset"]),
            partition=partition,
            model_version=int(body["model_version"]),
        )
        snapshot = body["snapshot"]
        if not isinstance(snapshot, dict):
            raise TypeError(f"'snapshot' is {type(snapshot).__name__}, expected an object")
    except (ValueError, TypeError, KeyError) as exc:
        raise StateRestoreError(
            f"state record of stream {stream!r} in partition {partition} is corrupt "
            f"({exc.__class__.__name__}: {exc}); operator action: write a tombstone for the key"
        ) from None
    return StateRecord(stream, state, snapshot)


async def read_changelog(
    consumer: AIOKafkaConsumer, topic: str, partitions: Iterable[int], *, timeout_s: float
) -> dict[str, StateRecord]:
    """The latest state of every stream in `partitions` of the changelog `topic`.

    Reads each partition from its beginning to its end offset as of the call (with the
    consumer's isolation level: a ``read_committed`` consumer stops at the last stable
    offset). Tombstones delete. `consumer` must have no group; its assignment is replaced.

    Raises:
        StateRestoreError: not finished within `timeout_s`, or a corrupt record.
    """
    tps = [TopicPartition(topic, p) for p in sorted(set(partitions))]
    if not tps:
        return {}
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    ends = await consumer.end_offsets(tps)
    latest: dict[str, tuple[int, bytes | None]] = {}
    deadline = time.monotonic() + timeout_s
    pending = [tp for tp in tps if await consumer.position(tp) < ends[tp]]
    while pending:
        if time.monotonic() > deadline:
            raise StateRestoreError(
                f"restoring {topic} partitions {[tp.partition for tp in pending]} took longer "
                f"than {timeout_s:g}s (DMM_KAFKA_UNAVAILABLE_TIMEOUT_S)"
            )
        batch = await consumer.getmany(*pending, timeout_ms=RESTORE_POLL_MS)
        for tp, records in batch.items():
            for record in records:
                if record.offset < ends[tp] and record.key:
                    latest[record.key.decode("utf-8", "replace")] = (tp.partition, record.value)
        pending = [tp for tp in pending if await consumer.position(tp) < ends[tp]]
    consumer.assign([])
    return {
        stream: decode_state(stream, partition, value)
        for stream, (partition, value) in latest.items()
        if value is not None
    }
