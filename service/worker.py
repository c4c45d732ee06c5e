"""The streaming worker's async shell: fetch a batch, run the pure core, deliver, commit.

`run_worker` consumes ``dmm.input`` in a consumer group. For each batch it calls
`service.batch.process_batch` (group by stream, one batched tick per round), then produces
the outputs, the state changes (``dmm.state``) and the dead letters, and commits the input
offsets only after they are all acknowledged. With ``exactly-once`` the three kinds of
messages and the offsets go into one Kafka transaction.

State is restored for newly assigned partitions inside the rebalance listener, before any
of their records is processed; a lock makes a rebalance wait for the batch in flight, so a
partition's state is complete in the changelog before another worker can read it.

The network always runs with a Self neuron (`dmm_engine.network.with_self`), so its soft
matrix W is Self's output. Model updates from ``dmm.control`` reach the hot path only through
`service.controller.Controller`: the history is replayed before the first batch, and new
updates are applied between two batches — a message boundary shared by every stream — so
each output's ``model_version`` is the version its whole message ran on. The module
docstring of `service.controller` relates that boundary to the t+2 rule.

With ``DMM_METRICS_ENABLED`` (the default) the worker serves ``/metrics``, ``/healthz`` and
``/readyz`` (`service.health`) from its first second; `service.worker_telemetry` holds the
metrics and readiness flags, which this loop updates once per batch (one histogram
observation per applied record for the end-to-end latency is the only per-record work),
after the control replay and at each rebalance.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaError,
    ProducerFenced,
)

from dmm_engine.network import with_self
from dmm_engine.streams import StreamMachines
from service.batch import BatchResult, OutgoingMessage, process_batch, state_sizes, to_messages
from service.clients import Isolation, make_consumer, make_producer
from service.controller import Controller
from service.errors import BrokerUnavailableError
from service.machines import build_machines, load_network, model_version_of
from service.neuron_types import load_registry
from service.settings import Settings
from service.shutdown import stop_on_signals
from service.state import StreamState, read_changelog
from service.swap import SwapRules
from service.topics import ensure_topics
from service.worker_telemetry import WorkerTelemetry

logger = logging.getLogger(__name__)

MAX_BACKOFF_S = 2.0
POSITION_TIMEOUT_S = 5.0

Batch = dict[TopicPartition, list[Any]]
"""What `AIOKafkaConsumer.getmany` returns: records per partition, in offset order."""


@dataclass(frozen=True, slots=True)
class WorkerReport:
    """What a (bounded) run did.

    Attributes:
        messages: input records handled (applied + skipped + dead-lettered).
        applied: messages applied to a stream (one output each).
        skipped: replayed offsets a stream had applied already.
        dead_letters: records sent to the DLQ.
        batches: batches delivered.
        elapsed_s: wall time from the first fetch to the end.
        model_version: the version running at the end.
        updates_applied: model updates applied (the replayed history included).
        updates_rejected: model updates rejected (the replayed history included).
        metrics_port: the port /metrics, /healthz, /readyz were served on (None: disabled).
    """

    messages: int
    applied: int
    skipped: int
    dead_letters: int
    batches: int
    elapsed_s: float
    model_version: int = 1
    updates_applied: int = 0
    updates_rejected: int = 0
    metrics_port: int | None = None

    @property
    def messages_per_s(self) -> float:
        """Handled records per second of wall time."""
        return self.messages / self.elapsed_s if self.elapsed_s > 0 else 0.0


async def run_worker(
    settings: Settings,
    *,
    max_messages: int | None = None,
    timeout_s: float | None = None,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
) -> WorkerReport:
    """Run the worker until SIGTERM/SIGINT, `stop`, `max_messages` or `timeout_s`.

    Shutdown is graceful: the batch in flight is delivered and committed, the consumer leaves
    its group, the clients close.

    Args:
        settings: the service settings (topics, group, model, guarantee, batching, limits).
        max_messages: stop after handling this many input records (None: no limit).
        timeout_s: stop after this many seconds (None: no limit).
        stop: set it to stop the worker from another task.
        handle_signals: install SIGTERM/SIGINT handlers for the run (main thread only).

    Raises:
        MetricsPortError: ``DMM_METRICS_HOST``:``DMM_METRICS_PORT`` cannot be bound.
        TopicError: a topic has the wrong partition count or configuration.
        ModelFileError: the model cannot be loaded.
        BrokerUnavailableError: delivery failed for longer than ``DMM_KAFKA_UNAVAILABLE_TIMEOUT_S``.
        StateRestoreError: the changelog of an assigned partition could not be read.

    Example:
        >>> report = asyncio.run(run_worker(load_settings(), max_messages=1000, timeout_s=60))
    """
    logger.info("starting worker with settings %s", settings.model_dump_json())
    # first, so that probes and scrapes get an answer while the model loads and state restores
    telemetry = WorkerTelemetry.serve(settings) if settings.metrics.enabled else None
    try:
        registry = load_registry(settings)  # built-in types and DMM_WORKER_NEURON_TYPES
        network = with_self(load_network(settings, registry), registry)
        machines = build_machines(settings, network, registry)
        partitions = await ensure_topics(settings)
        stop = stop or asyncio.Event()
        rules = SwapRules(network.name, worker_id_of(settings), registry, settings.control)
        on_count = telemetry.count_swap if telemetry is not None else None
        version = model_version_of(network)
        controller = Controller(settings, rules, version, partitions, on_count=on_count)
        worker = _Worker(settings, machines, controller, telemetry)
        with stop_on_signals(stop, handle_signals):
            await worker.start()
            try:
                return await worker.run(stop, max_messages, timeout_s)
            finally:
                await worker.close()
    finally:
        if telemetry is not None:
            telemetry.server.stop()


def worker_id_of(settings: Settings) -> str:
    """``DMM_WORKER_ID``, else the host name (a pod name in Kubernetes)."""
    return settings.worker.id or socket.gethostname()


class _Worker(ConsumerRebalanceListener):  # type: ignore[misc]
    """One worker's clients, machines and per-stream states."""

    def __init__(
        self,
        settings: Settings,
        machines: StreamMachines,
        controller: Controller,
        telemetry: WorkerTelemetry | None,
    ) -> None:
        self.settings = settings
        self.machines = machines
        self.controller = controller
        self.telemetry = telemetry
        self.states: dict[str, StreamState] = {}
        self.owned: set[int] = set()
        self.lock = asyncio.Lock()
        self.failure: BaseException | None = None
        self.control_behind = False
        worker_id = worker_id_of(settings)
        transactional_id = f"{settings.worker.group}-{worker_id}" if settings.exactly_once else None
        isolation: Isolation = "read_committed" if settings.exactly_once else "read_uncommitted"
        self.producer = make_producer(settings, transactional_id=transactional_id)
        self.consumer = make_consumer(
            settings, group_id=settings.worker.group, isolation_level=isolation
        )
        self.restorer = make_consumer(settings, group_id=None, isolation_level=isolation)
        self.counts = {"messages": 0, "applied": 0, "skipped": 0, "dead_letters": 0, "batches": 0}

    async def start(self) -> None:
        await self.producer.start()
        await self.restorer.start()
        await self.controller.start()
        async with self.lock:
            await self.controller.replay(self.machines)
        if self.telemetry is not None:
            self.telemetry.loaded(self.controller.version)
        await self.consumer.start()
        self.consumer.subscribe([self.settings.topics.input], listener=self)

    async def close(self) -> None:
        for client in (self.consumer, self.restorer):
            await client.stop()
        await self.controller.close()
        await self.producer.stop()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self.lock:  # waits for the batch in flight to be delivered
            partitions = {tp.partition for tp in revoked if tp.topic == self.settings.topics.input}
            self.owned -= partitions
            dropped = [s for s, state in self.states.items() if state.partition in partitions]
            for stream in dropped:
                del self.states[stream]
                self.machines.drop(stream)
            if self.telemetry is not None:
                self.telemetry.revoked(dropped, self.owned, len(self.states))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        async with self.lock:
            topic = self.settings.topics.input
            partitions = {tp.partition for tp in assigned if tp.topic == topic} - self.owned
            started = time.monotonic()
            if self.telemetry is not None:
                self.telemetry.restoring()
            try:
                restored = await read_changelog(
                    self.restorer,
                    self.settings.topics.state,
                    partitions,
                    timeout_s=self.settings.kafka.unavailable_timeout_s,
                )
                for stream, record in restored.items():
                    self.machines.restore(stream, record.snapshot)
                    self.states[stream] = record.state
            except Exception as exc:  # aiokafka only logs listener errors: the loop re-raises
                self.failure = exc
                return
            self.owned |= partitions
            self.control_behind = True  # catch up before the first batch of these partitions
            if self.telemetry is not None:
                self.telemetry.restored(restored, self.owned, len(self.states))
            logger.info(
                "restored state streams=%d partitions=%s in %.2fs",
                len(restored), sorted(partitions), time.monotonic() - started,
            )  # fmt: skip

    async def run(
        self, stop: asyncio.Event, max_messages: int | None, timeout_s: float | None
    ) -> WorkerReport:
        started = time.monotonic()
        deadline = started + timeout_s if timeout_s is not None else None
        batch_max = self.settings.worker.batch_max_records
        while not stop.is_set():
            if self.telemetry is not None:
                self.telemetry.beat()
            if self.failure is not None:
                raise self.failure
            handled = self.counts["messages"]
            if max_messages is not None and handled >= max_messages:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            limit = batch_max if max_messages is None else min(batch_max, max_messages - handled)
            batch = await self.consumer.getmany(
                timeout_ms=self.settings.worker.fetch_timeout_ms, max_records=limit
            )
            await self._control(batch)
            if batch:
                await self._handle(batch)
            if self.telemetry is not None:
                self.telemetry.polled(self.controller.version, await self._lag())
        return WorkerReport(
            **self.counts,
            elapsed_s=time.monotonic() - started,
            model_version=self.controller.version,
            updates_applied=self.controller.applied,
            updates_rejected=self.controller.rejected,
            metrics_port=self.telemetry.server.port if self.telemetry is not None else None,
        )

    async def _lag(self) -> dict[int, int]:
        """Input partition → highwater − position, for each owned partition fetched from.

        The highwater comes with every fetch response (no request of its own); a partition
        not fetched from yet has none and is left out.
        """
        highwaters = {
            tp: highwater
            for tp in self.consumer.assignment()
            if tp.partition in self.owned and (highwater := self.consumer.highwater(tp)) is not None
        }
        lag = {}
        for tp, highwater in highwaters.items():
            try:  # the position is known once fetched from: this returns without waiting
                position = await asyncio.wait_for(self.consumer.position(tp), POSITION_TIMEOUT_S)
            except (IllegalStateError, KafkaError, TimeoutError):
                continue  # revoked meanwhile: the next rebalance listener call drops it
            lag[tp.partition] = max(highwater - position, 0)
        return lag

    async def _control(self, batch: Batch) -> None:
        """Apply the model updates that arrived, at the boundary before `batch`.

        After a rebalance (which may happen inside the fetch of `batch`) the control topic is
        first read up to its end, so this worker is not behind the one that had the partitions.
        """
        async with self.lock:
            drain, self.control_behind = self.control_behind, False
            boundary = functools.partial(self._boundary, batch)
            await self.controller.poll(self.machines, boundary, drain=drain)

    async def _boundary(self, batch: Batch) -> dict[int, int]:
        """Input partition → the next offset to process, for every partition this worker owns.

        That is the first offset of `batch` (fetched, not yet handled) where it has records of
        the partition, else the consumer's position (everything before it was handled).
        """
        firsts = {tp.partition: records[0].offset for tp, records in batch.items() if records}
        offsets = {}
        for tp in self.consumer.assignment():
            if tp.partition not in self.owned:
                continue
            if tp.partition in firsts:
                offsets[tp.partition] = firsts[tp.partition]
                continue
            try:
                position = self.consumer.position(tp)
                offsets[tp.partition] = await asyncio.wait_for(position, POSITION_TIMEOUT_S)
            except (IllegalStateError, KafkaError, TimeoutError) as exc:
                logger.warning("no position for the swap boundary partition=%s error=%r", tp, exc)
        return offsets

    async def _handle(self, batch: Batch) -> None:
        async with self.lock:
            records = [r for tp, rs in batch.items() if tp.partition in self.owned for r in rs]
            if not records:  # fetched before a rebalance took the partitions away
                return
            result = process_batch(
                self.machines,
                self.states,
                records,
                limits=self.settings.limits,
                model_version=self.controller.version,
            )
            self.states.update(result.states)
            messages = to_messages(result, self.settings.topics)
            await self._deliver(messages, result.commit)
            if self.telemetry is not None:
                self.telemetry.delivered(result, time.time(), len(self.states))
                self.telemetry.set_state_sizes(state_sizes(result, messages))
        self._count(result)

    def _count(self, result: BatchResult) -> None:
        self.counts["messages"] += result.records
        self.counts["applied"] += len(result.outputs)
        self.counts["skipped"] += result.skipped
        self.counts["dead_letters"] += len(result.dead_letters)
        self.counts["batches"] += 1
        if result.dead_letters:
            first = result.dead_letters[0]
            reasons = sorted({d.reason for d in result.dead_letters})
            logger.warning(
                "dead-lettered count=%d reasons=%s first=%s/%d/%d: %s",
                len(result.dead_letters), ",".join(reasons),
                first.topic, first.partition, first.offset, first.message,
            )  # fmt: skip

    async def _deliver(
        self, messages: list[OutgoingMessage], commit: Mapping[tuple[str, int], int]
    ) -> None:
        """Produce a batch's messages and commit its offsets, retrying while brokers are away."""
        offsets = {TopicPartition(t, p): offset for (t, p), offset in commit.items()}
        deadline = time.monotonic() + self.settings.kafka.unavailable_timeout_s
        attempt = 0
        while True:
            try:
                if self.settings.exactly_once:
                    await self._deliver_transaction(messages, offsets)
                else:
                    await self._deliver_at_least_once(messages, offsets)
                return
            except ProducerFenced:
                raise  # another worker took over this transactional id: this one must stop
            except KafkaError as exc:
                if time.monotonic() >= deadline:
                    limit_s = self.settings.kafka.unavailable_timeout_s
                    raise BrokerUnavailableError(
                        f"could not deliver a batch for {limit_s:g}s "
                        f"(DMM_KAFKA_UNAVAILABLE_TIMEOUT_S); last error: {exc!r}"
                    ) from exc
                attempt += 1
                logger.warning("delivery failed, retrying attempt=%d error=%r", attempt, exc)
                await asyncio.sleep(min(0.1 * 2**attempt, MAX_BACKOFF_S))

    async def _send_all(self, messages: list[OutgoingMessage]) -> None:
        futures = [
            await self.producer.send(
                m.topic, m.value, key=m.key, partition=m.partition, headers=m.headers
            )
            for m in messages
        ]
        await asyncio.gather(*futures)

    async def _deliver_at_least_once(
        self, messages: list[OutgoingMessage], offsets: dict[TopicPartition, int]
    ) -> None:
        await self._send_all(messages)
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # the partitions moved: their new owner replays from the last commit and skips
            # what the changelog (already written above) says was applied
            logger.warning("offset commit failed after a rebalance error=%r", exc)

    async def _deliver_transaction(
        self, messages: list[OutgoingMessage], offsets: dict[TopicPartition, int]
    ) -> None:
        async with self.producer.transaction():
            await self._send_all(messages)
            await self.producer.send_offsets_to_transaction(offsets, self.settings.worker.group)
