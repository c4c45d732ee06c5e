"""Fixtures for tests that need a real Kafka broker: every test in this directory.

The broker is ``DMM_KAFKA_BOOTSTRAP`` (``host:port`` of an external broker) if set, else a
local single-node broker started once per session by `service.kafka_local` in a temporary
run directory, with its jars cached in ``DMM_CACHE_DIR`` (default ``~/.cache/dmm-stream``).
Without either, the tests are skipped with the reason, except under CI (``CI`` set), where
they fail: CI must never silently skip broker tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from service import kafka_local
from service.kafka_local import BrokerInfo
from tests.helpers import in_ci

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test collected from this directory with ``kafka``."""
    for item in items:
        if item.path.parent == HERE or HERE in item.path.parents:
            item.add_marker(pytest.mark.kafka)


def _external_bootstrap() -> str | None:
    return os.environ.get("DMM_KAFKA_BOOTSTRAP", "").strip() or None


@pytest.fixture(scope="session")
def kafka_cache_dir() -> Path:
    """Where the broker jars are cached: ``DMM_CACHE_DIR`` or ``~/.cache/dmm-stream``."""
    configured = os.environ.get("DMM_CACHE_DIR", "").strip()
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "dmm-stream"


@pytest.fixture(scope="session")
def local_broker(
    tmp_path_factory: pytest.TempPathFactory, kafka_cache_dir: Path
) -> Iterator[BrokerInfo | None]:
    """The session's local broker, or None when ``DMM_KAFKA_BOOTSTRAP`` names an external one."""
    if _external_bootstrap() is not None:
        yield None
        return
    run_dir = tmp_path_factory.mktemp("kafka")
    try:
        info = kafka_local.start(run_dir, kafka_cache_dir)
    except kafka_local.ToolMissingError as exc:
        missing = str(exc)
    else:
        missing = ""
    if missing:
        reason = f"no Kafka broker: {missing}; or set DMM_KAFKA_BOOTSTRAP=host:port"
        if in_ci():
            pytest.fail(f"CI must run the broker tests: {reason}", pytrace=False)
        pytest.skip(reason)
    try:
        yield info
    finally:
        kafka_local.stop(run_dir)


@pytest.fixture(scope="session")
def kafka_bootstrap(local_broker: BrokerInfo | None) -> str:
    """``host:port`` of a running broker, for ``bootstrap_servers``."""
    if local_broker is not None:
        return local_broker.bootstrap
    external = _external_bootstrap()
    if external is None:  # local_broker yields None only when it is set
        raise RuntimeError("DMM_KAFKA_BOOTSTRAP was unset during the session")
    return external
