"""Service throughput on one broker, side by side: raw aiokafka, a Faust agent, the dmm worker.

All three read the same pre-loaded messages (one character each, 1000 streams as keys, 8
partitions) and write one output per input, with the same batch settings (at most 500 records
per fetch, 5 ms producer linger, acks=all, offsets committed every batch of up to 500):

1. raw: an in-process aiokafka loop, ``getmany`` -> ``send`` -> ``commit``, passing each
   message through unchanged;
2. faust: a faust-streaming no-op agent that forwards each message unchanged, run as a
   ``faust.Worker`` in a subprocess (this file with ``--faust-agent``);
3. worker: ``dmm worker`` (`service.worker.run_worker`: compiled engine, duplicate detector)
   as a subprocess, exactly as deployed.

Rates are read from the broker, not from the clients: every output topic stamps its records
with the broker's append time (LogAppendTime), and a rate is the middle 90 % of the outputs
over their time span, which leaves out start-up, group join and the last partial batch. Then a
paced producer offers the still-running worker half its measured rate; latency is an input's
timestamp (set at send) to its output's append time. The cores each process used in each
phase, and the machine's idle cores, are recorded too: on a shared 2-core machine they say how
much CPU the side under test actually had. Writes bench/results/service.json and prints one
summary line.

    python bench/service.py [--quick] [--bootstrap 127.0.0.1:PORT]
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path and this file would shadow the
# `service` package: look packages up from the repository root first.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from service import kafka_local
from service.clients import make_consumer, make_producer
from service.codec import decode_output, encode_key
from service.settings import Settings, child_environment, load_settings
from service.topics import TopicSpec, ensure_topics, topic_specs

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "service.json"
STREAMS = 1000
PARTITIONS = 8
BATCH_MAX_RECORDS = 500
LINGER_MS = 5
FETCH_TIMEOUT_MS = 200
PRELOAD_WINDOW = 10_000  # sends in flight while pre-loading
# The paced producer sends what is due every tick: 1 ms ticks cost it a third more CPU than
# 5 ms on this 2-core machine, CPU the worker under test then lacks.
PACING_TICK_S = 0.005
LOG_APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}
LOG_APPEND_TIME_TYPE = 1  # ConsumerRecord.timestamp_type of a broker-stamped record
TEXT = (
    "Breaking: Kafka cluster #3 reports 12 partitions lagging; operators paged at 04:10 UTC. "
    "Why did the consumer group rebalance twice? Nobody knows yet, but logs show a GC pause "
    "of 7.5 s on broker-2. Update (04:25): the lag is shrinking, throughput back to 80k msg/s! "
)


class PhaseError(RuntimeError):
    """A measurement did not complete (a process died, or outputs did not arrive in time)."""


@dataclass(frozen=True, slots=True)
class Run:
    """One benchmark run: the broker, names unique to the run, sizes, and where logs go."""

    bootstrap: str
    tag: str
    messages: int
    latency_s: float
    log_dir: Path
    broker_pid: int | None  # None for an external broker

    def pids(self, **children: int) -> dict[str, int]:
        """Processes to meter: this one, the local broker and `children` by name."""
        broker = {} if self.broker_pid is None else {"broker": self.broker_pid}
        return {"bench": os.getpid(), **broker, **children}

    @property
    def phase_timeout_s(self) -> float:
        """How long one side may take over the pre-loaded messages (at >= 500 msg/s)."""
        return 30.0 + self.messages / 500

    def settings(self, side: str) -> Settings:
        """Service settings with topics and group of one side (``raw``, ``faust``, ``worker``)."""
        name = f"bench-{self.tag}-{side}"
        given: dict[str, Any] = {
            "kafka.bootstrap": self.bootstrap,
            "kafka.client_id": name,
            "topics.partitions": PARTITIONS,
            "worker.group": f"{name}-group",
            "worker.id": name,
            "worker.model": "duplicate-detector",
            "worker.engine": "compiled",
            "worker.guarantee": "at-least-once",
            "worker.batch_max_records": BATCH_MAX_RECORDS,
            "worker.linger_ms": LINGER_MS,
            "worker.fetch_timeout_ms": FETCH_TIMEOUT_MS,
            "metrics.host": "127.0.0.1",
            "metrics.port": 0,
        }
        for topic in ("input", "output", "state", "control", "control_acks", "dlq"):
            given[f"topics.{topic}"] = f"{name}-{topic.replace('_', '-')}"
        return load_settings(given)


def symbols(first: int, count: int) -> list[tuple[bytes, bytes]]:
    """Messages ``first`` .. ``first + count - 1``: round-robin over the streams, one char each."""
    out = []
    for index in range(first, first + count):
        stream, position = index % STREAMS, index // STREAMS
        char = TEXT[(37 * stream + position) % len(TEXT)]
        out.append((encode_key(f"stream-{stream:04d}"), char.encode("utf-8")))
    return out


async def create_topics(bootstrap: str, specs: Sequence[TopicSpec]) -> None:
    """Create `specs` and wait until the broker's metadata shows their partitions.

    A topic just created can describe with no partitions for a moment (`ensure_topics` would
    then see the co-partitioned topics differ), hence the wait.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        new = [NewTopic(s.name, s.partitions, 1, topic_configs=dict(s.config)) for s in specs]
        response = await admin.create_topics(new)
        failed = [f"{name}: {text} (code {code})" for name, code, text in response.topic_errors]
        if any(code for _, code, _ in response.topic_errors):
            raise PhaseError(f"cannot create the benchmark topics: {'; '.join(failed)}")
        deadline = time.monotonic() + 20.0
        while True:
            described = await admin.describe_topics([spec.name for spec in specs])
            counts = {d["topic"]: len(d["partitions"]) for d in described}
            if all(counts.get(spec.name) == spec.partitions for spec in specs):
                return
            if time.monotonic() > deadline:
                raise PhaseError(f"topics not ready after 20s: partitions {counts}")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def preload(
    bootstrap: str, topics: Sequence[str], load: Sequence[tuple[bytes, bytes]]
) -> None:
    """Send `load` to each of `topics`, in order, and wait for every acknowledgement."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=LINGER_MS)
    await producer.start()
    try:
        for topic in topics:
            for start in range(0, len(load), PRELOAD_WINDOW):
                window = load[start : start + PRELOAD_WINDOW]
                await asyncio.gather(*[await producer.send(topic, v, key=k) for k, v in window])
    finally:
        await producer.stop()


async def wait_for_outputs(
    bootstrap: str,
    topic: str,
    total: int,
    timeout_s: float,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Wait until `topic` holds `total` records; fail if `process` exits or time runs out."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    deadline = time.monotonic() + timeout_s
    try:
        while (done := sum((await consumer.end_offsets(partitions)).values())) < total:
            if process is not None and process.poll() is not None:
                code = process.returncode
                raise PhaseError(f"the process exited (code {code}) at {done}/{total} outputs")
            if time.monotonic() > deadline:
                raise PhaseError(f"{topic}: {done} of {total} outputs after {timeout_s:g}s")
            await asyncio.sleep(0.25)
    finally:
        await consumer.stop()


async def read_outputs(
    bootstrap: str, topic: str, count: int
) -> list[ConsumerRecord[bytes, bytes]]:
    """The first `count` records of `topic`, all partitions."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + 60.0
        while len(records) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            records += [record for rs in batch.values() for record in rs]
    finally:
        await consumer.stop()
    if len(records) < count:
        raise PhaseError(f"{topic}: read {len(records)} of {count} outputs in 60s")
    return records


