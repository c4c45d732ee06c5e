"""Networks: neurons, the rank-4 network matrix, hard links, named outputs (DESIGN.md "Network").

A matrix is a rank-4 V-value ``W[to_neuron][to_input][from_neuron][from_output] = weight``
(reference §2.2). ``matrix`` holds the trainable ("soft") links, ``fixed`` the hard ones; the
down movement uses both. A named output ``"left": ("output", "dict-1")`` reads the *input*
field ``dict-1`` of neuron ``output`` after a cycle, as the seed reads its output neuron.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from dmm_engine.errors import NetworkValidationError, UnknownNeuronTypeError
from dmm_engine.neurons import NeuronRegistry
from dmm_engine.vvalue import NUMBER, VValue

Link = tuple[str, str, str, str, float]
"""``(to_neuron, to_input, from_neuron, from_output, weight)``."""


@dataclass(frozen=True, slots=True)
class Network:
    """A dataflow matrix machine: what it is made of, not its running state.

    Attributes:
        name: a label used in messages and model files.
        neurons: neuron name → neuron type name.
        matrix: soft links, rank-4 V-value (the trainable part; Self's initial output).
        fixed: hard links, rank-4 V-value (never trained, never pruned).
        outputs: output name → (neuron, input field) read after each cycle.
        input: the neuron fed by the input driver, or None.
        cycles_per_message: cycles the machine runs per incoming message (default 10).
        metadata: free-form information carried by model files.
    """

    name: str
    neurons: Mapping[str, str]
    matrix: VValue
    fixed: VValue = field(default_factory=dict)
    outputs: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    input: str | None = None
    cycles_per_message: int = 10
    metadata: Mapping[str, object] = field(default_factory=dict)

    def self_neuron(self, registry: NeuronRegistry) -> str | None:
        """The name of the neuron of role ``self`` (whose output is W), or None."""
        for name, type_name in self.neurons.items():
            if type_name in registry and registry.get(type_name).role == "self":
                return name
        return None


def links(matrix: VValue) -> Iterator[Link]:
    """Every link of a well-formed rank-4 matrix, in storage order."""
    for to, row in matrix.items():
        for to_input, sources in _items(row):
            for source, outs in _items(sources):
                for from_output, weight in _items(outs):
                    if isinstance(weight, (int, float)):
                        yield to, to_input, source, from_output, float(weight)


def _items(x: object) -> list[tuple[str, object]]:
    return list(x.items()) if isinstance(x, dict) else []


def count_links(matrix: VValue) -> int:
    """The number of links (weights) in a rank-4 matrix."""
    return sum(1 for _ in links(matrix))


def _names(items: object, limit: int = 12) -> str:
    names = sorted(str(x) for x in items)  # type: ignore[attr-defined]
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names)} in all)" if len(names) > limit else "") if names else "none"


@dataclass(slots=True)
class _Checker:
    network: Network
    registry: NeuronRegistry
    problems: list[str] = field(default_factory=list)

    def run(self) -> None:
        self.check_neurons()
        for part in ("matrix", "fixed"):
            self.check_matrix(part, getattr(self.network, part))
        self.check_outputs()
        self.check_input()
        cycles = self.network.cycles_per_message
        if isinstance(cycles, bool) or not isinstance(cycles, int) or cycles < 1:
            self.problems.append(f"cycles_per_message: expected an integer >= 1, got {cycles!r}")

    def type_of(self, neuron: str) -> tuple[str, tuple[str, ...], tuple[str, ...]] | None:
        type_name = self.network.neurons.get(neuron)
        if type_name is None or type_name not in self.registry:
            return None
        t = self.registry.get(type_name)
        return type_name, t.inputs, t.outputs

    def check_neurons(self) -> None:
        selves = []
        for name, type_name in self.network.neurons.items():
            if not name or "." in name or name == NUMBER:
                self.problems.append(
                    f"neurons.{name}: a neuron name must be non-empty, without '.', "
                    f"and not {NUMBER!r}"
                )
            try:
                if self.registry.get(type_name).role == "self":
                    selves.append(name)
            except UnknownNeuronTypeError as exc:
                self.problems.append(f"neurons.{name}: {exc}")
        if len(selves) > 1:
            self.problems.append(
                f"neurons: at most one neuron of type self, found {_names(selves)}"
            )

    def check_matrix(self, part: str, matrix: object) -> None:
        if not isinstance(matrix, dict):
            self.problems.append(f"{part}: expected an object (a rank-4 matrix), got {matrix!r}")
            return
        for to, row in matrix.items():
            target = self.neuron(f"{part}.{to}", to)
            for to_input, sources in self.level(f"{part}.{to}", row, "{to_input: {...}}"):
                where = f"{part}.{to}.{to_input}"
                if target and to_input not in target[1]:
                    self.problems.append(
                        f"{where}: neuron {to!r} (type {target[0]}) has no input {to_input!r} "
                        f"(inputs: {_names(target[1])})"
                    )
                for source, outs in self.level(where, sources, "{from_neuron: {...}}"):
                    self.check_sources(f"{where}.{source}", source, outs)

    def check_sources(self, where: str, source: str, outs: object) -> None:
        origin = self.neuron(where, source)
        for from_output, weight in self.level(where, outs, "{from_output: weight}"):
            here = f"{where}.{from_output}"
            if origin and from_output not in origin[2]:
                self.problems.append(
                    f"{here}: neuron {source!r} (type {origin[0]}) has no output {from_output!r} "
                    f"(outputs: {_names(origin[2])})"
                )
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                self.problems.append(f"{here}: expected a link weight (a number), got {weight!r}")
            elif not math.isfinite(weight):
                self.problems.append(f"{here}: weight {weight!r} is not finite")

    def level(self, where: str, value: object, expected: str) -> list[tuple[str, object]]:
        if isinstance(value, dict):
            return list(value.items())
        self.problems.append(f"{where}: expected an object {expected}, got {value!r}")
        return []

    def neuron(self, where: str, name: str) -> tuple[str, tuple[str, ...], tuple[str, ...]] | None:
        if name not in self.network.neurons:
            self.problems.append(
                f"{where}: no neuron {name!r} in the network "
                f"(neurons: {_names(self.network.neurons)})"
            )
        return self.type_of(name)

    def check_outputs(self) -> None:
        for out_name, (neuron, field_name) in self.network.outputs.items():
            where = f"outputs.{out_name}"
            target = self.neuron(where, neuron)
            if target and field_name not in target[1]:
                self.problems.append(
                    f"{where}: neuron {neuron!r} (type {target[0]}) has no input {field_name!r} "
                    f"(inputs: {_names(target[1])}); an output reads a neuron's input field"
                )

    def check_input(self) -> None:
        name = self.network.input
        if name is None:
            return
        if (
            self.neuron("input", name)
            and self.registry.get(self.network.neurons[name]).role != "input"
        ):
            self.problems.append(
                f"input: neuron {name!r} has type {self.network.neurons[name]}; "
                "expected a neuron whose type has role 'input' (e.g. type input)"
            )


def validate(network: Network, registry: NeuronRegistry) -> None:
    """Check `network` against `registry`; raise `NetworkValidationError` listing every problem.

    Rules: known neuron types; matrix and fixed are rank-4 objects whose targets are existing
    neurons' *inputs* and whose sources are existing neurons' *outputs*; weights are finite
    numbers; named outputs read existing input fields; the input neuron has role ``input``;
    ``cycles_per_message >= 1``; at most one ``self`` neuron.
    """
    checker = _Checker(network, registry)
    checker.run()
    if checker.problems:
        raise NetworkValidationError(network.name, checker.problems)


SELF = "self"
"""The name `with_self` gives the Self neuron."""


def with_self(network: Network, registry: NeuronRegistry) -> Network:
    """`network` with a Self neuron holding its soft matrix (reference §2.1).

    Adds neuron ``self`` (type ``self``) and the hard weight-1 loop ``self.accum ← self.single``
    that makes it an accumulator, so W changes only through ``self.delta``. A network that
    already has a Self neuron is returned unchanged.
    """
    if network.self_neuron(registry) is not None:
        return network
    if SELF in network.neurons:
        raise NetworkValidationError(
            network.name, [f"neurons.{SELF}: the name is taken by a neuron of another type"]
        )
    loop: VValue = {SELF: {"accum": {SELF: {"single": 1.0}}}}
    return Network(
        name=network.name,
        neurons={**network.neurons, SELF: "self"},
        matrix=network.matrix,
        fixed={**network.fixed, **loop},
        outputs=network.outputs,
        input=network.input,
        cycles_per_message=network.cycles_per_message,
        metadata=network.metadata,
    )
