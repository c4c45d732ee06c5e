"""Many streams, one network: the interface the streaming worker drives, and its reference form.

Each stream has its own machine state; all share the network (and, with Self, its matrix).
`step` advances every listed stream by one message (``cycles_per_message`` cycles, the
message's V-value entering on the first). A snapshot is engine-independent JSON data, so a
state written to the changelog by one engine can be restored by the other.

Snapshot format: ``{"cycle": n, "outputs": {neuron: {field: V-value JSON}}}``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from dmm_engine import interpreter, vvalue
from dmm_engine.drivers import step_message
from dmm_engine.errors import DmmError
from dmm_engine.network import Network, validate
from dmm_engine.neurons import NeuronRegistry
from dmm_engine.vvalue import VValue

Snapshot = dict[str, Any]


class StreamMachines(Protocol):
    """Per-stream machine states for one network, advanced one message at a time."""

    network: Network

    def step(self, batch: Sequence[tuple[str, VValue]]) -> list[dict[str, VValue]]:
        """Advance each ``(stream, value)`` by one message; streams must be distinct.

        A stream seen for the first time starts from the reset state. Returns the named
        outputs of each stream after its message, in `batch` order.
        """
        ...

    def snapshot(self, stream: str) -> Snapshot:
        """The stream's state as JSON data (see the module docstring)."""
        ...

    def restore(self, stream: str, snapshot: Snapshot) -> None:
        """Replace the stream's state with `snapshot`."""
        ...

    def drop(self, stream: str) -> None:
        """Forget the stream (its next message starts from the reset state)."""
        ...

    def streams(self) -> list[str]:
        """The streams that currently have a state."""
        ...

    def matrix(self) -> VValue:
        """The soft matrix W every stream runs on now (Self's output)."""
        ...

    def apply_delta(self, delta: VValue, neurons: Mapping[str, str] | None = None) -> None:
        """From the next message of every stream on, W := W + delta (zero links dropped).

        `neurons` declares the neurons (name → type) the delta brings in. Between two messages
        this equals a delta emitted into Self at the up movement of the previous message's
        second-to-last cycle (reference §2.1, t+2). All or nothing: a delta that makes the
        network invalid raises and changes nothing.
        """
        ...


def snapshot_of(state: interpreter.State, shared: str | None = None) -> Snapshot:
    """The engine-independent snapshot of an interpreter state.

    Args:
        shared: the Self neuron, whose output (W) is shared by all streams and not saved.
    """
    outputs = {
        neuron: {name: vvalue.to_jsonable(v) for name, v in fields.items()}
        for neuron, fields in state.outputs.items()
        if neuron != shared
    }
    return {"cycle": state.cycle, "outputs": outputs}


def state_of(snapshot: Snapshot) -> interpreter.State:
    """An interpreter state from a snapshot (inputs are rebuilt by the next down movement)."""
    try:
        outputs = {
            str(neuron): {
                str(name): vvalue.from_jsonable(v, f"outputs.{neuron}.{name}")
                for name, v in fields.items()
            }
            for neuron, fields in snapshot["outputs"].items()
        }
        cycle = int(snapshot["cycle"])
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise DmmError(f"not a stream snapshot ({{'cycle', 'outputs'}} expected): {exc}") from exc
    return interpreter.State({}, outputs, cycle)


def updated_network(
    network: Network,
    registry: NeuronRegistry,
    delta: VValue,
    neurons: Mapping[str, str] | None = None,
) -> Network:
    """`network` with W + delta (zero links dropped) and `neurons` declared, validated.

    Raises:
        NetworkValidationError: the result is not a valid network (nothing is changed).
    """
    matrix = vvalue.purge_zeros(vvalue.add(network.matrix, delta))
    declared = {**network.neurons, **(neurons or {})}
    result = dataclasses.replace(network, neurons=declared, matrix=matrix)
    validate(result, registry)
    return result


class InterpreterMachines:
    """`StreamMachines` on the reference interpreter: one `State` per stream, one shared W."""

    def __init__(self, network: Network, registry: NeuronRegistry) -> None:
        self.network = network
        self.registry = registry
        self._self = network.self_neuron(registry)
        self._states: dict[str, interpreter.State] = {}

    def _state(self, stream: str) -> interpreter.State:
        state = self._states.get(stream) or interpreter.initial_state(self.network, self.registry)
        if self._self is not None:  # every stream runs on the one shared W
            state.outputs[self._self] = {"single": self.network.matrix}
        return state

    def step(self, batch: Sequence[tuple[str, VValue]]) -> list[dict[str, VValue]]:
        if len({stream for stream, _ in batch}) != len(batch):
            raise DmmError("step: a stream may appear only once per batch (one message per tick)")
        results = []
        for stream, value in batch:
            state = step_message(self.network, self.registry, self._state(stream), value)
            self._states[stream] = state
            results.append(interpreter.read_outputs(self.network, state))
        return results

    def snapshot(self, stream: str) -> Snapshot:
        return snapshot_of(self._state(stream), self._self)

    def restore(self, stream: str, snapshot: Snapshot) -> None:
        self._states[stream] = state_of(snapshot)

    def drop(self, stream: str) -> None:
        self._states.pop(stream, None)

    def streams(self) -> list[str]:
        return sorted(self._states)

    def matrix(self) -> VValue:
        return self.network.matrix

    def apply_delta(self, delta: VValue, neurons: Mapping[str, str] | None = None) -> None:
        self.network = updated_network(self.network, self.registry, delta, neurons)
