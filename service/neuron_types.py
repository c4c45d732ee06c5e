"""Neuron types of your own, named by ``DMM_WORKER_NEURON_TYPES`` (``module:attribute,…``).

Each entry is ``module:attribute`` (an importable module: installed, or on ``PYTHONPATH``) or
``path/to/file.py:attribute`` (a Python file, loaded by path). The attribute must be one of:

* a `NeuronType` — registered as it is;
* a list or tuple of them;
* a function taking the `NeuronRegistry` and registering what it likes.

Types of your own have no tensor form, so run them on the reference engine
(``DMM_WORKER_ENGINE=interpreter``); the compiled engine says so when it meets one.

Example::

    # my_neurons.py
    from dmm_engine import NeuronType, vvalue
    DOUBLE = NeuronType("double", inputs=("x",), outputs=("y",),
                        function=lambda i: {"y": vvalue.scale(2.0, i.get("x", {}))})

    DMM_WORKER_NEURON_TYPES=my_neurons.py:DOUBLE DMM_WORKER_ENGINE=interpreter dmm worker
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from dmm_engine import DmmError, NeuronRegistry, NeuronType, default_registry
from service.errors import NeuronTypesError
from service.settings import Settings

VARIABLE = "DMM_WORKER_NEURON_TYPES (--neuron-types)"


def load_registry(settings: Settings) -> NeuronRegistry:
    """The built-in neuron types plus those ``DMM_WORKER_NEURON_TYPES`` names.

    Raises:
        NeuronTypesError: a name cannot be imported or is not a type, a list of types or a
            registering function; the message names the entry and the rule.
    """
    registry = default_registry()
    for spec in (settings.worker.neuron_types or "").split(","):
        if spec.strip():
            register(registry, spec.strip())
    return registry


def register(registry: NeuronRegistry, spec: str) -> None:
    """Register what the one ``module:attribute`` entry `spec` names on `registry`."""
    module_name, _, attribute = spec.rpartition(":")
    if not module_name or not attribute:
        raise NeuronTypesError(
            f"{VARIABLE} entry {spec!r}: expected module:attribute or file.py:attribute"
        )
    try:
        target = getattr(_import(module_name), attribute)
    except (ImportError, OSError) as exc:
        raise NeuronTypesError(f"{VARIABLE} entry {spec!r}: cannot import: {exc}") from exc
    except AttributeError:
        raise NeuronTypesError(
            f"{VARIABLE} entry {spec!r}: module {module_name!r} has no {attribute!r}"
        ) from None
    try:
        if isinstance(target, NeuronType):
            registry.register(target)
        elif isinstance(target, (list, tuple)) and all(isinstance(t, NeuronType) for t in target):
            for neuron_type in target:
                registry.register(neuron_type)
        elif callable(target):
            _call(target, registry, spec)
        else:
            raise NeuronTypesError(
                f"{VARIABLE} entry {spec!r}: a {type(target).__name__} is not a NeuronType, a "
                "list of them, or a function that registers them"
            )
    except DmmError as exc:
        raise NeuronTypesError(f"{VARIABLE} entry {spec!r}: {exc}") from exc


def _import(name: str) -> ModuleType:
    """A module by name, or a ``.py`` file by path (run once per call)."""
    if not name.endswith(".py"):
        return importlib.import_module(name)
    path = Path(name).expanduser()
    spec = importlib.util.spec_from_file_location(f"dmm_neuron_types_{path.stem}", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise ImportError(f"no Python file {str(path)!r}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _call(
    registrar: Callable[[NeuronRegistry], object], registry: NeuronRegistry, spec: str
) -> None:
    try:
        registrar(registry)
    except DmmError:
        raise
    except Exception as exc:  # the user's function: say whose it is
        raise NeuronTypesError(
            f"{VARIABLE} entry {spec!r}: calling it with the registry failed: {exc!r}"
        ) from exc
