"""`dmm trainer` and `dmm run --neuron-types`: configuration errors are one line, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

DMM = [sys.executable, "-m", "service.cli"]
DOUBLER = {
    "format": "dmm/1",
    "name": "doubler",
    "neurons": {"input": "input", "d": "double", "out": "output"},
    "matrix": {"d": {"x": {"input": {"char": 1.0}}}, "out": {"dict-1": {"d": {"y": 1.0}}}},
    "fixed": {},
    "outputs": {"doubled": "out.dict-1"},
    "input": "input",
    "cycles_per_message": 3,
    "metadata": {},
}
TYPES = """
from dmm_engine import NeuronType, vvalue
DOUBLE = NeuronType("double", inputs=("x",), outputs=("y",),
                    function=lambda i: {"y": vvalue.scale(2.0, i.get("x", {}))})
"""


def dmm(
    *args: str, stdin: bytes = b"", variables: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMM_")} | (variables or {})
    return subprocess.run([*DMM, *args], input=stdin, capture_output=True, timeout=120, env=env)


def write_doubler(tmp_path: Path) -> tuple[Path, Path]:
    model, types = tmp_path / "doubler.json", tmp_path / "my_neurons.py"
    model.write_text(json.dumps(DOUBLER), encoding="utf-8")
    types.write_text(TYPES, encoding="utf-8")
    return model, types


def test_a_teacher_with_other_outputs_is_refused_before_any_broker_is_needed(
    tmp_path: Path,
) -> None:
    model, types = write_doubler(tmp_path)
    trainer = ("trainer", "--teacher", str(model), "--bootstrap", "127.0.0.1:9")

    done = dmm(*trainer)
    assert done.returncode == 2, done.stderr
    assert "unknown neuron type 'double'" in done.stderr.decode()  # its type is not loaded

    done = dmm(*trainer, variables={"DMM_WORKER_NEURON_TYPES": f"{types}:DOUBLE"})
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert err.startswith("dmm: error: DMM_TRAINER_TEACHER 'doubler' has outputs ['doubled']")
    assert "DMM_WORKER_MODEL" in err and len(err.strip().splitlines()) == 1


def test_run_with_neuron_types_of_ones_own(tmp_path: Path) -> None:
    model, types = write_doubler(tmp_path)
    done = dmm(
        "run", "--model", str(model), "--neuron-types", f"{types}:DOUBLE", "--engine",
        "interpreter", stdin=b"ab",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert [line["outputs"] for line in lines] == [{"doubled": {"a": 2}}, {"doubled": {"b": 2}}]

    done = dmm("run", "--model", str(model), "--neuron-types", f"{types}:NOPE", stdin=b"ab")
    assert done.returncode == 2
    assert "my_neurons.py:NOPE" in done.stderr.decode() and "has no 'NOPE'" in done.stderr.decode()
