"""Health server: real HTTP requests to /metrics, /healthz, /readyz on 127.0.0.1."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from service.errors import MetricsPortError
from service.health import WORKER_READINESS, HealthServer, HealthState, serve_health
from service.metrics import worker_metrics
from service.settings import MetricsSettings


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _get(port: int, path: str, accept: str | None = None) -> tuple[int, str, str]:
    """(status, content type, body) of GET http://127.0.0.1:port/path, errors included."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if accept:
        request.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["Content-Type"], error.read().decode()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def health(clock: FakeClock) -> HealthState:
    return HealthState(stale_after_s=30.0, clock=clock)


@pytest.fixture
def server(registry: CollectorRegistry, health: HealthState) -> Iterator[HealthServer]:
    with HealthServer(registry, health, host="127.0.0.1", port=0) as running:
        yield running


def test_port_zero_binds_a_free_port_and_returns_it(
    registry: CollectorRegistry, health: HealthState
) -> None:
    server = HealthServer(registry, health, host="127.0.0.1", port=0)
    port = server.start()
    try:
        assert port == server.port and port > 0
        assert _get(port, "/healthz")[0] == 200
    finally:
        server.stop()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 1):
        pass


def test_an_explicit_port_is_used(registry: CollectorRegistry, health: HealthState) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    with HealthServer(registry, health, host="127.0.0.1", port=free) as server:
        assert server.port == free
        assert _get(free, "/healthz")[0] == 200


def test_a_busy_port_fails_to_start(server: HealthServer, health: HealthState) -> None:
    other = HealthServer(CollectorRegistry(), health, host="127.0.0.1", port=server.port)
    with pytest.raises(OSError):
        other.start()


def test_serve_health_names_the_variables_and_the_os_error(
    server: HealthServer, health: HealthState, caplog: pytest.LogCaptureFixture
) -> None:
    busy = MetricsSettings(host="127.0.0.1", port=server.port)
    with pytest.raises(MetricsPortError) as raised:
        serve_health(CollectorRegistry(), health, busy)
    message = str(raised.value)
    assert message.startswith(f"cannot serve /metrics on 127.0.0.1:{server.port} ")
    assert "(DMM_METRICS_HOST, DMM_METRICS_PORT): [Errno" in message
    assert isinstance(raised.value.__cause__, OSError)

    caplog.set_level("INFO", logger="service.health")
    started = serve_health(CollectorRegistry(), health, MetricsSettings(host="127.0.0.1", port=0))
    try:
        assert f"metrics listening host=127.0.0.1 port={started.port}" in caplog.messages
        assert _get(started.port, "/healthz")[0] == 200
    finally:
        started.stop()


def test_metrics_serves_the_given_registry(
    server: HealthServer, registry: CollectorRegistry
) -> None:
    metrics = worker_metrics(registry)
    metrics.messages.labels(outcome="applied").inc(3)
    metrics.model_version.set(4)

    status, content_type, body = _get(server.port, "/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    assert 'dmm_messages_total{outcome="applied"} 3.0' in body
    assert "dmm_model_version 4.0" in body
    assert "python_gc_objects_collected_total" not in body  # not the global registry


def test_metrics_speaks_openmetrics_when_asked(
    server: HealthServer, registry: CollectorRegistry
) -> None:
    worker_metrics(registry).ticks.inc()
    status, content_type, body = _get(
        server.port, "/metrics", accept="application/openmetrics-text; version=1.0.0"
    )
    assert status == 200 and content_type.startswith("application/openmetrics-text")
    assert "dmm_ticks_total 1.0" in body and body.endswith("# EOF\n")


def test_healthz_is_ok_while_the_loop_beats(
    server: HealthServer, health: HealthState, clock: FakeClock
) -> None:
    clock.now += 29.0
    assert _get(server.port, "/healthz")[0] == 200
    health.beat()
    clock.now += 29.0
    status, _, body = _get(server.port, "/healthz")
    assert status == 200 and body.startswith("ok")


def test_healthz_fails_when_the_heartbeat_is_stale(
    server: HealthServer, health: HealthState, clock: FakeClock
) -> None:
    clock.now += 31.0
    status, _, body = _get(server.port, "/healthz")
    assert status == 503
    assert "stale: last heartbeat 31.0 s ago (limit 30.0 s)" in body
    health.beat()
    assert _get(server.port, "/healthz")[0] == 200


def test_readyz_names_the_missing_flags_until_all_are_set(
    server: HealthServer, health: HealthState
) -> None:
    status, _, body = _get(server.port, "/readyz")
    assert status == 503
    assert body.strip() == "not ready: missing partitions_assigned, state_restored, model_loaded"

    health.set_flag("model_loaded")
    health.set_flag("partitions_assigned")
    status, _, body = _get(server.port, "/readyz")
    assert (status, body.strip()) == (503, "not ready: missing state_restored")

    health.set_flag("state_restored")
    status, _, body = _get(server.port, "/readyz")
    assert status == 200 and body.startswith("ready")

    # a rebalance revokes the partitions: not ready again until they are restored
    health.set_flag("partitions_assigned", False)
    assert _get(server.port, "/readyz")[0] == 503


def test_unknown_flags_and_paths_are_named(server: HealthServer, health: HealthState) -> None:
    with pytest.raises(KeyError, match="'model_ready' is not one of partitions_assigned"):
        health.set_flag("model_ready")
    status, _, body = _get(server.port, "/nope")
    assert status == 404 and "/metrics, /healthz or /readyz" in body


def test_custom_readiness_flags_for_the_trainer(registry: CollectorRegistry) -> None:
    health = HealthState(required=("model_loaded",))
    with HealthServer(registry, health, host="127.0.0.1", port=0) as server:
        assert _get(server.port, "/readyz")[0] == 503
        health.set_flag("model_loaded")
        assert _get(server.port, "/readyz")[0] == 200


def test_invalid_health_state_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="at least one readiness flag"):
        HealthState(required=())
    with pytest.raises(ValueError, match=r"stale_after_s=0\): must be > 0"):
        HealthState(stale_after_s=0)
    assert HealthState().required == WORKER_READINESS


def test_stop_is_idempotent_and_port_needs_a_running_server(
    registry: CollectorRegistry, health: HealthState
) -> None:
    server = HealthServer(registry, health, host="127.0.0.1", port=0)
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port
    server.start()
    with pytest.raises(RuntimeError, match="already started"):
        server.start()
    server.stop()
    server.stop()
