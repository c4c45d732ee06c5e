"""Reading a small topic whole: the control history and the acks (few, ordered messages)."""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from service.errors import BrokerUnavailableError

POLL_MS = 200


async def read_to_end(
    consumer: AIOKafkaConsumer,
    topic: str,
    partitions: int,
    *,
    timeout_s: float,
    from_beginning: bool = True,
) -> list[ConsumerRecord[bytes, bytes]]:
    """The records of `topic` up to (at least) its end offsets as of the call, in order.

    Records that arrive meanwhile and come in the same fetch are included, never skipped.

    `consumer` must have no group; it is assigned the `partitions` of `topic` (their count,
    as `service.topics.ensure_topics` returns it) and stays positioned at the end, so later
    `getmany` calls return only newer records. With `from_beginning` False, reading starts at
    the consumer's current positions (a catch-up).

    Raises:
        BrokerUnavailableError: the end was not reached within `timeout_s`.
    """
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    if set(consumer.assignment()) != set(tps):
        consumer.assign(tps)
        from_beginning = True
    if from_beginning:
        await consumer.seek_to_beginning(*tps)
    ends = await consumer.end_offsets(tps)
    records: list[ConsumerRecord[bytes, bytes]] = []
    deadline = time.monotonic() + timeout_s
    pending = [tp for tp in tps if await consumer.position(tp) < ends[tp]]
    while pending:
        if time.monotonic() > deadline:
            raise BrokerUnavailableError(
                f"reading topic {topic!r} to its end took longer than {timeout_s:g}s "
                "(DMM_KAFKA_UNAVAILABLE_TIMEOUT_S)"
            )
        batch = await consumer.getmany(*pending, timeout_ms=POLL_MS)
        for got in batch.values():
            records += got
        pending = [tp for tp in pending if await consumer.position(tp) < ends[tp]]
    return records
