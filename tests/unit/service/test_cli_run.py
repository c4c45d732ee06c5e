"""`dmm run` as a user runs it: a real subprocess, stdin or a file in, JSON lines out."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

DMM = [sys.executable, "-m", "service.cli"]


def dmm(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*DMM, *args], input=stdin, capture_output=True, timeout=60, check=False)


def test_printf_test_string_prints_12_lines_that_follow_the_law() -> None:
    done = dmm("run", stdin=b"test string.")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert len(lines) == 12
    counts: Counter[str] = Counter()
    for seq, line in enumerate(lines, start=1):
        record = json.loads(line)
        counts[record["input"]] += 1
        assert record == {
            "seq": seq,
            "input": "test string."[seq - 1],
            "outputs": {"left": max(counts.values()) - 1, "right": min(counts["."], 4)},
        }
    assert lines[0] == '{"seq": 1, "input": "t", "outputs": {"left": 0, "right": 0}}'


def test_tokens_and_input_file(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("the cat . the cat .\n. . .\n", encoding="utf-8")
    done = dmm("run", "--tokens", "--input", str(path))
    assert done.returncode == 0, done.stderr
    records = [json.loads(x) for x in done.stdout.decode().splitlines()]
    assert [r["input"] for r in records][:3] == ["the", "cat", "."]
    assert records[-1]["outputs"] == {"left": 4, "right": 4}  # five '.' tokens, right capped at 4


def test_table_format() -> None:
    done = dmm("run", "--format", "table", stdin=b"aa")
    lines = done.stdout.decode().splitlines()
    assert lines[0].split() == ["seq", "input", "left", "right"]
    assert lines[2].split() == ["2", '"a"', "1", "0"]


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["run", "--model", "nope"], b"x", "dmm: error: unknown model 'nope': not a zoo model"),
        (
            ["run", "--input", "/nonexistent/x.txt"],
            b"",
            "dmm: error: cannot read --input /nonexistent/x.txt",
        ),
        (["run"], b"t\xff", "dmm: error: input is not valid UTF-8"),
    ],
)
def test_errors_are_one_line_and_exit_2(args: list[str], stdin: bytes, message: str) -> None:
    done = dmm(*args, stdin=stdin)
    assert done.returncode == 2
    err = done.stderr.decode()
    assert err.startswith(message) and err.count("\n") == 1, err


def test_invalid_model_file_names_file_and_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(
        json.dumps(
            {
                "format": "dmm/1",
                "neurons": {"accum": "accum"},
                "matrix": {"accum": {"dict-3": {"accum": {"dict": 1}}}},
            }
        )
    )
    done = dmm("run", "--model", str(path), stdin=b"x")
    assert done.returncode == 2
    assert done.stderr.decode() == (
        f"dmm: error: {path}: matrix.accum.dict-3: neuron 'accum' (type accum) has no input "
        "'dict-3' (inputs: dict-1, dict-2)\n"
    )
