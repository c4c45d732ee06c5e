"""The README's code runs as written."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_register_a_neuron_type_snippet_runs() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Register a neuron type", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.group(1), str(README), "exec"), {})
    assert out.getvalue().strip() == "[{'doubled': {'a': 2.0}}]"


def test_readme_begins_with_the_two_commands() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert lines[2:6] == ["```sh", lines[3], lines[4], "```"]
    assert lines[3].startswith("make demo") and lines[4].startswith("make test")
