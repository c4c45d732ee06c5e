"""DMM_WORKER_NEURON_TYPES: types of your own from a module or a file, with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.errors import NeuronTypesError
from service.neuron_types import load_registry
from service.settings import load_settings

TYPES = """
from dmm_engine import NeuronType, vvalue

def double(inputs):
    return {"y": vvalue.scale(2.0, inputs.get("x", {}))}

DOUBLE = NeuronType("double", inputs=("x",), outputs=("y",), function=double)
BOTH = [DOUBLE, NeuronType("half", inputs=("x",), outputs=("y",), function=double)]

def register(registry):
    registry.register(NeuronType("triple", inputs=("x",), outputs=("y",), function=double))

NOT_A_TYPE = 42
"""


@pytest.fixture
def types_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_types.py"
    path.write_text(TYPES, encoding="utf-8")
    return path


def registry_of(spec: str):  # type: ignore[no-untyped-def]
    return load_registry(load_settings({"worker.neuron_types": spec}))


def test_a_type_a_list_and_a_registering_function_all_load(types_file: Path) -> None:
    registry = registry_of(f"{types_file}:DOUBLE, {types_file}:register")
    assert "double" in registry and "triple" in registry and "accum" in registry
    assert "half" in registry_of(f"{types_file}:BOTH")


def test_modules_on_the_path_load_by_name(
    types_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(types_file.parent))
    assert "double" in registry_of("my_types:DOUBLE")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("no_colon", "expected module:attribute or file.py:attribute"),
        ("no_such_module_xyz:X", "cannot import"),
        ("{file}:MISSING", "has no 'MISSING'"),
        ("{file}:NOT_A_TYPE", "a int is not a NeuronType"),
        ("{file}:DOUBLE,{file}:DOUBLE", "already registered"),
        ("/no/such/file.py:X", "cannot import"),
        ("dmm_engine.neurons:NeuronType", "calling it with the registry failed"),
    ],
)
def test_bad_entries_are_named_with_the_rule(types_file: Path, entry: str, message: str) -> None:
    with pytest.raises(NeuronTypesError, match="DMM_WORKER_NEURON_TYPES") as error:
        registry_of(entry.format(file=types_file))
    assert message in str(error.value)
