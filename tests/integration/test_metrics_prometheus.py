"""A real Prometheus scrapes a real `dmm worker` process while input flows.

The worker binds a free metrics port (``DMM_METRICS_PORT=0``) and logs it; Prometheus
(the binary `.ci/install-tools` puts in ``$DMM_CACHE_DIR/tools/bin``, else on PATH) scrapes it
every second and loads deploy/prometheus/rules.yml. The test waits until Prometheus computes a
positive input rate, checks the probes, that every worker series the dashboard queries has a
sample in the running worker's ``/metrics``, and that hot swaps and dead letters are counted.
Without a prometheus binary the test skips with the reason, except under CI, where it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from service.publish import publish_update
from service.settings import Settings
from tests.helpers import missing_under_ci
from tests.integration.fixtures_worker import (
    ROOT,
    dmm_process,
    produce,
    run_async,
    stop_process,
    unique_settings,
)
from tests.unit.service.swap_cases import MODEL, NORM2_DELTA, NORM2_NEURONS
from tests.unit.service.test_dashboard import dashboard_series_missing_from

RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
RATE_QUERY = 'sum(rate(dmm_messages_total{outcome="applied"}[30s]))'
RATE_LIMIT_S = 90.0
START_LIMIT_S = 90.0  # the worker process imports torch and loads the model first
PORT_LINE = re.compile(r"metrics listening host=127\.0\.0\.1 port=(\d+)")


def prometheus_binary() -> str:
    """The prometheus server binary; skips (fails under CI) when there is none."""
    cache = os.environ.get("DMM_CACHE_DIR", "").strip() or "~/.cache/dmm-stream"
    installed = Path(cache).expanduser() / "tools" / "bin" / "prometheus"
    if installed.is_file():
        return str(installed)
    found = shutil.which("prometheus")
    if found is None:
        missing_under_ci(
            f"no prometheus binary in {installed.parent} or on PATH: run .ci/install-tools"
        )
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_get(url: str) -> tuple[int, str]:
    """(status, body) of a GET, HTTP errors included; status 0 while nothing listens."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()
    except OSError as error:
        return 0, repr(error)


def tail(path: Path, lines: int = 25) -> str:
    text = path.read_text(errors="replace") if path.exists() else "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def poll(check: Callable[[], Any], timeout_s: float, failure: Callable[[], str]) -> Any:
    """Call `check` until it returns something truthy; fail with `failure()` after the limit."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"after {timeout_s:g} s: {failure()}", pytrace=False)
        time.sleep(0.25)


def samples(exposition: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


class Run:
    """The processes of one test and their logs, for failure messages."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.worker_log = tmp_path / "worker.log"
        self.prometheus_log = tmp_path / "prometheus.log"
        self.processes: list[subprocess.Popen[bytes]] = []

    def logs(self) -> str:
        return (
            f"\n--- worker log (last lines) ---\n{tail(self.worker_log)}"
            f"\n--- prometheus log (last lines) ---\n{tail(self.prometheus_log)}"
        )

    def start_prometheus(self, target_port: int) -> int:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [
                {
                    "job_name": "dmm-worker",
                    "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}],
                }
            ],
        }
        config_file = self.tmp_path / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        port = free_port()
        command = [
            prometheus_binary(),
            f"--config.file={config_file}",
            f"--storage.tsdb.path={self.tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        with self.prometheus_log.open("ab") as log:
            self.processes.append(
                subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp_path)
            )
        return port

    def start(self, *args: str, settings: Settings) -> subprocess.Popen[bytes]:
        process = dmm_process(
            *args, settings=settings, log=self.worker_log, stdout=subprocess.DEVNULL
        )
        self.processes.append(process)
        return process


@contextmanager
def processes(tmp_path: Path) -> Iterator[Run]:
    run = Run(tmp_path)
    try:
        yield run
    finally:
        for process in reversed(run.processes):
            if process.poll() is None:
                process.kill()
            process.wait(30)


def query(prometheus_port: int, expr: str) -> tuple[float | None, str]:
    """(the instant vector's single value or None, the raw API answer)."""
    url = f"http://127.0.0.1:{prometheus_port}/api/v1/query?" + urllib.parse.urlencode(
        {"query": expr}
    )
    status, body = http_get(url)
    if status != 200:
        return None, f"HTTP {status}: {body[:500]}"
    result = json.loads(body)["data"]["result"]
    return (float(result[0]["value"][1]) if result else None), body[:500]


