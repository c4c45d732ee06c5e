"""`dmm demo`: the whole mission on one machine, start to end, and everything cleaned up.

1. A local Kafka broker in a private run directory (`service.kafka_local`; the first run
   fetches its jars with Maven).
2. A worker (`dmm worker`) that starts on a *degraded* machine — the zoo's
   synthesized-general with one output link scaled by 0.6, as if a matrix had drifted — and a
   trainer (`dmm trainer`) against the handcrafted teacher, both as child processes exactly
   as deployed, with /metrics on free local ports.
3. Chat channels type short sentences at a human pace (`service.demo.feed`); the live view
   shows each channel's outputs beside the teacher's (`service.demo.view`).
4. The trainer samples the text, retrains, and hot-swaps the repaired matrix into the
   running worker through Self; the view shows the swap and the error dropping. If the trainer
   has not published by the deadline, the demo publishes the zoo's machine itself and says so.
5. A summary (messages, throughput, swap latency, error before and after, dead letters), then
   every child process and the broker are stopped and the run directory removed. Ctrl-C at
   any point goes straight to that clean-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from dmm_engine import Network, default_registry, save_model, zoo
from service import kafka_local
from service.demo.feed import FeedCounts, feed
from service.demo.view import LiveView
from service.errors import ServiceError
from service.publish import swap_to_model
from service.settings import Settings, child_environment, load_settings
from service.shutdown import stop_on_signals
from service.topics import ensure_topics

DEGRADED_LINK = ("output", "dict-1", "compare-4-2", "false")
DEGRADATION = 0.6
READY_TIMEOUT_S = 120.0
DRAIN_TIMEOUT_S = 20.0


class DemoError(ServiceError):
    """The demo could not run to its end (a child process failed, or nothing was swapped)."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """How long and how much (the `dmm demo` flags)."""

    channels: int = 4
    chars_per_s: float = 12.0
    after_swap_s: float = 12.0
    swap_deadline_s: float = 60.0
    max_s: float = 120.0
    run_dir: Path | None = None
    keep: bool = False


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """What the demo showed (printed at the end; tests read it)."""

    messages: int
    outputs: int
    streams: int
    seconds: float
    swap_version: int | None
    swap_latency_ms: float | None
    swapped_by: str
    errors: dict[int, tuple[float, int]]
    spanning: int
    swaps: int
    dead_letters: list[str]
    interrupted: bool

    @property
    def ok(self) -> bool:
        """The demo showed what it promises: outputs, a completed swap, a smaller error."""
        return self.swap_version is not None and self.outputs > 0 and not self.interrupted


def run_demo(base: Settings, options: DemoOptions, console: Console) -> DemoSummary:
    """Run the demo (blocking); see the module docstring.

    Raises:
        DemoError: a child process failed or did not become ready (its log's tail is quoted).
        LocalBrokerError: the broker could not be fetched or started.
    """
    run_dir = options.run_dir or Path(tempfile.mkdtemp(prefix="dmm-demo-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    console.print(f"dmm demo: run directory {run_dir}")
    try:
        console.print("starting a local Kafka broker (the first run fetches its jars with Maven)")
        broker = kafka_local.start(run_dir / "kafka", base.cache_dir)
        console.print(f"broker ready: bootstrap={broker.bootstrap}")
        settings = demo_settings(base, broker.bootstrap, degraded_model(run_dir))
        with children(settings, run_dir, console) as ports:
            return asyncio.run(_stream(settings, options, console, ports))
    finally:
        kafka_local.stop(run_dir / "kafka")
        if options.keep:
            console.print(f"kept {run_dir} (logs of the worker and the trainer are there)")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)


def degraded_network() -> Network:
    """The zoo's synthesized-general machine with one output link scaled by 0.6 (a drift)."""
    network = zoo.load("synthesized-general", default_registry())
    matrix = copy.deepcopy(network.matrix)
    to, to_input, source, output = DEGRADED_LINK
    matrix[to][to_input][source][output] *= DEGRADATION
    return dataclasses.replace(network, matrix=matrix)


def degraded_model(run_dir: Path) -> Path:
    """`degraded_network` as a model file in `run_dir`."""
    path = run_dir / "degraded-synthesized-general.json"
    save_model(degraded_network(), path)
    return path


def demo_settings(base: Settings, bootstrap: str, model: Path) -> Settings:
    """The demo's settings: its broker, the degraded model, a trainer that runs often."""
    return load_settings(
        {
            "kafka.bootstrap": bootstrap,
            "kafka.unavailable_timeout_s": 30.0,
            "topics.partitions": 4,
            "worker.model": str(model),
            "worker.id": "demo-worker",
            "worker.session_timeout_ms": 6000,
            "metrics.host": "127.0.0.1",
            "trainer.interval_s": 4.0,
            "trainer.min_streams": 8,
            "trainer.start_from": "earliest",
            "trainer.session_timeout_ms": 6000,
            "cache_dir": str(base.cache_dir),
        }
    )


@contextlib.contextmanager
def children(settings: Settings, run_dir: Path, console: Console) -> Iterator[dict[str, int]]:
    """A worker and a trainer process, ready; both stopped (SIGTERM, then SIGKILL) on exit."""
    ports = {"worker": _free_port(), "trainer": _free_port()}
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, port in ports.items():
            processes[name] = _spawn(name, settings, port, run_dir)
        for name, port in ports.items():
            _wait_ready(name, processes[name], port, run_dir)
            console.print(f"{name} ready: metrics at http://127.0.0.1:{port}/metrics")
        yield ports
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        for name, process in processes.items():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                console.print(f"{name} did not stop within 30 s and was killed")


def _spawn(name: str, settings: Settings, port: int, run_dir: Path) -> subprocess.Popen[bytes]:
    own = settings.model_copy(
        update={"metrics": settings.metrics.model_copy(update={"port": port})}
    )
    env = child_environment(own)
    with (run_dir / f"{name}.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", name], env=env, stdout=log, stderr=log
        )
    (run_dir / f"{name}.pid").write_text(f"{process.pid}\n", encoding="utf-8")
    return process


