"""The small HTTP port of a worker or trainer: ``/metrics``, ``/healthz``, ``/readyz``.

A stdlib `ThreadingHTTPServer` in a daemon thread, so it keeps answering while the asyncio loop
is busy with a batch, and a stuck loop shows as a stale heartbeat instead of a hung probe.

- ``/metrics``: the exposition of the registry passed in (text or OpenMetrics, as the scraper's
  ``Accept`` header asks).
- ``/healthz`` (liveness): 200 while the owner's loop called `HealthState.beat` within
  ``stale_after_s``; 503 naming the age of the last beat otherwise, so Kubernetes restarts it.
- ``/readyz`` (readiness): 200 once every required flag is set (by default partitions
  assigned, state restored, model loaded); 503 naming the missing flags otherwise.

Example:
    >>> from prometheus_client import CollectorRegistry
    >>> health = HealthState()
    >>> with HealthServer(CollectorRegistry(), health, host="127.0.0.1", port=0) as server:
    ...     health.set_flag("model_loaded")
    ...     server.port > 0
    True
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from service.errors import MetricsPortError
from service.settings import MetricsSettings

logger = logging.getLogger(__name__)

WORKER_READINESS: tuple[str, ...] = ("partitions_assigned", "state_restored", "model_loaded")
"""What a worker needs before it takes traffic: partitions, their restored state, a model."""

DEFAULT_STALE_AFTER_S = 30.0


class HealthState:
    """Liveness heartbeat and readiness flags, shared between the owner and the HTTP thread.

    Args:
        required: readiness flags that must all be set for ``/readyz`` to answer 200.
        stale_after_s: ``/healthz`` fails when the last `beat` is older than this (seconds).
            Creating the state counts as the first beat.
        clock: monotonic seconds; tests pass their own.

    Raises:
        ValueError: `required` is empty or `stale_after_s` is not positive.
    """

    def __init__(
        self,
        required: Iterable[str] = WORKER_READINESS,
        *,
        stale_after_s: float = DEFAULT_STALE_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.required = tuple(required)
        if not self.required:
            raise ValueError("HealthState(required=()): name at least one readiness flag")
        if not stale_after_s > 0:
            raise ValueError(f"HealthState(stale_after_s={stale_after_s!r}): must be > 0 seconds")
        self.stale_after_s = stale_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last_beat = clock()
        self._flags = dict.fromkeys(self.required, False)

    def beat(self) -> None:
        """Record that the owner's loop is alive (call it once per loop iteration)."""
        now = self._clock()
        with self._lock:
            self._last_beat = now

    def set_flag(self, flag: str, value: bool = True) -> None:
        """Set (or clear, e.g. on partition revocation) one readiness flag.

        Raises:
            KeyError: `flag` is not one of `required`; the message lists them.
        """
        if flag not in self._flags:
            raise KeyError(f"readiness flag {flag!r} is not one of {', '.join(self.required)}")
        with self._lock:
            self._flags[flag] = value

    def liveness(self) -> tuple[bool, str]:
        """``(alive, reason)``: alive while the last beat is at most ``stale_after_s`` old."""
        with self._lock:
            age = self._clock() - self._last_beat
        if age > self.stale_after_s:
            return False, f"stale: last heartbeat {age:.1f} s ago (limit {self.stale_after_s} s)"
        return True, f"ok: last heartbeat {age:.1f} s ago"

    def missing(self) -> list[str]:
        """Readiness flags not set yet, in the order of `required` (empty = ready)."""
        with self._lock:
            return [flag for flag in self.required if not self._flags[flag]]


class HealthServer:
    """Serves ``/metrics``, ``/healthz`` and ``/readyz`` from a background thread.

    Args:
        registry: the registry ``/metrics`` exposes.
        health: the heartbeat and flags ``/healthz`` and ``/readyz`` report.
        host: address to bind: ``0.0.0.0`` (or ``::``) in a pod, ``127.0.0.1`` in tests.
        port: TCP port; 0 picks a free one (see `port` after `start`).

    Use as a context manager, or call `start` and `stop`.

    Raises:
        OSError: from `start`, when the address cannot be bound (e.g. port in use).
    """

    def __init__(
        self, registry: CollectorRegistry, health: HealthState, *, host: str, port: int
    ) -> None:
        self.registry = registry
        self.health = health
        self.host = host
        self.requested_port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the free one picked when constructed with ``port=0``)."""
        if self._server is None:
            raise RuntimeError("HealthServer.port: the server is not started")
        return int(self._server.server_address[1])

    def start(self) -> int:
        """Bind and start serving; returns the bound port."""
        if self._server is not None:
            raise RuntimeError("HealthServer.start: already started")
        server_class = _IPv6Server if ":" in self.host else _Server
        server = server_class((self.host, self.requested_port), _Handler)
        server.owner = self
        self._server = server
        # stop() waits up to one poll interval for serve_forever to notice the shutdown.
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"health-http-{self.port}",
            daemon=True,
        )
        self._thread.start()
        logger.info("metrics listening host=%s port=%d", self.host, self.port)
        return self.port

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> HealthServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def serve_health(
    registry: CollectorRegistry, health: HealthState, settings: MetricsSettings
) -> HealthServer:
    """Start a `HealthServer` on ``DMM_METRICS_HOST``:``DMM_METRICS_PORT`` (logs the bound port).

    Raises:
        MetricsPortError: the address cannot be bound; the message names both variables and
            the OS error, e.g. ``[Errno 98] Address already in use``.
    """
    server = HealthServer(registry, health, host=settings.host, port=settings.port)
    try:
        server.start()
    except OSError as exc:
        raise MetricsPortError(
            f"cannot serve /metrics on {settings.host}:{settings.port} "
            f"(DMM_METRICS_HOST, DMM_METRICS_PORT): {exc}"
        ) from exc
    return server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: HealthServer


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._reply(200, encoder(owner.registry), content_type)
        elif path == "/healthz":
            alive, reason = owner.health.liveness()
            self._reply(200 if alive else 503, reason)
        elif path == "/readyz":
            missing = owner.health.missing()
            if missing:
                self._reply(503, "not ready: missing " + ", ".join(missing))
            else:
                self._reply(200, "ready: " + ", ".join(owner.health.required))
        else:
            self._reply(404, f"no such path {path!r}: try /metrics, /healthz or /readyz")

    def _reply(self, status: int, body: bytes | str, content_type: str | None = None) -> None:
        data = body if isinstance(body, bytes) else (body + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type or "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        # Probes arrive every few seconds: keep them out of the service log unless debugging.
        logger.debug("health http %s " + format, self.client_address[0], *args)
