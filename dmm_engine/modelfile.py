"""Model files (``"format": "dmm/1"``) and bare rank-4 matrix files: load, save, validate.

A model file is JSON::

    {"format": "dmm/1", "name": "duplicate-detector",
     "neurons": {"timer": "timer", "input": "input", ...},
     "matrix": {"accum": {"dict-1": {"accum": {"dict": 1.0}}, ...}, ...},
     "fixed": {}, "outputs": {"left": "output.dict-1", "right": "output.dict-2"},
     "input": "input", "cycles_per_message": 10, "metadata": {}}

``outputs`` maps a name to ``"neuron.input_field"``. A matrix file (the author's format) is
just the rank-4 ``matrix`` object.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dmm_engine.errors import ModelFileError, NetworkValidationError
from dmm_engine.network import Network, validate
from dmm_engine.neurons import NeuronRegistry
from dmm_engine.vvalue import VValue

FORMAT = "dmm/1"
REQUIRED_KEYS = ("format", "neurons", "matrix")
OPTIONAL_KEYS = ("name", "fixed", "outputs", "input", "cycles_per_message", "metadata")


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path}: cannot read: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from exc


def _floats(value: Any) -> Any:
    """Integers become floats so weights compare and serialise uniformly; other values stay."""
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _parse_outputs(data: Any, source: str) -> dict[str, tuple[str, str]]:
    if not isinstance(data, dict):
        raise ModelFileError(f'{source}: outputs: expected an object {{name: "neuron.input"}}')
    outputs = {}
    for name, ref in data.items():
        if not isinstance(ref, str) or "." not in ref:
            raise ModelFileError(
                f'{source}: outputs.{name}: expected "neuron.input_field" (e.g. "output.dict-1"), '
                f"got {ref!r}"
            )
        neuron, field_name = ref.rsplit(".", 1)
        outputs[name] = (neuron, field_name)
    return outputs


def network_from_dict(data: Any, source: str, registry: NeuronRegistry) -> Network:
    """Build and validate a network from parsed model-file JSON; `source` names it in errors."""
    if not isinstance(data, dict):
        raise ModelFileError(f'{source}: expected a JSON object with "format": "{FORMAT}"')
    missing = [k for k in REQUIRED_KEYS if k not in data]
    unknown = sorted(set(data) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if missing or unknown:
        allowed = ", ".join(REQUIRED_KEYS + OPTIONAL_KEYS)
        raise ModelFileError(
            f"{source}: missing keys {missing}, unknown keys {unknown} (allowed: {allowed})"
        )
    if data["format"] != FORMAT:
        raise ModelFileError(f"{source}: format: expected {FORMAT!r}, got {data['format']!r}")
    neurons = data["neurons"]
    if not isinstance(neurons, dict) or not all(isinstance(t, str) for t in neurons.values()):
        raise ModelFileError(f'{source}: neurons: expected an object {{name: "type"}}')
    metadata = data.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{source}: metadata: expected an object, got {metadata!r}")
    network = Network(
        name=str(data.get("name", Path(source).stem)),
        neurons=dict(neurons),
        matrix=_floats(data["matrix"]),
        fixed=_floats(data.get("fixed", {})),
        outputs=_parse_outputs(data.get("outputs", {}), source),
        input=data.get("input"),
        cycles_per_message=data.get("cycles_per_message", 10),
        metadata=metadata,
    )
    try:
        validate(network, registry)
    except NetworkValidationError as exc:
        raise ModelFileError("\n".join(f"{source}: {p}" for p in exc.problems)) from exc
    return network


def network_to_dict(network: Network) -> dict[str, Any]:
    """The model-file JSON object of `network` (inverse of `network_from_dict`)."""
    return {
        "format": FORMAT,
        "name": network.name,
        "neurons": dict(network.neurons),
        "matrix": network.matrix,
        "fixed": network.fixed,
        "outputs": {name: f"{n}.{f}" for name, (n, f) in network.outputs.items()},
        "input": network.input,
        "cycles_per_message": network.cycles_per_message,
        "metadata": dict(network.metadata),
    }


def load_model(path: str | Path, registry: NeuronRegistry) -> Network:
    """Read and validate a ``dmm/1`` model file.

    Raises:
        ModelFileError: the file is missing, unreadable, not JSON, not ``dmm/1`` or invalid;
            the message starts with the path (and line:column for JSON syntax errors).
    """
    path = Path(path)
    return network_from_dict(_read_json(path), str(path), registry)


def save_model(network: Network, path: str | Path) -> None:
    """Write `network` as an indented ``dmm/1`` model file."""
    Path(path).write_text(json.dumps(network_to_dict(network), indent=2, sort_keys=True) + "\n")


def load_matrix(path: str | Path) -> VValue:
    """Read a bare rank-4 matrix file (the author's format) with every weight as a float.

    Structure against a network is checked by `validate` once it is placed in one.
    """
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: expected a JSON object (a rank-4 matrix)")
    matrix: VValue = _floats(data)
    return matrix