def steady_rate(records: Sequence[ConsumerRecord[bytes, bytes]]) -> float:
    """Outputs per second over the middle 90 % of `records` by broker append time."""
    if any(r.timestamp_type != LOG_APPEND_TIME_TYPE for r in records):
        raise PhaseError("output records are not stamped with LogAppendTime")
    times = sorted(r.timestamp for r in records)
    first, last = len(times) // 20, len(times) - 1 - len(times) // 20
    span_s = (times[last] - times[first]) / 1000
    if span_s <= 0:
        raise PhaseError(f"{len(times)} outputs span no measurable time: use more messages")
    return (last - first) / span_s


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each of `pids`, the machine's idle seconds, and the time.

    Linux ``/proc``; a process or file that cannot be read is left out.
    """
    hertz = os.sysconf("SC_CLK_TCK")
    snapshot = {"wall": time.monotonic()}
    try:
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        snapshot["machine_idle"] = (ticks[3] + ticks[4]) / hertz  # idle + iowait, all cores
        for name, pid in pids.items():
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            snapshot[name] = (int(fields[11]) + int(fields[12])) / hertz  # utime + stime
    except (OSError, IndexError, ValueError):
        pass
    return snapshot


def cores_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Average cores each process used between two snapshots (``machine_idle``: idle cores)."""
    wall = after["wall"] - before["wall"]
    names = [name for name in before if name in after and name != "wall"]
    return {name: round((after[name] - before[name]) / wall, 2) for name in names}


