"""Neuron types and the registry that names them (reference §3).

A neuron type declares its input fields, its output fields and one function from input
fields to output fields; every field holds a V-value. The registry is an explicit object:
`default_registry()` builds a fresh one holding the built-in types, and users add their own.

Example — a neuron that doubles whatever arrives on its ``x`` input::

    from dmm_engine import NeuronType, default_registry, vvalue

    def double(inputs):
        return {"y": vvalue.scale(2.0, inputs.get("x", {}))}

    registry = default_registry()
    registry.register(NeuronType("double", inputs=("x",), outputs=("y",), function=double,
                                 doc="y = 2·x"))
    # a network may now declare {"neurons": {"d": "double", ...}} and link d.x / d.y
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from dmm_engine import vvalue
from dmm_engine.errors import DmmError, UnknownNeuronTypeError
from dmm_engine.vvalue import VValue

Fields: TypeAlias = dict[str, VValue]
"""A neuron's inputs or outputs: field name → V-value (a missing field is ``{}``)."""

NeuronFunction: TypeAlias = Callable[[Mapping[str, VValue]], Fields]
Role = Literal["plain", "input", "self"]

DOT_GOVERNOR = 4.0
"""The dot neuron clips its result to ±4 (reference §3.1: the "governor" of v0-1)."""


@dataclass(frozen=True, slots=True)
class NeuronType:
    """A named neuron type.

    Attributes:
        name: the type name used in model files (``"accum"``).
        inputs: the input field names, in a fixed order.
        outputs: the output field names, in a fixed order.
        function: the up-movement function, input fields → output fields.
        doc: one line that says what it computes.
        role: ``"input"`` types get their output from the input driver, not from `function`;
            the ``"self"`` type's output is the network matrix (reference §2.1).
    """

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    function: NeuronFunction
    doc: str = ""
    role: Role = "plain"


