"""The demo's terminal view: live outputs per channel, the hot swap, dead letters, the error.

`LiveView` reads the output, control, acks and DLQ topics (no consumer group, from the
start: the demo's topics are fresh) and keeps, per channel, the latest stream's text and
outputs next to what the handcrafted teacher gives on the same text — the teacher runs
in-process on the reference interpreter. On a terminal it draws a live table (rich); piped,
it prints one line per finished sentence and one per event, so a log shows the same story.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiokafka import ConsumerRecord
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from dmm_engine import NeuronRegistry, one_hot, vvalue, zoo
from dmm_engine.streams import InterpreterMachines
from service.clients import make_consumer
from service.codec import OutputRecord, decode_output
from service.control import decode_ack, peek_update
from service.dlq import header_map
from service.errors import BadValueError
from service.settings import Settings

NAMES = ("left", "right")


@dataclass(slots=True)
class Row:
    """The latest stream of one channel."""

    stream: str
    text: str = ""
    outputs: tuple[float, float] = (0.0, 0.0)
    expected: tuple[float, float] = (0.0, 0.0)
    version: int = 0


@dataclass(frozen=True, slots=True)
class Swap:
    """A hot swap some worker acknowledged."""

    version: int
    worker: str
    latency_ms: float | None
    offsets: dict[int, int]


@dataclass(slots=True)
class Tally:
    """Squared error against the teacher per stream, and the model versions each ran on.

    A stream in flight during a swap runs its first messages on one matrix and the rest on
    the other, from a state the old one built: the summary counts such streams apart.
    """

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    versions: dict[str, set[int]] = field(default_factory=dict)

    def add(self, stream: str, version: int, error: float) -> None:
        self.sums[stream] = self.sums.get(stream, 0.0) + error
        self.counts[stream] = self.counts.get(stream, 0) + 1
        self.versions.setdefault(stream, set()).add(version)

    def on_version(self, version: int) -> tuple[float, int] | None:
        """Mean error per output of the streams that ran wholly on `version`, and how many."""
        streams = [s for s, versions in self.versions.items() if versions == {version}]
        outputs = sum(self.counts[s] for s in streams)
        return (sum(self.sums[s] for s in streams) / outputs, len(streams)) if outputs else None

    def spanning(self) -> int:
        """Streams that ran on more than one version."""
        return sum(len(versions) > 1 for versions in self.versions.values())

    def all_versions(self) -> list[int]:
        return sorted({v for versions in self.versions.values() for v in versions})


class LiveView:
    """See the module docstring. `run` until `stop`; the counts are read by the summary."""

    def __init__(self, settings: Settings, console: Console, registry: NeuronRegistry) -> None:
        self.settings = settings
        self.console = console
        self.teacher = InterpreterMachines(zoo.load("duplicate-detector", registry), registry)
        self.rows: dict[str, Row] = {}
        self.tally = Tally()
        self.swaps: list[Swap] = []
        self.dead_letters: list[str] = []
        self.outputs = 0
        self._published_ms: dict[int, int] = {}
        self._live: Live | None = None

    async def run(self, stop: asyncio.Event) -> None:
        topics = self.settings.topics
        consumer = make_consumer(self.settings, group_id=None, isolation_level="read_committed")
        await consumer.start()
        consumer.subscribe([topics.output, topics.control, topics.control_acks, topics.dlq])
        live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False)
        try:
            if self.console.is_terminal:
                self._live = live
                live.start()
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=200)
                for tp, records in batch.items():
                    for record in records:
                        self._handle(tp.topic, record)
                if self._live is not None:
                    self._live.update(self._render())
        finally:
            if self._live is not None:
                self._live.update(self._render())
                self._live.stop()
                self._live = None
            await consumer.stop()

    def _handle(self, topic: str, record: ConsumerRecord[bytes, bytes]) -> None:
        topics = self.settings.topics
        key, value, timestamp = record.key, record.value, record.timestamp
        if topic == topics.output:
            self._output(value)
        elif topic == topics.control:
            _, version = peek_update(key, value)
            if version is not None:
                self._published_ms.setdefault(version, timestamp)
        elif topic == topics.control_acks:
            self._ack(value, timestamp)
        elif topic == topics.dlq:
            reason = header_map(record.headers).get("dmm.error.reason", "?")
            self.dead_letters.append(reason)
            self._say(f"dead letter: reason={reason} key={(key or b'').decode('utf-8', 'replace')}")

    def _output(self, value: bytes | None) -> None:
        try:
            record = decode_output(value or b"")
        except BadValueError:
            return
        self.outputs += 1
        (expected,) = self.teacher.step([(record.stream, one_hot(str(record.input)))])
        got = _numbers(record)
        want = tuple(vvalue.get_number(expected[name]) for name in NAMES)
        error = sum((g - w) ** 2 for g, w in zip(got, want, strict=True)) / 2
        self.tally.add(record.stream, record.model_version, error)
        channel = record.stream.split("/", 1)[0]
        row = self.rows.get(channel)
        if row is None or row.stream != record.stream:
            row = self.rows[channel] = Row(record.stream)
        row.text += str(record.input)
        row.outputs, row.expected, row.version = got, (want[0], want[1]), record.model_version
        if record.input == "." and self._live is None:
            self._say(_line(row))

    def _ack(self, value: bytes | None, timestamp: int) -> None:
        ack = decode_ack(value)
        if ack is None or ack.version is None:
            return
        if ack.status == "rejected":
            self._say(f"update v{ack.version} rejected by {ack.worker}: {ack.reason}")
            return
        published = self._published_ms.get(ack.version)
        latency = None if published is None else float(timestamp - published)
        swap = Swap(ack.version, ack.worker, latency, dict(ack.applied_at_offsets))
        self.swaps.append(swap)
        self._say(describe_swap(swap))

    def _say(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def _render(self) -> Group:
        table = Table(title="dmm-stream demo: live outputs (one row per chat channel)")
        for column in ("channel", "stream", "text so far", "left", "right", "teacher", "model"):
            table.add_column(column)
        for channel, row in sorted(self.rows.items()):
            table.add_row(
                channel, row.stream, repr(row.text), f"{row.outputs[0]:.2f}",
                f"{row.outputs[1]:.2f}", f"{row.expected[0]:g} / {row.expected[1]:g}",
                f"v{row.version}",
            )  # fmt: skip
        errors = ", ".join(
            f"v{v}: {score[0]:.3g} ({score[1]} streams)"
            for v in self.tally.all_versions()
            if (score := self.tally.on_version(v)) is not None
        )
        status = Text(
            f"outputs {self.outputs}  swaps {len(self.swaps)}  dead letters "
            f"{len(self.dead_letters)}  error vs teacher: {errors or '-'}"
        )
        return Group(table, status)


def _numbers(record: OutputRecord) -> tuple[float, float]:
    left, right = (
        vvalue.get_number(vvalue.from_jsonable(record.outputs[name], name)) for name in NAMES
    )
    return left, right


def _line(row: Row) -> str:
    return (
        f"{row.stream:<11} {row.text!r:<28} left={row.outputs[0]:5.2f} right={row.outputs[1]:5.2f}"
        f"  teacher {row.expected[0]:g}/{row.expected[1]:g}  v{row.version}"
    )


def describe_swap(swap: Swap) -> str:
    """One line: version, worker, publish→applied latency, the boundary offsets."""
    offsets = " ".join(f"{p}:{o}" for p, o in sorted(swap.offsets.items())) or "-"
    latency = (
        "" if swap.latency_ms is None else f", {swap.latency_ms:.0f} ms after it was published"
    )
    return (
        f"*** hot swap: model v{swap.version} applied by {swap.worker}{latency}; "
        f"input offsets from which it runs: {offsets}"
    )