def _wait_ready(name: str, process: subprocess.Popen[bytes], port: int, run_dir: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoError(
                f"the {name} exited with code {process.returncode}: {_tail(run_dir, name)}"
            )
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise DemoError(f"the {name} was not ready after {READY_TIMEOUT_S:g}s: {_tail(run_dir, name)}")


def _tail(run_dir: Path, name: str, lines: int = 8) -> str:
    log = run_dir / f"{name}.log"
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    return " | ".join(text.strip().splitlines()[-lines:]) or "(empty log)"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _stream(
    settings: Settings, options: DemoOptions, console: Console, ports: dict[str, int]
) -> DemoSummary:
    await ensure_topics(settings)
    stop_feed, stop_view, interrupted = asyncio.Event(), asyncio.Event(), asyncio.Event()
    counts = FeedCounts()
    view = LiveView(settings, console, default_registry())
    started = time.monotonic()
    swapped_by = "the trainer"
    with stop_on_signals(interrupted):
        viewer = asyncio.create_task(view.run(stop_view), name="live view")
        feeder = asyncio.create_task(
            feed(settings, options.channels, options.chars_per_s, stop_feed, counts), name="feed"
        )
        swap_seen_at = None
        while not interrupted.is_set():
            for task in (viewer, feeder):
                if task.done() and task.exception() is not None:
                    stop_feed.set()
                    stop_view.set()
                    raise DemoError(f"the demo's {task.get_name()} failed: {task.exception()!r}")
            elapsed = time.monotonic() - started
            if view.swaps and swap_seen_at is None:
                swap_seen_at = time.monotonic()
            if swap_seen_at is not None and time.monotonic() - swap_seen_at >= options.after_swap_s:
                break
            if elapsed >= options.max_s:
                break
            if swap_seen_at is None and elapsed >= options.swap_deadline_s and swapped_by != "demo":
                swapped_by = "demo"
                console.print(
                    "the trainer has not published yet: the demo swaps the zoo machine in"
                )
                registry = default_registry()
                await swap_to_model(settings, zoo.load("synthesized-general", registry), registry)
            await asyncio.sleep(0.2)
        stop_feed.set()
        await feeder
        deadline = time.monotonic() + (0.0 if interrupted.is_set() else DRAIN_TIMEOUT_S)
        while view.outputs < counts.messages and time.monotonic() < deadline:
            await asyncio.sleep(0.2)  # let the last outputs arrive
        stop_view.set()
        await viewer
    seconds = time.monotonic() - started
    first = view.swaps[0] if view.swaps else None
    versions = view.tally.all_versions()
    return DemoSummary(
        messages=counts.messages,
        outputs=view.outputs,
        streams=len(counts.texts),
        seconds=seconds,
        swap_version=first.version if first else None,
        swap_latency_ms=first.latency_ms if first else None,
        swapped_by=swapped_by,
        errors={v: score for v in versions if (score := view.tally.on_version(v)) is not None},
        spanning=view.tally.spanning(),
        swaps=len(view.swaps),
        dead_letters=view.dead_letters,
        interrupted=interrupted.is_set(),
    )


def describe(summary: DemoSummary) -> list[str]:
    """The summary's lines."""
    rate = summary.messages / summary.seconds if summary.seconds else 0.0
    lines = [
        f"summary: {summary.messages} messages on {summary.streams} streams in "
        f"{summary.seconds:.1f} s ({rate:.0f} msg/s), {summary.outputs} outputs",
    ]
    if summary.swap_version is not None:
        latency = (
            "" if summary.swap_latency_ms is None
            else f", applied {summary.swap_latency_ms:.0f} ms after publication"
        )  # fmt: skip
        more = f" ({summary.swaps} swaps in all)" if summary.swaps > 1 else ""
        lines.append(f"hot swap: v{summary.swap_version} by {summary.swapped_by}{latency}{more}")
    else:
        lines.append("hot swap: none happened")
    if summary.errors:
        per_version = ", ".join(
            f"v{v} {error:.3g} ({count} streams)" for v, (error, count) in summary.errors.items()
        )
        lines.append(
            "error vs the handcrafted teacher (mean squared, per output) on the streams that ran "
            f"wholly on one version: {per_version}; {summary.spanning} streams were in flight "
            "across a swap"
        )
    reasons = ", ".join(sorted(set(summary.dead_letters))) or "-"
    lines.append(f"dead letters: {len(summary.dead_letters)} ({reasons})")
    if summary.interrupted:
        lines.append("interrupted: stopped early and cleaned up")
    return lines