@dataclass(slots=True)
class NeuronRegistry:
    """Neuron types by name. Build one with `default_registry()` and `register` your own."""

    _types: dict[str, NeuronType] = field(default_factory=dict)

    def register(self, neuron_type: NeuronType, *, replace: bool = False) -> None:
        """Add `neuron_type`; registering an existing name again needs ``replace=True``."""
        if neuron_type.name in self._types and not replace:
            raise DmmError(
                f"neuron type {neuron_type.name!r} is already registered; "
                "pass replace=True to override it"
            )
        self._types[neuron_type.name] = neuron_type

    def get(self, name: str) -> NeuronType:
        """The type called `name`; raises `UnknownNeuronTypeError` listing the known types."""
        try:
            return self._types[name]
        except KeyError:
            known = ", ".join(sorted(self._types))
            raise UnknownNeuronTypeError(f"unknown neuron type {name!r} (known: {known})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._types))


def _n(inputs: Mapping[str, VValue], name: str) -> float:
    return vvalue.get_number(inputs.get(name))


def _relu(x: float) -> float:
    return x if x > 0.0 else 0.0


# --- DMM Lite (reference §3.1) ----------------------------------------------------------------


def timer(inputs: Mapping[str, VValue]) -> Fields:
    return {"timer": vvalue.number(_n(inputs, "timer") + 1.0)}


def silent_input(inputs: Mapping[str, VValue]) -> Fields:
    # The driver supplies an input neuron's output; with no driver it emits nothing.
    return {"char": {}}


def const_1(inputs: Mapping[str, VValue]) -> Fields:
    return {"const_1": vvalue.number(1.0)}


def eos(inputs: Mapping[str, VValue]) -> Fields:
    return {"char": {".": 1.0}}


def accum(inputs: Mapping[str, VValue]) -> Fields:
    return {"dict": vvalue.add(inputs.get("dict-1", {}), inputs.get("dict-2", {}))}


def norm(inputs: Mapping[str, VValue]) -> Fields:
    return {"norm": vvalue.number(vvalue.max_norm(inputs.get("dict", {})))}


def _dot(inputs: Mapping[str, VValue]) -> float:
    return vvalue.dot(inputs.get("dict-1", {}), inputs.get("dict-2", {}))


def dot(inputs: Mapping[str, VValue]) -> Fields:
    s = _dot(inputs)
    clipped = max(-DOT_GOVERNOR, min(DOT_GOVERNOR, s))
    return {"dot": vvalue.number(clipped)}


def dot_unclipped(inputs: Mapping[str, VValue]) -> Fields:
    return {"dot": vvalue.number(_dot(inputs))}


def compare(inputs: Mapping[str, VValue]) -> Fields:
    n1, n2 = _n(inputs, "dict-1"), _n(inputs, "dict-2")
    return {"true": vvalue.number(_relu(n1 - n2)), "false": vvalue.number(_relu(n2 - n1))}


def output(inputs: Mapping[str, VValue]) -> Fields:
    # The machine's result is read from this neuron's *input* after the down movement.
    return {}


# --- DMM 1.0 (reference §3.2) -----------------------------------------------------------------


def identity(inputs: Mapping[str, VValue]) -> Fields:
    return {"single": inputs.get("single", {})}


def plus(inputs: Mapping[str, VValue]) -> Fields:
    return {"single": vvalue.add(inputs.get("accum", {}), inputs.get("delta", {}))}


def max_norm(inputs: Mapping[str, VValue]) -> Fields:
    return {"single": vvalue.number(vvalue.max_norm(inputs.get("single", {})))}


def less_or_equal(inputs: Mapping[str, VValue]) -> Fields:
    ok = vvalue.less_or_equal(inputs.get("left", {}), inputs.get("right", {}))
    return {"true-channel": vvalue.number(float(ok)), "false-channel": vvalue.number(float(not ok))}


def mult_mask(inputs: Mapping[str, VValue]) -> Fields:
    return {"single": vvalue.mult_mask(inputs.get("mask", {}), inputs.get("main", {}))}


def lin_comb(inputs: Mapping[str, VValue]) -> Fields:
    return {"single": vvalue.lin_comb(inputs.get("mask", {}), inputs.get("main", {}))}


def self_update(inputs: Mapping[str, VValue]) -> Fields:
    # DMM 1.0 sums with zero purging (reference §1.2): a delta that cancels a link removes it,
    # so the neurons it leaves without links go inactive.
    return {
        "single": vvalue.purge_zeros(vvalue.add(inputs.get("accum", {}), inputs.get("delta", {})))
    }


BUILTIN_TYPES: tuple[NeuronType, ...] = (
    NeuronType("timer", ("timer",), ("timer",), timer, "timer = N(timer) + 1"),
    NeuronType("input", ("timer",), ("char",), silent_input, "the input driver's symbol", "input"),
    NeuronType("const_1", (), ("const_1",), const_1, "const_1 = 1"),
    NeuronType("eos", (), ("char",), eos, "char = one-hot '.' (end of sentence), every cycle"),
    NeuronType("accum", ("dict-1", "dict-2"), ("dict",), accum, "dict = dict-1 + dict-2"),
    NeuronType("norm", ("dict",), ("norm",), norm, "norm = max |leaf| of dict (0 if empty)"),
    NeuronType("dot", ("dict-1", "dict-2"), ("dot",), dot, "dot = clip(dict-1·dict-2, ±4)"),
    NeuronType(
        "dot-unclipped", ("dict-1", "dict-2"), ("dot",), dot_unclipped, "dot = dict-1·dict-2"
    ),
    NeuronType(
        "compare",
        ("dict-1", "dict-2"),
        ("true", "false"),
        compare,
        "true = relu(N(dict-1) − N(dict-2)), false = relu(N(dict-2) − N(dict-1))",
    ),
    NeuronType("output", ("dict-1", "dict-2"), (), output, "none: its inputs are the result"),
    NeuronType("identity", ("single",), ("single",), identity, "single = single"),
    NeuronType(
        "plus", ("accum", "delta"), ("single",), plus, "single = accum + delta (DMM 1.0 accum)"
    ),
    NeuronType("max-norm", ("single",), ("single",), max_norm, "single = max |leaf| of single"),
    NeuronType(
        "less-or-equal",
        ("left", "right"),
        ("true-channel", "false-channel"),
        less_or_equal,
        "true-channel = 1 iff every leaf of right − left ≥ 0, else false-channel = 1",
    ),
    NeuronType("mult-mask", ("mask", "main"), ("single",), mult_mask, "single = mask ⊙ main"),
    NeuronType("lin-comb", ("mask", "main"), ("single",), lin_comb, "single = Σ mask ⊙ main"),
    NeuronType(
        "self",
        ("accum", "delta"),
        ("single",),
        self_update,
        "single = accum + delta, zero links dropped; its output is the network matrix W",
        "self",
    ),
)


def default_registry() -> NeuronRegistry:
    """A new registry holding the built-in DMM Lite, DMM 1.0 and `self` types."""
    registry = NeuronRegistry()
    for neuron_type in BUILTIN_TYPES:
        registry.register(neuron_type)
    return registry