def test_prometheus_scrapes_a_running_worker_and_sees_its_input_rate(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prometheus_binary()  # skips (fails under CI) before any process starts
    settings = unique_settings(kafka_bootstrap)  # metrics on 127.0.0.1, port 0 (any free one)
    text_file = tmp_path / "input.txt"
    text_file.write_text("test string. " * 1000)  # 13000 symbols: more than the test needs
    with processes(tmp_path) as run:
        worker = run.start("worker", settings=settings)
        port = int(
            poll(
                lambda: PORT_LINE.search(run.worker_log.read_text(errors="replace")),
                START_LIMIT_S,
                lambda: "the worker logged no 'metrics listening' line" + run.logs(),
            ).group(1)
        )
        base = f"http://127.0.0.1:{port}"
        assert http_get(f"{base}/healthz")[0] == 200, run.logs()
        prometheus_port = run.start_prometheus(port)
        run.start("produce", "--key", "s1", "--rate", "100", "--input", str(text_file),
                  settings=settings)  # fmt: skip
        run_async(produce(settings, [(None, b"x")]))  # no key: one dead letter (missing-key)

        ready = poll(
            lambda: http_get(f"{base}/readyz")[0] == 200,
            START_LIMIT_S,
            lambda: f"/readyz answered {http_get(f'{base}/readyz')}" + run.logs(),
        )
        assert ready

        answers: list[str] = []

        def rate_is_positive() -> float | None:
            value, answer = query(prometheus_port, RATE_QUERY)
            answers.append(answer)
            return value if value is not None and value > 0 else None

        rate = poll(
            rate_is_positive,
            RATE_LIMIT_S,
            lambda: (
                f"Prometheus never saw {RATE_QUERY} > 0; last API answer: "
                f"{answers[-1] if answers else None}" + run.logs()
            ),
        )
        print(f"Prometheus: {RATE_QUERY} = {rate:.2f} records/s")  # shown with pytest -s
        assert 0 < rate < 1000

        exposition = http_get(f"{base}/metrics")[1]
        missing = dashboard_series_missing_from(exposition, "worker")
        assert not missing, f"dashboard series with no sample on a running worker: {missing}"
        _assert_counts(samples(exposition), settings)
        _assert_swaps_are_counted(settings, base, run)
        _assert_rules_loaded(prometheus_port)
        later, _ = query(prometheus_port, RATE_QUERY)
        print(f"Prometheus, after the swaps: {RATE_QUERY} = {later} records/s (100 produced)")

        code, _, _ = stop_process(worker)
        assert code == 0, run.logs()


def _assert_counts(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], settings: Settings
) -> None:
    def value(name: str, **labels: str) -> float:
        return found[(name, frozenset(labels.items()))]

    # the loop updates metrics while this scrape reads them: exact sums are the unit tests' job
    assert value("dmm_messages_total", outcome="applied") > 0
    assert value("dmm_end_to_end_seconds_count") > 0
    assert value("dmm_ticks_total") > 0 and value("dmm_tick_seconds_count") > 0
    assert value("dmm_batch_size_count") > 0
    assert value("dmm_streams_active") >= 1 and value("dmm_state_bytes") > 0
    assert value("dmm_model_version") == 1
    lag_partitions = {
        dict(labels)["partition"] for name, labels in found if name == "dmm_consumer_lag"
    }
    assert lag_partitions == {str(p) for p in range(settings.topics.partitions)}


def _assert_swaps_are_counted(settings: Settings, base: str, run: Run) -> None:
    """One update applied (v2), then the same version again: rejected as stale."""
    run_async(publish_update(settings, model=MODEL, delta=NORM2_DELTA, neurons=NORM2_NEURONS))

    def swaps() -> dict[str, float]:
        found = samples(http_get(f"{base}/metrics")[1])
        return {
            status: found[("dmm_swaps_total", frozenset({("status", status)}))]
            for status in ("applied", "rejected")
        } | {"version": found[("dmm_model_version", frozenset())]}

    poll(
        lambda: swaps() == {"applied": 1.0, "rejected": 0.0, "version": 2.0},
        60,
        lambda: f"swaps after publishing v2: {swaps()}" + run.logs(),
    )
    run_async(
        publish_update(
            settings, model=MODEL, delta=NORM2_DELTA, neurons=NORM2_NEURONS,
            version=2, base_version=1,
        )
    )  # fmt: skip
    poll(
        lambda: swaps() == {"applied": 1.0, "rejected": 1.0, "version": 2.0},
        60,
        lambda: f"swaps after publishing a stale v2: {swaps()}" + run.logs(),
    )
    found = samples(http_get(f"{base}/metrics")[1])
    assert found[("dmm_dlq_total", frozenset({("reason", "missing-key")}))] == 1.0


def _assert_rules_loaded(prometheus_port: int) -> None:
    """Prometheus loaded and evaluates deploy/prometheus/rules.yml without errors."""
    status, body = http_get(f"http://127.0.0.1:{prometheus_port}/api/v1/rules")
    assert status == 200, body
    rules = [rule for group in json.loads(body)["data"]["groups"] for rule in group["rules"]]
    declared = yaml.safe_load(RULES.read_text())["groups"]
    assert len(rules) == sum(len(group["rules"]) for group in declared)
    assert all(rule["health"] in ("ok", "unknown") for rule in rules), rules
