"""The worker's telemetry on a real registry and a real HTTP port, fed real batch results.

What the worker loop calls (`delivered`, `polled`, `restored`, `revoked`, ...) is checked
through what a scraper sees on ``/metrics`` and ``/readyz``; `dmm worker` with a busy port
fails with one line naming the variables.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from aiokafka.structs import ConsumerRecord
from prometheus_client.parser import text_string_to_metric_families

from dmm_engine import NeuronRegistry, zoo
from dmm_engine.streams import InterpreterMachines
from service.batch import process_batch, state_sizes, to_messages
from service.control import AckStatus
from service.dlq import REASONS
from service.settings import LimitSettings, TopicSettings, load_settings
from service.state import StreamState
from service.worker_telemetry import WorkerTelemetry

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def telemetry() -> Iterator[WorkerTelemetry]:
    running = WorkerTelemetry.serve(load_settings({"metrics.host": "127.0.0.1", "metrics.port": 0}))
    try:
        yield running
    finally:
        running.server.stop()


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


def scrape(telemetry: WorkerTelemetry) -> Samples:
    """Every sample of ``/metrics`` as ``{(name, labels): value}``."""
    status, text = _get(telemetry.server.port, "/metrics")
    assert status == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def record(offset: int, key: bytes | None, data: bytes, timestamp_ms: int) -> ConsumerRecord:
    return ConsumerRecord("in", 0, offset, timestamp_ms, 0, key, data, None, 1, len(data), ())


def test_a_delivered_batch_updates_every_batch_metric(
    telemetry: WorkerTelemetry, registry: NeuronRegistry
) -> None:
    sent_ms = int(time.time() * 1000) - 2_000  # produced two seconds before the ack
    records = [
        record(0, b"s", b"a", sent_ms),
        record(1, b"s", b"b", sent_ms),
        record(2, b"t", b"a", sent_ms),
        record(3, None, b"a", sent_ms),  # missing-key
        record(4, b"t", b"\xff", sent_ms),  # invalid-utf8
        record(5, b"u", b"a", sent_ms),  # replayed: u applied offset 5 already
    ]
    states = {"u": StreamState(seq=3, last_offset=5, partition=0, model_version=1)}
    machines = InterpreterMachines(zoo.load("duplicate-detector", registry), registry)
    result = process_batch(machines, states, records, limits=LimitSettings(), model_version=1)
    messages = to_messages(result, TopicSettings())
    acked_at_s = time.time()

    telemetry.delivered(result, acked_at_s, streams=3)
    telemetry.set_state_sizes(state_sizes(result, messages))
    samples = scrape(telemetry)

    outcomes = {o: value(samples, "dmm_messages_total", outcome=o) for o in ("applied", "skipped")}
    assert outcomes == {"applied": 3.0, "skipped": 1.0}
    assert value(samples, "dmm_messages_total", outcome="dead_lettered") == 2.0
    assert value(samples, "dmm_dlq_total", reason="missing-key") == 1.0
    assert value(samples, "dmm_dlq_total", reason="invalid-utf8") == 1.0
    assert {value(samples, "dmm_dlq_total", reason=r) for r in REASONS} == {0.0, 1.0}
    assert value(samples, "dmm_ticks_total") == result.rounds == 2
    assert value(samples, "dmm_batch_size_count") == 1.0
    assert value(samples, "dmm_batch_size_sum") == 6.0
    assert value(samples, "dmm_tick_seconds_count") == 2.0
    assert value(samples, "dmm_tick_seconds_sum") == pytest.approx(sum(result.tick_seconds))
    assert value(samples, "dmm_end_to_end_seconds_count") == 3.0  # the applied records only
    expected_s = 3 * (acked_at_s - sent_ms / 1000)
    assert value(samples, "dmm_end_to_end_seconds_sum") == pytest.approx(expected_s, abs=1e-6)
    assert value(samples, "dmm_end_to_end_seconds_bucket", le="1.0") == 0.0
    assert value(samples, "dmm_end_to_end_seconds_bucket", le="2.5") == 3.0
    assert value(samples, "dmm_streams_active") == 3.0
    state_messages = [m for m in messages if m.topic == "dmm.state"]
    assert value(samples, "dmm_state_bytes") == sum(len(m.value or b"") for m in state_messages)


def test_a_producer_clock_ahead_counts_as_zero_latency(
    telemetry: WorkerTelemetry, registry: NeuronRegistry
) -> None:
    ahead_ms = int(time.time() * 1000) + 60_000
    machines = InterpreterMachines(zoo.load("duplicate-detector", registry), registry)
    records = [record(0, b"s", b"a", ahead_ms)]
    result = process_batch(machines, {}, records, limits=LimitSettings(), model_version=1)
    telemetry.delivered(result, time.time(), streams=1)
    samples = scrape(telemetry)
    assert value(samples, "dmm_end_to_end_seconds_sum") == 0.0
    assert value(samples, "dmm_end_to_end_seconds_bucket", le="0.001") == 1.0


def test_state_bytes_follow_each_streams_latest_state_and_revocations(
    telemetry: WorkerTelemetry,
) -> None:
    telemetry.set_state_sizes({"a": 10, "b": 20})
    telemetry.set_state_sizes({"a": 15})  # a's newer state replaces its older one
    assert value(scrape(telemetry), "dmm_state_bytes") == 35.0
    telemetry.revoked(["b", "never-seen"], owned={1}, streams=1)
    samples = scrape(telemetry)
    assert value(samples, "dmm_state_bytes") == 15.0
    assert value(samples, "dmm_streams_active") == 1.0


def test_lag_and_model_version_after_each_fetch_and_revoked_partitions_dropped(
    telemetry: WorkerTelemetry,
) -> None:
    telemetry.polled(3, {0: 5, 1: 7})
    samples = scrape(telemetry)
    assert value(samples, "dmm_model_version") == 3.0
    assert value(samples, "dmm_consumer_lag", partition="0") == 5.0
    assert value(samples, "dmm_consumer_lag", partition="1") == 7.0

    telemetry.revoked([], owned={1}, streams=0)
    lags = {k: v for k, v in scrape(telemetry).items() if k[0] == "dmm_consumer_lag"}
    assert lags == {("dmm_consumer_lag", frozenset({("partition", "1")})): 7.0}


def test_swaps_are_counted_by_status(telemetry: WorkerTelemetry) -> None:
    statuses: tuple[AckStatus, ...] = ("applied", "applied", "rejected")
    for status in statuses:
        telemetry.count_swap(status)
    samples = scrape(telemetry)
    assert value(samples, "dmm_swaps_total", status="applied") == 2.0
    assert value(samples, "dmm_swaps_total", status="rejected") == 1.0


def test_readiness_follows_the_replay_and_the_rebalances(telemetry: WorkerTelemetry) -> None:
    port = telemetry.server.port
    assert _get(port, "/readyz") == (
        503,
        "not ready: missing partitions_assigned, state_restored, model_loaded\n",
    )
    telemetry.loaded(2)
    assert value(scrape(telemetry), "dmm_model_version") == 2.0
    telemetry.restoring()
    assert _get(port, "/readyz")[1] == "not ready: missing partitions_assigned, state_restored\n"
    telemetry.restored({}, owned={0, 2}, streams=0)
    assert _get(port, "/readyz")[0] == 200

    telemetry.revoked([], owned={2}, streams=0)  # still owns a partition: still ready
    assert _get(port, "/readyz")[0] == 200
    telemetry.revoked([], owned=set(), streams=0)
    assert _get(port, "/readyz") == (503, "not ready: missing partitions_assigned\n")
    telemetry.restoring()  # the next assignment is being restored
    assert "state_restored" in _get(port, "/readyz")[1]
    telemetry.restored({}, owned=set(), streams=0)  # assigned nothing: an idle member
    assert _get(port, "/readyz") == (503, "not ready: missing partitions_assigned\n")
    assert _get(port, "/healthz")[0] == 200


def test_a_busy_metrics_port_fails_dmm_worker_with_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {
            "PATH": "/usr/bin:/bin",
            "DMM_METRICS_HOST": "127.0.0.1",
            "DMM_METRICS_PORT": str(port),
            "DMM_KAFKA_BOOTSTRAP": "127.0.0.1:9",  # never reached: the port fails first
        }
        done = subprocess.run(
            [sys.executable, "-m", "service.cli", "worker"],
            capture_output=True, text=True, timeout=120, check=False, env=env,
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"dmm: error: cannot serve /metrics on 127.0.0.1:{port} ")
    assert "(DMM_METRICS_HOST, DMM_METRICS_PORT): [Errno" in last
    assert "Address already in use" in last
