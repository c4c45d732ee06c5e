"""Choosing an engine: the compiled tensor engine (default) or the reference interpreter."""

from __future__ import annotations

from typing import Literal, get_args

from dmm_engine.errors import DmmError
from dmm_engine.network import Network
from dmm_engine.neurons import NeuronRegistry
from dmm_engine.streams import InterpreterMachines, StreamMachines

EngineName = Literal["compiled", "interpreter"]
ENGINES: tuple[str, ...] = get_args(EngineName)


def make_machines(
    network: Network, registry: NeuronRegistry, engine: str = "compiled"
) -> StreamMachines:
    """Per-stream machines for `network` on the named engine.

    Raises:
        DmmError: `engine` is not one of ``compiled``, ``interpreter``.
        CompileError: the compiled engine cannot run this network (e.g. a type without a
            tensor form); the message says to use the interpreter.
    """
    if engine == "compiled":
        from dmm_engine.compiled import CompiledMachines  # torch is imported only when used

        return CompiledMachines(network, registry)
    if engine == "interpreter":
        return InterpreterMachines(network, registry)
    raise DmmError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")
