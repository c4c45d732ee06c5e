"""Model files: round trip, and errors that name the file, the line or the path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dmm_engine import (
    ModelFileError,
    NeuronRegistry,
    load_matrix,
    load_model,
    save_model,
    validate,
    zoo,
)
from dmm_engine.network import links
from dmm_engine.synthesis import ff3, ff3_soft_links


def test_save_and_load_round_trip(tmp_path: Path, registry: NeuronRegistry) -> None:
    net = zoo.load("duplicate-detector", registry)
    path = tmp_path / "m.json"
    save_model(net, path)
    again = load_model(path, registry)
    assert again == net


def test_missing_file(tmp_path: Path, registry: NeuronRegistry) -> None:
    with pytest.raises(ModelFileError, match=r"nope\.json: no such file"):
        load_model(tmp_path / "nope.json", registry)


def test_json_syntax_error_names_line_and_column(tmp_path: Path, registry: NeuronRegistry) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "format": "dmm/1",\n  "neurons": {,\n}')
    with pytest.raises(ModelFileError, match=r"bad\.json:3:15: not valid JSON"):
        load_model(path, registry)


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "model.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], 'expected a JSON object with "format": "dmm/1"'),
        ({"format": "dmm/2", "neurons": {}, "matrix": {}}, "format: expected 'dmm/1', got 'dmm/2'"),
        ({"format": "dmm/1", "neurons": {}}, r"missing keys \['matrix'\]"),
        (
            {"format": "dmm/1", "neurons": {}, "matrix": {}, "weights": 1},
            r"unknown keys \['weights'\]",
        ),
        ({"format": "dmm/1", "neurons": [], "matrix": {}}, "neurons: expected an object"),
        (
            {"format": "dmm/1", "neurons": {}, "matrix": {}, "outputs": {"l": "nodot"}},
            "outputs.l: expected",
        ),
        (
            {"format": "dmm/1", "neurons": {}, "matrix": {}, "outputs": []},
            "outputs: expected an object",
        ),
        (
            {"format": "dmm/1", "neurons": {}, "matrix": {}, "metadata": 3},
            "metadata: expected an object",
        ),
    ],
)
def test_structural_errors(
    tmp_path: Path, registry: NeuronRegistry, data: object, message: str
) -> None:
    with pytest.raises(ModelFileError, match=message):
        load_model(_write(tmp_path, data), registry)


def test_validation_errors_are_prefixed_with_the_file(
    tmp_path: Path, registry: NeuronRegistry
) -> None:
    data = {
        "format": "dmm/1",
        "neurons": {"accum": "accum"},
        "matrix": {"accum": {"dict-3": {"accum": {"dict": 1}}}},
    }
    path = _write(tmp_path, data)
    with pytest.raises(ModelFileError) as info:
        load_model(path, registry)
    assert str(info.value) == (
        f"{path}: matrix.accum.dict-3: neuron 'accum' (type accum) has no input 'dict-3' "
        "(inputs: dict-1, dict-2)"
    )


def test_author_matrices_load_as_the_matrix_part(registry: NeuronRegistry) -> None:
    initial = zoo.matrix("ff3-initial")
    assert {link[:4] for link in links(initial)} == set(ff3_soft_links())
    validate(ff3(initial), registry)
    validate(ff3(zoo.matrix("sparse20-after-100")), registry)
    assert links(initial).__next__()[4] == pytest.approx(-0.0076840892)


def test_bare_matrix_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text("[1, 2]")
    with pytest.raises(ModelFileError, match="expected a JSON object"):
        load_matrix(path)


def test_zoo_resolve(tmp_path: Path, registry: NeuronRegistry) -> None:
    assert zoo.resolve("duplicate-detector", registry).name == "duplicate-detector"
    path = tmp_path / "mine.json"
    save_model(zoo.load("duplicate-detector-tokens", registry), path)
    assert zoo.resolve(str(path), registry).metadata["symbols"] == "tokens"
    with pytest.raises(ModelFileError, match="unknown model 'nope': not a zoo model"):
        zoo.resolve("nope", registry)
    with pytest.raises(ModelFileError, match="unknown zoo model"):
        zoo.load("nope", registry)
    with pytest.raises(ModelFileError, match="unknown zoo matrix"):
        zoo.matrix("nope")
    assert "cat" in zoo.sample_text()
