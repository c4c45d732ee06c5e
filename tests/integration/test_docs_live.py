"""The docs' live blocks run as written, against the broker the page itself starts.

docs/tutorial-neuron.md part (c) starts a local broker with ``dmm kafka start --run-dir
kafka-run`` inside the page's temporary working directory (never the developer's default run
dir: tests/unit/test_docs.py checks that every ``dmm kafka`` command names a ``--run-dir``),
runs ``dmm worker``, ``dmm produce``, ``dmm tail``, ``dmm swap`` and stops the broker. Whatever
happens, every broker started under the working directory is stopped afterwards.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from service import kafka_local
from tests.helpers import require_broker_tools
from tests.unit.test_docs import LIVE_PAGES, page_blocks, run_page


def _require_broker_tools() -> None:
    require_broker_tools("the docs' live blocks")


def _stop_brokers_under(work: Path) -> list[Path]:
    stopped = []
    for pid_file in work.rglob(kafka_local.PID_FILE):
        if kafka_local.stop(pid_file.parent):
            stopped.append(pid_file.parent)
    return stopped


@pytest.mark.parametrize("page", sorted(LIVE_PAGES))
def test_live_page_runs_as_written(page: str, tmp_path: Path) -> None:
    assert any("live" in block.flags for block in page_blocks(page)), f"{page} has no live block"
    _require_broker_tools()
    try:
        run = run_page(page, tmp_path, live=True)
    finally:
        left_running = _stop_brokers_under(tmp_path / "work")
    # the page stops its own broker: one still running here means its last block did not
    assert left_running == [], f"docs/{page} left a broker running in {left_running}"
    live = [block.where for block in page_blocks(page) if "live" in block.flags]
    assert set(live) <= set(run.seconds), "some live blocks did not run"
    slowest = sorted(run.seconds.items(), key=lambda item: -item[1])[:4]
    print(f"{page}: {sum(run.seconds.values()):.1f} s; slowest {slowest}")
