"""The reference interpreter: plain V-values, the synchronous two-stroke cycle (reference §2).

One cycle = a down movement (every linked input rebuilt from the *previous* outputs through
the matrices) followed by an up movement (every active neuron applies its function). When
the network has a ``self`` neuron, the soft matrix W *is* that neuron's ``single`` output
(reference §2.1): an update emitted at up movement t reaches Self's ``delta`` at down
movement t+1, is added to W at up movement t+1, and is used from down movement t+2.

Readable and exact, not fast: the compiled engine is the fast path and is tested against this.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from dmm_engine import vvalue
from dmm_engine.errors import DmmError
from dmm_engine.network import Network, links
from dmm_engine.neurons import Fields, NeuronRegistry
from dmm_engine.vvalue import VValue


class InputDriver(Protocol):
    """Supplies the output of the network's input neuron for each cycle."""

    def emit(self, cycle: int, inputs: Mapping[str, VValue]) -> Fields:
        """The input neuron's output at 1-based `cycle`, given its inputs after down movement."""
        ...


@dataclass(frozen=True, slots=True)
class State:
    """The running state of one machine: every neuron's inputs and outputs after `cycle` cycles."""

    inputs: dict[str, Fields] = field(default_factory=dict)
    outputs: dict[str, Fields] = field(default_factory=dict)
    cycle: int = 0


def initial_state(
    network: Network, registry: NeuronRegistry, outputs: Mapping[str, Fields] | None = None
) -> State:
    """The reset state (all empty, reference ``reset_dicts!``); Self starts out holding W.

    Args:
        outputs: optional initial outputs of some neurons (e.g. constant update emitters).
    """
    start = {name: copy.deepcopy(fields) for name, fields in (outputs or {}).items()}
    self_name = network.self_neuron(registry)
    if self_name is not None:
        start[self_name] = {"single": copy.deepcopy(network.matrix)}
    return State({}, start, 0)


def current_matrix(network: Network, registry: NeuronRegistry, state: State) -> VValue:
    """The soft matrix W the next down movement uses: Self's output if there is a Self."""
    self_name = network.self_neuron(registry)
    if self_name is None:
        return network.matrix
    return state.outputs.get(self_name, {}).get("single", {})


def down_movement(network: Network, matrix: VValue, state: State) -> dict[str, Fields]:
    """New inputs of every neuron with a row: each linked field = Σ weight · previous output.

    A neuron with no row gets no entry: `cycle` gives it an empty input. In DMM Lite such a
    neuron kept a stale input; with a fixed matrix that input is the empty one of the reset
    (reference §9.2), and when Self removes a neuron's row the seed's own comment says "in
    reality it should become inactive" (§7): here its input is rebuilt empty, so the state of
    a stream is its neurons' outputs alone.
    """
    terms: dict[str, dict[str, list[tuple[float, VValue]]]] = {}
    for part in (matrix, network.fixed):
        for to, to_input, source, from_output, weight in links(part):
            _require_neuron(network, to, source)
            value = state.outputs.get(source, {}).get(from_output, {})
            terms.setdefault(to, {}).setdefault(to_input, []).append((weight, value))
    return {
        to: {name: vvalue.linear_combination(ts) for name, ts in fields.items()}
        for to, fields in terms.items()
    }


def _require_neuron(network: Network, *names: str) -> None:
    for name in names:
        if name not in network.neurons:
            raise DmmError(
                f"network {network.name!r}: the matrix links neuron {name!r}, which the network "
                "does not declare (declare it under 'neurons' before linking it)"
            )


def active_neurons(network: Network, matrix: VValue) -> set[str]:
    """Neurons named by any link of W or the fixed matrix (DMM 1.0: the matrix decides)."""
    active: set[str] = set()
    for part in (matrix, network.fixed):
        for to, _, source, _, _ in links(part):
            active.update((to, source))
    return active


Drivers = InputDriver | Mapping[str, InputDriver] | None
"""One driver for the network's ``input`` neuron, or drivers by input-neuron name."""


def _driver_of(network: Network, drivers: Drivers, name: str) -> InputDriver | None:
    if drivers is None or isinstance(drivers, Mapping):
        return (drivers or {}).get(name)
    return drivers if name == network.input else None


def up_movement(
    network: Network,
    registry: NeuronRegistry,
    inputs: Mapping[str, Fields],
    active: set[str],
    drivers: Drivers,
    cycle_number: int,
) -> dict[str, Fields]:
    """New outputs: every active neuron applies its type's function to its inputs.

    An input neuron with a driver takes its output from the driver instead.
    """
    outputs: dict[str, Fields] = {}
    for name in active:
        neuron_type = registry.get(network.neurons[name])
        own = inputs.get(name, {})
        driver = _driver_of(network, drivers, name) if neuron_type.role == "input" else None
        outputs[name] = (
            driver.emit(cycle_number, own) if driver is not None else neuron_type.function(own)
        )
    return outputs


def cycle(
    network: Network, registry: NeuronRegistry, state: State, driver: Drivers = None
) -> State:
    """One two-stroke cycle: down movement, then up movement. Returns the new state."""
    matrix = current_matrix(network, registry, state)
    active = active_neurons(network, matrix)
    rebuilt = down_movement(network, matrix, state)
    # an inactive neuron (no link left) has no state at all; an active one without a row, {}
    inputs = {name: rebuilt.get(name, {}) for name in active}
    outputs = up_movement(network, registry, inputs, active, driver, state.cycle + 1)
    return State(inputs, outputs, state.cycle + 1)


def read_outputs(network: Network, state: State) -> dict[str, VValue]:
    """The named outputs after the last cycle (each reads a neuron's *input* field)."""
    return {
        name: state.inputs.get(neuron, {}).get(field_name, {})
        for name, (neuron, field_name) in network.outputs.items()
    }
