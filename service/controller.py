"""The worker's control plane: consume ``dmm.control``, apply updates at a message boundary, ack.

The control topic is read without a consumer group, every partition, from the beginning at
start: the history is re-validated and re-applied in order (`replay`), so a restarted worker
runs the latest applied version before its first input message. After that, `poll` is
called by the worker between two batches and applies whatever arrived, all at that one
boundary. Acks go to ``dmm.control.acks`` (key = worker id) from a plain producer, never a
transactional one, so they also flow in exactly-once mode. During the replay only updates
this worker has not acknowledged with the same status before are acked (read back from the
acks topic), so a restart does not repeat the history's acks; their ``applied_at_offsets``
is empty (they take effect before the first message of this run).

Timing against the t+2 rule (reference §2.1; `StreamMachines.apply_delta`): an update
emitted into Self at up movement t reaches Self's ``delta`` at down movement t+1, is added
to W at up movement t+1 and is used from down movement t+2. Applying between two batches
equals, for every stream, a delta emitted at the up movement of cycle c−1, the
second-to-last cycle of the stream's last message before the boundary (c its last cycle):
it reaches Self's ``delta`` at down movement c, is added at up movement c — after that
message's outputs were read from down movement c, which used the old W — and is used from
down movement c+1, the first cycle of the stream's next message. So each message runs
wholly on one matrix: per input partition, every offset below ``applied_at_offsets[p]`` on
the old version and every offset from it on the new one, the same boundary for all streams.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError

from dmm_engine.streams import StreamMachines
from service.clients import make_consumer, make_producer
from service.codec import encode_key
from service.control import AckStatus, ControlAck, decode_ack, encode_ack
from service.history import read_to_end
from service.settings import Settings
from service.swap import SwapRules, handle_update

logger = logging.getLogger(__name__)

REPLAYED = "replayed at start"
"""The reason of an ``applied`` ack sent for an update first applied by a previous run."""

Boundary = Callable[[], Awaitable[Mapping[int, int]]]
"""Returns the message boundary: input partition → next offset to process."""


class Controller:
    """One worker's control consumer, ack producer and running model version."""

    def __init__(
        self,
        settings: Settings,
        rules: SwapRules,
        version: int,
        partitions: Mapping[str, int],
        *,
        on_count: Callable[[AckStatus], None] | None = None,
    ) -> None:
        """
        Args:
            settings: topics, connection and ``DMM_CONTROL_*``.
            rules: model name, worker id, registry and limits the updates are checked against.
            version: the version the machines start with.
            partitions: partition count per topic (`service.topics.ensure_topics`).
            on_count: called with the status each time `applied` or `rejected` is counted
                (the replayed history included), e.g. to count ``dmm_swaps_total{status}``.
        """
        self.settings = settings
        self.rules = rules
        self.version = version
        self.partitions = dict(partitions)
        self.applied = 0
        self.rejected = 0
        self._on_count = on_count
        self._acked: dict[tuple[str | None, int | None], set[str]] = {}
        self._consumer = make_consumer(settings, group_id=None, isolation_level="read_committed")
        self._producer = make_producer(settings)

    async def start(self) -> None:
        """Start the clients."""
        await self._producer.start()
        await self._consumer.start()

    async def close(self) -> None:
        """Stop the clients."""
        await self._consumer.stop()
        await self._producer.stop()

    async def replay(self, machines: StreamMachines) -> None:
        """Re-validate and re-apply the control history in order (call before any input).

        Raises:
            BrokerUnavailableError: the history could not be read in time.
        """
        for record in await self._read(self.settings.topics.control_acks):
            ack = decode_ack(record.value)
            if ack is not None and ack.worker == self.rules.worker:
                self._acked.setdefault((ack.model, ack.version), set()).add(ack.status)
        history = await self._read(self.settings.topics.control)
        await self._apply(history, machines, {}, replay=True)
        logger.info(
            "replayed control history updates=%d model_version=%d", len(history), self.version
        )

    async def poll(self, machines: StreamMachines, boundary: Boundary, *, drain: bool) -> None:
        """Apply the updates that arrived, all at the current message boundary.

        Args:
            machines: the running machines.
            boundary: called once if there is anything to apply.
            drain: read the control topic up to its end offset first (after a rebalance, so
                this worker is not behind the one that had the partitions before).
        """
        if drain:
            records = await self._read(self.settings.topics.control, from_beginning=False)
        else:
            batch = await self._consumer.getmany(timeout_ms=0)
            records = [record for got in batch.values() for record in got]
        if records:
            await self._apply(records, machines, await boundary(), replay=False)

    async def _read(
        self, topic: str, *, from_beginning: bool = True
    ) -> list[ConsumerRecord[bytes, bytes]]:
        return await read_to_end(
            self._consumer, topic, self.partitions[topic],
            timeout_s=self.settings.kafka.unavailable_timeout_s, from_beginning=from_beginning,
        )  # fmt: skip

    async def _apply(
        self,
        records: Sequence[ConsumerRecord[bytes, bytes]],
        machines: StreamMachines,
        offsets: Mapping[int, int],
        *,
        replay: bool,
    ) -> None:
        acks = []
        for record in records:
            ack = handle_update(
                record.key, record.value, machines, self.version, self.rules, offsets
            )
            if ack is None:
                continue
            self._count(ack, record.offset)
            if not replay:
                acks.append(ack)
            elif ack.status not in self._acked.get((ack.model, ack.version), set()):
                reason = ack.reason or REPLAYED
                acks.append(ControlAck(ack.model, ack.version, ack.worker, ack.status, reason))
        await self._send(acks)

    def _count(self, ack: ControlAck, offset: int) -> None:
        status: AckStatus = "rejected"
        if ack.status == "applied" and ack.version is not None:
            status = "applied"
            self.version = ack.version
            self.applied += 1
            logger.info(
                "applied model update model=%s version=%d control_offset=%d at=%s",
                ack.model, ack.version, offset, dict(ack.applied_at_offsets),
            )  # fmt: skip
        else:
            self.rejected += 1
            logger.warning(
                "rejected model update model=%s version=%s control_offset=%d reason=%s",
                ack.model, ack.version, offset, ack.reason,
            )  # fmt: skip
        if self._on_count is not None:
            self._on_count(status)

    async def _send(self, acks: Sequence[ControlAck]) -> None:
        topic, key = self.settings.topics.control_acks, encode_key(self.rules.worker)
        try:
            futures = [await self._producer.send(topic, encode_ack(ack), key=key) for ack in acks]
            for future in futures:
                await future
        except KafkaError as exc:
            # the swap itself happened; a restarted worker acks it during its replay
            logger.warning("could not send %d control ack(s) error=%r", len(acks), exc)
