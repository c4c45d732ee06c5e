"""Tests of service/kafka_local.py against a real broker, and of aiokafka through it."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from service import kafka_local
from service.kafka_local import BrokerInfo

TIMEOUT_S = 60.0
T = TypeVar("T")


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coroutine, TIMEOUT_S))


def _require_local(local_broker: BrokerInfo | None) -> BrokerInfo:
    if local_broker is None:
        pytest.skip("DMM_KAFKA_BOOTSTRAP is set: the local runner is not in use")
    return local_broker


async def _create_topic(bootstrap: str, name: str, partitions: int) -> int:
    """Create ``name``; return the partition count the broker reports for it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, replication_factor=1)])
        (described,) = await admin.describe_topics([name])
    finally:
        await admin.close()
    return len(described["partitions"])


async def _produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def _produce_in_transaction(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=f"test-tx-{uuid.uuid4().hex[:8]}"
    )
    await producer.start()
    try:
        async with producer.transaction():
            for value in values:
                await producer.send(topic, value)
    finally:
        await producer.stop()


async def _consume(
    bootstrap: str, topic: str, count: int, isolation_level: str = "read_uncommitted"
) -> list[tuple[int, bytes, bytes]]:
    """Read ``count`` messages from the start as (partition, key, value), in partition order."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-group-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        isolation_level=isolation_level,
    )
    await consumer.start()
    received: list[tuple[int, bytes, bytes]] = []
    try:
        while len(received) < count:
            batches = await consumer.getmany(timeout_ms=500)
            for partition, records in batches.items():
                received += [(partition.partition, r.key or b"", r.value or b"") for r in records]
    finally:
        await consumer.stop()
    return received


def test_produce_and_consume_round_trip(kafka_bootstrap: str) -> None:
    topic = f"test-round-trip-{uuid.uuid4().hex[:8]}"
    assert _run(_create_topic(kafka_bootstrap, topic, partitions=3)) == 3
    messages = [(f"stream-{i % 4}".encode(), f"message-{i}".encode()) for i in range(12)]
    _run(_produce(kafka_bootstrap, topic, messages))

    received = _run(_consume(kafka_bootstrap, topic, count=len(messages)))

    assert sorted((key, value) for _, key, value in received) == sorted(messages)
    partitions_of_key: dict[bytes, set[int]] = {}
    for partition, key, _ in received:
        partitions_of_key.setdefault(key, set()).add(partition)
    assert all(len(partitions) == 1 for partitions in partitions_of_key.values())
    for key in partitions_of_key:  # one key = one partition = its production order
        in_order = [value for _, k, value in received if k == key]
        assert in_order == [value for k, value in messages if k == key]


def test_transactions_work_on_the_single_node_broker(kafka_bootstrap: str) -> None:
    # exactly_once mode needs the transaction state topic, which the broker config must allow
    # with one replica (transaction.state.log.replication.factor / min.isr = 1).
    topic = f"test-transactions-{uuid.uuid4().hex[:8]}"
    _run(_create_topic(kafka_bootstrap, topic, partitions=1))
    values = [f"committed-{i}".encode() for i in range(3)]
    _run(_produce_in_transaction(kafka_bootstrap, topic, values))

    received = _run(_consume(kafka_bootstrap, topic, count=3, isolation_level="read_committed"))

    assert [value for _, _, value in received] == values


def test_status_reports_the_running_broker(local_broker: BrokerInfo | None) -> None:
    broker = _require_local(local_broker)

    assert kafka_local.status(broker.run_dir) == broker


def test_start_is_idempotent(local_broker: BrokerInfo | None, kafka_cache_dir: Path) -> None:
    broker = _require_local(local_broker)

    again = kafka_local.start(broker.run_dir, kafka_cache_dir)

    assert (again.bootstrap, again.pid) == (broker.bootstrap, broker.pid)


def test_stop_then_status_in_a_second_run_dir(
    local_broker: BrokerInfo | None, kafka_cache_dir: Path, tmp_path: Path
) -> None:
    _require_local(local_broker)  # jars are cached and java works: a second broker is cheap
    second = kafka_local.start(tmp_path, kafka_cache_dir)
    try:
        assert kafka_local.status(tmp_path) == second
        assert second.bootstrap != (local_broker.bootstrap if local_broker else "")
    finally:
        stopped = kafka_local.stop(tmp_path)

    assert stopped is True
    assert kafka_local.status(tmp_path) is None
    assert not Path(f"/proc/{second.pid}").exists()
    assert kafka_local.stop(tmp_path) is False


def test_stop_on_an_empty_dir_returns_false(tmp_path: Path) -> None:
    assert kafka_local.stop(tmp_path) is False
    assert kafka_local.status(tmp_path) is None


def test_start_rejects_a_wildcard_host(tmp_path: Path, kafka_cache_dir: Path) -> None:
    with pytest.raises(kafka_local.LocalBrokerError, match=re.escape("host='0.0.0.0'")):
        kafka_local.start(tmp_path, kafka_cache_dir, host="0.0.0.0")