async def raw_pass_through(settings: Settings, count: int, timeout_s: float) -> int:
    """The baseline: batched ``getmany`` -> ``send`` -> ``commit``, as the worker's shell does."""
    consumer = make_consumer(
        settings, group_id=settings.worker.group, isolation_level="read_uncommitted"
    )
    producer = make_producer(settings)  # the worker's producer: acks=all, idempotent, linger
    await producer.start()
    await consumer.start()
    consumer.subscribe([settings.topics.input])
    passed, deadline = 0, time.monotonic() + timeout_s
    try:
        while passed < count and time.monotonic() < deadline:
            batch = await consumer.getmany(
                timeout_ms=FETCH_TIMEOUT_MS, max_records=min(BATCH_MAX_RECORDS, count - passed)
            )
            records = [record for rs in batch.values() for record in rs]
            if not records:
                continue
            output = settings.topics.output
            await asyncio.gather(
                *[await producer.send(output, r.value, key=r.key) for r in records]
            )
            await consumer.commit({tp: rs[-1].offset + 1 for tp, rs in batch.items() if rs})
            passed += len(records)
    finally:
        await consumer.stop()
        await producer.stop()
    return passed


def faust_agent(config: dict[str, Any]) -> None:
    """The Faust side, run in its own process: a no-op agent forwarding input to output."""
    import faust  # only this child process loads Faust

    app = faust.App(
        config["app_id"],
        broker=f"kafka://{config['bootstrap']}",
        store="memory://",
        web_enabled=False,
        topic_partitions=PARTITIONS,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        broker_max_poll_records=BATCH_MAX_RECORDS,
        broker_commit_every=BATCH_MAX_RECORDS,
        producer_linger=LINGER_MS / 1000,
        producer_acks=-1,
        key_serializer="raw",
        value_serializer="raw",
    )
    source = app.topic(config["input"], partitions=PARTITIONS)
    sink = app.topic(config["output"], partitions=PARTITIONS)

    async def forward(stream: Any) -> None:
        async for key, value in stream.items():
            await sink.send(key=key, value=value)

    app.agent(source, name="forward")(forward)
    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


