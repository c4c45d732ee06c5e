"""The engine knows nothing about I/O: importing it loads no service framework."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("aiokafka", "faust", "prometheus_client", "typer", "service", "pydantic_settings")


def test_importing_dmm_engine_loads_no_io_framework() -> None:
    code = (
        "import sys, json, dmm_engine, dmm_engine.synthesis; print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, timeout=60)
    loaded = json.loads(done.stdout)
    assert [m for m in loaded if m.split(".")[0] in FORBIDDEN] == []
