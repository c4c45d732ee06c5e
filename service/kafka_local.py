"""Run a local single-node Apache Kafka 4.x broker (KRaft) from Maven Central jars.

Used by the integration tests, the demo and ``dmm kafka start|stop|status``. Standard library
only. The jars are fetched once with Maven (``deploy/kafka/pom.xml``) into a cache directory
outside the git clone; each broker lives in its own run directory::

    run_dir/server.properties  log4j2.properties  broker.log  broker.pid  bootstrap  data/

Example:
    >>> info = start(Path("/tmp/dmm-kafka"), Path.home() / ".cache" / "dmm-stream")
    >>> info.bootstrap
    '127.0.0.1:40213'
    >>> stop(info.run_dir)
    True
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import logging
import os
import re
import shutil
import signal
import socket
import string
import struct
import subprocess
import time
import uuid
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

from service.errors import ServiceError

logger = logging.getLogger(__name__)

DEPLOY_DIR = Path(__file__).resolve().parents[1] / "deploy" / "kafka"
PID_FILE = "broker.pid"
BOOTSTRAP_FILE = "bootstrap"
LOG_FILE = "broker.log"
MARKER_FILE = ".complete"
READY_LINE = b"Kafka Server started"
# SerialGC: no extra GC threads on 2 cores; C1 only: faster start-up, lower peak throughput.
JVM_OPTIONS = (
    "-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
)  # fmt: skip
MSG_NOT_A_CHECKOUT = (
    "{path} not found: service.kafka_local needs the dmm-stream source tree "
    "(pip install -e . from a git clone), not a wheel install"
)


class LocalBrokerError(ServiceError):
    """The local Kafka broker could not be fetched, started or stopped."""


class ToolMissingError(LocalBrokerError):
    """``java`` or ``mvn`` is not on PATH."""


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    """A running local broker.

    Attributes:
        bootstrap: ``host:port`` of the PLAINTEXT listener, for ``bootstrap_servers``.
        pid: process id of the broker JVM (also its process group id).
        run_dir: the directory holding its config, data and log.
        log_file: the broker's stdout/stderr.
    """

    bootstrap: str
    pid: int
    run_dir: Path
    log_file: Path


def kafka_version() -> str:
    """The ``kafka.version`` property of ``deploy/kafka/pom.xml``, e.g. ``"4.4.0"``."""
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ElementTree.parse(_deploy_file("pom.xml")).getroot()
    version = root.findtext("m:properties/m:kafka.version", namespaces=namespace)
    if not version:
        raise LocalBrokerError(f"{DEPLOY_DIR / 'pom.xml'}: no <kafka.version> in <properties>")
    return version.strip()


def fetch_jars(cache_dir: Path) -> Path:
    """Copy the broker's runtime jars into ``cache_dir/kafka-<version>/libs`` once.

    Skipped when the directory is complete for the current pom (a marker file holds the
    pom's sha256). Maven's own cache (``~/.m2``) makes a re-fetch cheap too.

    Raises:
        ToolMissingError: ``mvn`` is not on PATH.
        LocalBrokerError: Maven failed (its output is in the message).
    """
    pom = _deploy_file("pom.xml")
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    libs = cache_dir / f"kafka-{kafka_version()}" / "libs"
    if _jars_complete(libs, digest):
        return libs
    mvn = _require_tool("mvn", "install Maven 3.6.3+ (e.g. apt-get install maven)")
    staging = libs.with_name(f"libs.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    logger.info("fetching Kafka jars with Maven into %s", libs)
    started = time.monotonic()
    command = [mvn, "-B", "-q", "-f", str(pom), "dependency:copy-dependencies"]
    result = subprocess.run(
        [*command, f"-Dkafka.libs.dir={staging}"],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    if result.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
        output = _tail_lines(re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr), 25)
        raise LocalBrokerError(
            f"'{' '.join(command)}' failed (exit {result.returncode}); Maven Central must be "
            f"reachable the first time (later runs use ~/.m2):\n{output}"
        )
    (staging / MARKER_FILE).write_text(digest + "\n")
    if not _jars_complete(libs, digest):  # else another process finished first
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
    shutil.rmtree(staging, ignore_errors=True)
    logger.info("fetched Kafka jars in %.1fs", time.monotonic() - started)
    return libs


def status(run_dir: Path) -> BrokerInfo | None:
    """The broker recorded in ``run_dir`` if it is running and answers requests, else None."""
    run_dir = run_dir.resolve()
    pid = _read_pid(run_dir)
    bootstrap_file = run_dir / BOOTSTRAP_FILE
    if pid is None or not bootstrap_file.is_file() or not _is_running(pid, run_dir):
        return None
    bootstrap = bootstrap_file.read_text().strip()
    host, _, port = bootstrap.rpartition(":")
    if not port.isdigit() or not _answers(host, int(port), timeout_s=5.0):
        return None
    return BrokerInfo(bootstrap, pid, run_dir, run_dir / LOG_FILE)


def start(
    run_dir: Path, cache_dir: Path, *, host: str = "127.0.0.1", timeout_s: float = 90.0
) -> BrokerInfo:
    """Start a single-node broker in ``run_dir``, or return the one already running there.

    Formats ``run_dir/data`` on first use and keeps it (and, when still free, the ports)
    across stop/start. The broker runs in its own session and outlives this process.

    Args:
        run_dir: directory for config, data, log and pid file; created if missing.
        cache_dir: jar cache, e.g. ``~/.cache/dmm-stream`` (see `fetch_jars`).
        host: IPv4 address or host name to listen on and advertise.
        timeout_s: how long to wait for the broker to serve requests.

    Raises:
        ToolMissingError: ``java`` or ``mvn`` is not on PATH.
        LocalBrokerError: the broker exited or was not ready in time (log tail included).
    """
    if host in ("", "0.0.0.0", "::") or ":" in host:
        raise LocalBrokerError(
            f"host={host!r}: must be an IPv4 address or host name that clients can connect "
            "to (Kafka rejects advertising a wildcard address), e.g. '127.0.0.1'"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    run_dir = run_dir.resolve()
    with (run_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one start() per run_dir at a time
        running = status(run_dir)
        if running is not None:
            logger.info("Kafka broker already running bootstrap=%s", running.bootstrap)
            return running
        if stop(run_dir):
            logger.warning("stopped a broker in %s that did not answer requests", run_dir)
        return _launch(run_dir, cache_dir, host, timeout_s)


def stop(run_dir: Path, *, timeout_s: float = 30.0) -> bool:
    """Stop the broker recorded in ``run_dir`` (SIGTERM, then SIGKILL after ``timeout_s``).

    Returns:
        True if a running broker was stopped, False if none was running. Data is kept.
    """
    run_dir = run_dir.resolve()
    pid = _read_pid(run_dir)
    running = pid is not None and _is_running(pid, run_dir)
    if pid is not None and running:
        logger.info("stopping Kafka broker pid=%s run_dir=%s", pid, run_dir)
        os.kill(pid, signal.SIGTERM)  # clean shutdown through the JVM's shutdown hook
        if not _wait_exit(pid, run_dir, timeout_s):
            logger.warning("Kafka broker pid=%s ignored SIGTERM; killing it", pid)
            os.kill(pid, signal.SIGKILL)
            _wait_exit(pid, run_dir, 10.0)
    for name in (PID_FILE, BOOTSTRAP_FILE):
        (run_dir / name).unlink(missing_ok=True)
    return running


def _launch(run_dir: Path, cache_dir: Path, host: str, timeout_s: float) -> BrokerInfo:
    java = _require_tool("java", "install a JDK 17+ (e.g. apt-get install openjdk-17-jdk-headless)")
    libs = fetch_jars(cache_dir)
    broker_port, controller_port = _choose_ports(run_dir, host)
    config = _write_config(run_dir, host, broker_port, controller_port)
    shutil.copyfile(_deploy_file("log4j2.properties"), run_dir / "log4j2.properties")
    command = [
        java, *JVM_OPTIONS, f"-Dlog4j2.configurationFile={run_dir / 'log4j2.properties'}",
        "-cp", f"{libs}/*",
    ]  # fmt: skip
    if not (run_dir / "data" / "meta.properties").is_file():
        _format_storage(command, config)
    log_file = run_dir / LOG_FILE
    started = time.monotonic()
    pid = os.posix_spawn(
        java,
        [*command, "kafka.Kafka", str(config)],
        os.environ,  # inherited as by any subprocess, not read as configuration
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log_file), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,  # own session and process group: Ctrl-C in the caller does not reach it
    )
    (run_dir / PID_FILE).write_text(f"{pid}\n")
    _wait_ready(pid, run_dir, host, broker_port, timeout_s)
    bootstrap = f"{host}:{broker_port}"
    (run_dir / BOOTSTRAP_FILE).write_text(bootstrap + "\n")
    logger.info(
        "Kafka broker ready bootstrap=%s pid=%s run_dir=%s in %.1fs",
        bootstrap, pid, run_dir, time.monotonic() - started,
    )  # fmt: skip
    return BrokerInfo(bootstrap, pid, run_dir, log_file)


def _write_config(run_dir: Path, host: str, broker_port: int, controller_port: int) -> Path:
    template = string.Template(_deploy_file("server.properties.template").read_text())
    ports = {"broker_port": broker_port, "controller_port": controller_port}
    config = run_dir / "server.properties"
    config.write_text(template.substitute(host=host, data_dir=run_dir / "data", **ports))
    return config


def _format_storage(command: list[str], config: Path) -> None:
    cluster_id = ""
    while not cluster_id or cluster_id.startswith("-"):  # as Kafka's Uuid.randomUuid()
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    format_command = [*command, "kafka.tools.StorageTool", "format", "-t", cluster_id]
    result = subprocess.run(
        [*format_command, "-c", str(config)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise LocalBrokerError(
            f"formatting Kafka storage with {config} failed (exit {result.returncode}); "
            f"delete {config.parent / 'data'} if it is left over from another Kafka version:\n"
            f"{_tail_lines(result.stdout + result.stderr, 25)}"
        )


def _wait_ready(pid: int, run_dir: Path, host: str, port: int, timeout_s: float) -> None:
    log_file = run_dir / LOG_FILE
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        exited, wait_status = os.waitpid(pid, os.WNOHANG)  # the broker is our child here
        if exited == pid:
            (run_dir / PID_FILE).unlink(missing_ok=True)
            raise LocalBrokerError(
                f"Kafka broker pid={pid} exited during start-up (exit "
                f"{os.waitstatus_to_exitcode(wait_status)}); last lines of {log_file}:\n"
                f"{_tail_lines(log_file.read_text(errors='replace'), 30)}"
            )
        # The broker opens its client port only once unfenced; the ApiVersions round trip
        # proves it also serves requests.
        if READY_LINE in log_file.read_bytes() and _answers(host, port, timeout_s=2.0):
            return
        time.sleep(0.2)
    stop(run_dir)
    raise LocalBrokerError(
        f"Kafka broker pid={pid} not ready after {timeout_s}s (killed); raise timeout_s on a "
        f"slow machine. Last lines of {log_file}:\n"
        f"{_tail_lines(log_file.read_text(errors='replace'), 30)}"
    )


def _answers(host: str, port: int, *, timeout_s: float) -> bool:
    """Send an ApiVersions v0 request; True if the broker answers with error code 0."""
    client_id = b"dmm-kafka-local"
    header = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(struct.pack(">i", len(header)) + header)
            reply = sock.makefile("rb").read(10)  # size, correlation id, error code
    except OSError:
        return False
    if len(reply) < 10:
        return False
    _size, correlation_id, error_code = struct.unpack(">iih", reply)
    return bool(correlation_id == 7 and error_code == 0)


def _is_running(pid: int, run_dir: Path) -> bool:
    """True if ``pid`` is a live broker started with ``run_dir``'s config (not a reused pid)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our child, fully exited: now reaped
            return False
    except ChildProcessError:
        pass  # not our child: started by another process
    try:  # Linux /proc
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
        threads = re.search(r"^Threads:\s*(\d+)", Path(f"/proc/{pid}/status").read_text(), re.M)
    except OSError:
        return False
    state, _ppid, _group, session = stat[stat.rindex(")") + 2 :].split()[:4]
    if state in ("Z", "X") and threads is not None and threads.group(1) == "1":
        return False  # a zombie; with more threads its last ones are still shutting down
    if session != str(pid):  # the broker leads its own session (setsid)
        return False
    # cmdline reads empty while the process execs or exits
    return not cmdline or str(run_dir / "server.properties").encode() in cmdline


def _wait_exit(pid: int, run_dir: Path, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while _is_running(pid, run_dir):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _choose_ports(run_dir: Path, host: str) -> tuple[int, int]:
    """The previous run's (broker, controller) ports if both are free, else two new ones."""
    config = run_dir / "server.properties"
    pattern = r"^listeners=PLAINTEXT://\S+?:(\d+),CONTROLLER://\S+?:(\d+)$"
    found = re.search(pattern, config.read_text(), re.MULTILINE) if config.is_file() else None
    if found is not None:
        ports = (int(found.group(1)), int(found.group(2)))
        if all(_port_free(host, port) for port in ports):
            return ports
    with socket.socket() as first, socket.socket() as second:  # both open: two distinct ports
        first.bind((host, 0))
        second.bind((host, 0))
        return first.getsockname()[1], second.getsockname()[1]


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the JVM does
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _read_pid(run_dir: Path) -> int | None:
    try:
        return int((run_dir / PID_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _jars_complete(libs: Path, digest: str) -> bool:
    marker = libs / MARKER_FILE
    return marker.is_file() and marker.read_text().strip() == digest


def _require_tool(name: str, how_to_install: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolMissingError(f"{name} not found on PATH: {how_to_install}")
    return path


def _deploy_file(name: str) -> Path:
    path = DEPLOY_DIR / name
    if not path.is_file():
        raise LocalBrokerError(MSG_NOT_A_CHECKOUT.format(path=path))
    return path


def _tail_lines(text: str, count: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-count:])