def spawn(
    command: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start `command` from the repository root with stdout and stderr in `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> int:
    """SIGTERM `process` (graceful for Faust and the worker), SIGKILL it after `timeout_s`."""
    if process.poll() is None:
        process.terminate()
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def log_tail(path: Path, lines: int = 8) -> str:
    """The last `lines` lines of `path` (cursor-control escapes dropped), for error messages."""
    text = path.read_text(errors="replace").replace("\x1b[?25l", "").replace("\x1b[?25h", "")
    return " | ".join(line for line in text.splitlines()[-lines:] if line.strip())


async def pass_pre_loaded(
    run: Run, topic: str, process: subprocess.Popen[bytes], name: str
) -> tuple[float, dict[str, float]]:
    """Wait for `process` to pass the pre-loaded messages to `topic`: rate and cores used.

    The cores are metered from its first output on (start-up and group join left out).
    """
    await wait_for_outputs(run.bootstrap, topic, 1, run.phase_timeout_s, process)
    before = cpu_snapshot(run.pids(**{name: process.pid}))
    await wait_for_outputs(run.bootstrap, topic, run.messages, run.phase_timeout_s, process)
    cpu = cores_used(before, cpu_snapshot(run.pids(**{name: process.pid})))
    return steady_rate(await read_outputs(run.bootstrap, topic, run.messages)), cpu


async def faust_phase(run: Run, settings: Settings) -> dict[str, Any]:
    """The Faust agent's rate and cores, or the reason it could not be measured."""
    log = run.log_dir / "faust.log"
    config = {
        "app_id": settings.worker.group,
        "bootstrap": run.bootstrap,
        "input": settings.topics.input,
        "output": settings.topics.output,
    }
    command = [sys.executable, str(Path(__file__).resolve()), "--faust-agent", json.dumps(config)]
    process = spawn(command, log)
    try:
        rate, cpu = await pass_pre_loaded(run, config["output"], process, "faust")
    except PhaseError as exc:
        return {"error": f"Faust agent failed: {exc}; last lines of its log: {log_tail(log)}"}
    finally:
        await asyncio.to_thread(stop_process, process)
    return {"msgs_per_s": rate, "cpu": cpu}


def worker_env(settings: Settings) -> dict[str, str]:
    """This environment without ``DMM_*``, plus the variables that make up `settings`."""
    return child_environment(settings)


async def paced_produce(
    bootstrap: str, topic: str, load: Sequence[tuple[bytes, bytes]], rate: float
) -> tuple[dict[tuple[str, int], int], float]:
    """Send `load` at `rate` msg/s; returns each message's timestamp by (stream, offset), and
    the rate achieved. No linger: a message leaves when it is due."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    pending = []
    try:
        started, sent = time.monotonic(), 0
        while sent < len(load):
            due = min(len(load), int((time.monotonic() - started) * rate) + 1)
            for key, value in load[sent:due]:
                stamp = int(time.time() * 1000)
                future = await producer.send(topic, value, key=key, timestamp_ms=stamp)
                pending.append((key.decode(), stamp, future))
            sent = due
            await asyncio.sleep(PACING_TICK_S)
        achieved = len(load) / (time.monotonic() - started)
        acks = await asyncio.gather(*[future for _, _, future in pending])
    finally:
        await producer.stop()
    stamps = {(key, ack.offset): stamp for (key, stamp, _), ack in zip(pending, acks, strict=True)}
    return stamps, achieved


async def latency_phase(
    run: Run, settings: Settings, rate: float, process: subprocess.Popen[bytes]
) -> dict[str, Any]:
    """Offer the running worker `rate` msg/s for ``run.latency_s``; latency percentiles in ms."""
    output = settings.topics.output
    load = symbols(run.messages, max(100, round(rate * run.latency_s)))
    before = cpu_snapshot(run.pids(worker=process.pid))
    stamps, achieved = await paced_produce(run.bootstrap, settings.topics.input, load, rate)
    await wait_for_outputs(run.bootstrap, output, run.messages + len(load), 60.0, process)
    cpu = cores_used(before, cpu_snapshot(run.pids(worker=process.pid)))
    latencies = []
    for record in await read_outputs(run.bootstrap, output, run.messages + len(load)):
        out = decode_output(record.value or b"")
        sent = stamps.get((out.stream, out.offset))  # None: an output of the pre-loaded input
        if sent is not None:
            latencies.append(record.timestamp - sent)
    if len(latencies) != len(load):
        raise PhaseError(f"{len(latencies)} outputs for {len(load)} paced messages")
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "p50_ms": cuts[49],
        "p99_ms": cuts[98],
        "max_ms": max(latencies),
        "messages": len(latencies),
        "achieved_load_msgs_per_s": achieved,
        "latency_cpu": cpu,
    }


async def worker_phase(run: Run, settings: Settings) -> dict[str, Any]:
    """`dmm worker` on the pre-loaded input (max rate), then at half that rate (latency)."""
    log = run.log_dir / "worker.log"
    limit_s = 3 * run.phase_timeout_s  # a safety net: the worker is stopped with SIGTERM
    command = [sys.executable, "-m", "service.cli", "worker", "--timeout", f"{limit_s:g}"]
    process = spawn(command, log, worker_env(settings))
    try:
        try:
            rate, cpu = await pass_pre_loaded(run, settings.topics.output, process, "worker")
        except PhaseError as exc:
            raise PhaseError(f"dmm worker: {exc}; last lines of {log}: {log_tail(log)}") from None
        latency = await latency_phase(run, settings, rate / 2, process)
    finally:
        code = await asyncio.to_thread(stop_process, process)
    report = next((x for x in log.read_text().splitlines() if x.startswith("worker:")), "")
    return {"msgs_per_s": rate, "cpu": cpu, "exit_code": code, "report": report, **latency}


async def prepare(run: Run, raw: Settings, faust: Settings, worker: Settings) -> None:
    """Create every side's topics and pre-load each input with the same messages."""
    # Outputs are stamped by the broker; the worker's topics are those it would create itself.
    stamped = {raw.topics.output, faust.topics.output, worker.topics.output}
    specs = [TopicSpec(raw.topics.input, PARTITIONS), TopicSpec(faust.topics.input, PARTITIONS)]
    specs += [TopicSpec(raw.topics.output, PARTITIONS), TopicSpec(faust.topics.output, PARTITIONS)]
    specs += topic_specs(worker)
    specs = [
        replace(s, config={**s.config, **LOG_APPEND_TIME}) if s.name in stamped else s
        for s in specs
    ]
    await create_topics(run.bootstrap, specs)
    await ensure_topics(worker)  # checks them as the worker will
    load = symbols(0, run.messages)
    await preload(run.bootstrap, [s.topics.input for s in (raw, faust, worker)], load)


async def measure(run: Run) -> tuple[dict[str, Any], dict[str, Any]]:
    """All three sides on the same broker, one after the other; (results, details)."""
    raw, faust, worker = (run.settings(side) for side in ("raw", "faust", "worker"))
    await prepare(run, raw, faust, worker)
    before = cpu_snapshot(run.pids())
    passed = await raw_pass_through(raw, run.messages, run.phase_timeout_s)
    raw_cpu = cores_used(before, cpu_snapshot(run.pids()))  # group join included: idle time
    if passed < run.messages:
        limit_s = run.phase_timeout_s
        raise PhaseError(f"raw pass-through: {passed} of {run.messages} messages in {limit_s:g}s")
    raw_rate = steady_rate(await read_outputs(run.bootstrap, raw.topics.output, run.messages))
    fst = await faust_phase(run, faust)
    dmm = await worker_phase(run, worker)
    results = {
        "raw_msgs_per_s": round(raw_rate),
        "faust_msgs_per_s": round(fst["msgs_per_s"]) if "msgs_per_s" in fst else None,
        "worker_msgs_per_s": round(dmm["msgs_per_s"]),
        "worker_over_raw": round(dmm["msgs_per_s"] / raw_rate, 3),
        "p50_ms": round(dmm["p50_ms"], 1),
        "p99_ms": round(dmm["p99_ms"], 1),
        "offered_msgs_per_s": round(dmm["msgs_per_s"] / 2),
    }
    if "error" in fst:
        results["faust_error"] = fst["error"]
    details = {
        "cpu_cores": {
            "raw": raw_cpu,
            "faust": fst.get("cpu"),
            "worker": dmm["cpu"],
            "worker_latency": dmm["latency_cpu"],
        },
        "worker_max_latency_ms": dmm["max_ms"],
        "latency_messages": dmm["messages"],
        "achieved_load_msgs_per_s": round(dmm["achieved_load_msgs_per_s"]),
        "worker_report": dmm["report"],
        "worker_exit_code": dmm["exit_code"],
    }
    return results, details


def loopback_bootstrap(value: str) -> str:
    """`value` if every ``host:port`` in it is on this machine (argparse type)."""
    for part in value.split(","):
        host = part.rpartition(":")[0].strip("[]")
        try:
            local = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = False
        if not local:
            raise argparse.ArgumentTypeError(
                f"{part!r}: the benchmark only talks to a broker on this machine "
                "(127.0.0.0/8, localhost or ::1)"
            )
    return value


def version(package: str) -> str | None:
    """The installed version of `package`, None if it is not installed."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def git(*args: str) -> str:
    done = subprocess.run(
        ["git", "--no-optional-locks", *args], capture_output=True, text=True, check=False, cwd=ROOT
    )
    return done.stdout.strip()


def parameters(run: Run, external: bool, quick: bool) -> dict[str, Any]:
    worker = run.settings("worker").worker
    return {
        "messages": run.messages,
        "streams": STREAMS,
        "partitions": PARTITIONS,
        "batch_max_records": BATCH_MAX_RECORDS,
        "producer_linger_ms": LINGER_MS,
        "fetch_timeout_ms": FETCH_TIMEOUT_MS,
        "acks": "all",
        "commit": "after every batch (raw, worker); every 500 records (faust)",
        "worker": {
            "model": worker.model,
            "engine": worker.engine,
            "engine_threads": worker.engine_threads,
            "guarantee": worker.guarantee,
            "run_as": "python -m service.cli worker (subprocess)",
        },
        "faust_run_as": "faust.Worker in a subprocess; agent forwards each message to an output "
        "topic (await topic.send); memory store, web off",
        "rate_method": "outputs over the middle 90% of their broker LogAppendTime span",
        "latency_method": "input CreateTime (set at send) to output LogAppendTime; paced "
        f"producer, linger 0, sending what is due every {PACING_TICK_S * 1000:g} ms",
        "latency_seconds": run.latency_s,
        "broker": "external" if external else f"local Kafka {kafka_local.kafka_version()}",
        "quick": quick,
    }


def machine(load_before: tuple[float, float, float]) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_1m_before": round(load_before[0], 2),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
        "aiokafka": version("aiokafka"),
        "faust-streaming": version("faust-streaming"),
        "torch": version("torch"),
    }


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Start the broker (unless given), measure, stop it; the record to write."""
    load_before = os.getloadavg()
    work_dir = Path(tempfile.mkdtemp(prefix="dmm-bench-service-"))
    broker_dir = work_dir / "kafka"
    try:
        bootstrap, broker_pid = args.bootstrap, None
        if bootstrap is None:
            broker = kafka_local.start(broker_dir, load_settings().cache_dir)
            bootstrap, broker_pid = broker.bootstrap, broker.pid
        run = Run(
            bootstrap,
            uuid.uuid4().hex[:8],
            messages=20_000 if args.quick else 100_000,
            latency_s=6.0 if args.quick else 20.0,
            log_dir=work_dir,
            broker_pid=broker_pid,
        )
        results, details = asyncio.run(measure(run))
    except BaseException:
        print(f"bench/service.py failed; logs kept in {work_dir}", file=sys.stderr)
        raise
    finally:
        kafka_local.stop(broker_dir)
    shutil.rmtree(work_dir, ignore_errors=True)
    return {
        "benchmark": "service",
        "results": results,
        "details": details,
        "parameters": parameters(run, args.bootstrap is not None, args.quick),
        "machine": machine(load_before),
        "git_commit": git("rev-parse", "HEAD"),
        # uncommitted changes to tracked files: the numbers are of the working tree, not the commit
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="20,000 messages, 6 s of latency (under 120 s)"
    )
    parser.add_argument(
        "--bootstrap",
        type=loopback_bootstrap,
        help="a running broker on this machine. Default: start a private local broker.",
    )
    parser.add_argument("--faust-agent", help=argparse.SUPPRESS)  # the Faust child process
    args = parser.parse_args()
    if args.faust_agent:
        faust_agent(json.loads(args.faust_agent))
        return
    # On a fresh broker, first requests meet a partition leader or group coordinator not ready
    # yet; aiokafka retries them and logs each retry, noise here (a real failure still ends
    # the run: every wait is bounded and raises PhaseError)
    logging.getLogger("aiokafka.producer.sender").setLevel(logging.CRITICAL)
    logging.getLogger("aiokafka.consumer.group_coordinator").setLevel(logging.CRITICAL)
    record = run_benchmark(args)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    results = record["results"]
    faust = results["faust_msgs_per_s"]
    print(
        f"service: raw {results['raw_msgs_per_s']:,} msg/s, "
        f"faust {'failed' if faust is None else f'{faust:,}'} msg/s, "
        f"worker {results['worker_msgs_per_s']:,} msg/s "
        f"({results['worker_over_raw']:.2f}x raw); worker p50 {results['p50_ms']} ms "
        f"p99 {results['p99_ms']} ms at {results['offered_msgs_per_s']:,} msg/s "
        f"offered -> {RESULTS.relative_to(ROOT)}"
    )


if __name__ == "__main__":
    main()
