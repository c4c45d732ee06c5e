"""The model zoo: networks shipped with dmm-stream, by name.

``duplicate-detector`` is the handcrafted machine of arXiv 1606.09470 §3 (reference §4.1) on
characters; ``duplicate-detector-tokens`` is the same network for whitespace tokens (its
metadata says ``"symbols": "tokens"``; ``.`` is the end-of-sentence token).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from dmm_engine.errors import ModelFileError
from dmm_engine.modelfile import load_matrix, load_model
from dmm_engine.network import Network
from dmm_engine.neurons import NeuronRegistry
from dmm_engine.vvalue import VValue

MODELS = {
    "duplicate-detector": "duplicate-detector.json",
    "duplicate-detector-tokens": "duplicate-detector-tokens.json",
    "synthesized": "synthesized/synthesized.json",
    "synthesized-general": "synthesized/synthesized-general.json",
}
MATRICES = {
    "ff3-initial": "data/ff3-initial-matrix.json",
    "sparse20-after-100": "data/sparse20-after-100-steps-matrix.json",
}


def _path(relative: str) -> Path:
    return Path(str(resources.files("dmm_engine.zoo").joinpath(relative)))


def names() -> list[str]:
    """The zoo's model names."""
    return sorted(MODELS)


def load(name: str, registry: NeuronRegistry) -> Network:
    """The zoo model called `name`; raises `ModelFileError` listing the known names."""
    if name not in MODELS:
        raise ModelFileError(f"unknown zoo model {name!r} (zoo: {', '.join(names())})")
    return load_model(_path(MODELS[name]), registry)


def matrix(name: str) -> VValue:
    """A shipped rank-4 soft matrix (``ff3-initial``, ``sparse20-after-100``)."""
    if name not in MATRICES:
        raise ModelFileError(f"unknown zoo matrix {name!r} (zoo: {', '.join(sorted(MATRICES))})")
    return load_matrix(_path(MATRICES[name]))


def resolve(name_or_path: str, registry: NeuronRegistry) -> Network:
    """A zoo model by name, else a model file by path.

    Raises:
        ModelFileError: neither a zoo name nor an existing file, or the file is invalid.
    """
    if name_or_path in MODELS:
        return load(name_or_path, registry)
    path = Path(name_or_path)
    if not path.exists():
        raise ModelFileError(
            f"unknown model {name_or_path!r}: not a zoo model ({', '.join(names())}) "
            "and no such file"
        )
    return load_model(path, registry)


def sample_text() -> str:
    """The short sample text the embedded demo runs on."""
    return _path("sample.txt").read_text(encoding="utf-8")
