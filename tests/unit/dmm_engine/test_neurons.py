"""Built-in neuron functions (reference §3) and the registry."""

from __future__ import annotations

import pytest

from dmm_engine import DmmError, NeuronRegistry, NeuronType, UnknownNeuronTypeError, neurons, vvalue


def n(x: float) -> vvalue.VValue:
    return vvalue.number(x)


def test_dmm_lite_functions() -> None:
    assert neurons.timer({"timer": n(4)}) == {"timer": n(5)}
    assert neurons.timer({}) == {"timer": n(1)}
    assert neurons.const_1({}) == {"const_1": n(1)}
    assert neurons.eos({}) == {"char": {".": 1.0}}
    assert neurons.accum({"dict-1": {"a": 1.0}, "dict-2": {"a": 2.0, "b": 1.0}}) == {
        "dict": {"a": 3.0, "b": 1.0}
    }
    assert neurons.norm({"dict": {"a": -3.0, "b": 2.0}}) == {"norm": n(3)}
    assert neurons.norm({}) == {"norm": n(0)}
    assert neurons.compare({"dict-1": n(3), "dict-2": n(1)}) == {"true": n(2), "false": n(0)}
    assert neurons.compare({"dict-2": n(1)}) == {"true": n(0), "false": n(1)}
    assert neurons.output({"dict-1": n(1)}) == {}
    assert neurons.silent_input({"timer": n(3)}) == {"char": {}}


def test_dot_has_the_plus_minus_4_governor() -> None:
    big = {"dict-1": {"a": 3.0, "b": 2.0}, "dict-2": {"a": 1.0, "b": 1.0, "c": 9.0}}
    assert neurons.dot(big) == {"dot": n(4)}
    assert neurons.dot_unclipped(big) == {"dot": n(5)}
    assert neurons.dot({"dict-1": {"a": -3.0}, "dict-2": {"a": 2.0}}) == {"dot": n(-4)}
    assert neurons.dot({"dict-1": {"a": 1.5}, "dict-2": {"a": 2.0}}) == {"dot": n(3)}


def test_dmm_1_functions() -> None:
    v = {"a": {"b": 1.0}}
    assert neurons.identity({"single": v}) == {"single": v}
    assert neurons.max_norm({"single": {"a": {"b": -7.0}}}) == {"single": n(7)}
    assert neurons.mult_mask({"mask": {"a": 2.0}, "main": v}) == {"single": {"a": {"b": 2.0}}}
    assert neurons.lin_comb({"mask": {"a": 2.0}, "main": v}) == {"single": {"b": 2.0}}
    assert neurons.plus({"accum": {"x": 1.0}, "delta": {"x": 1.0}}) == {"single": {"x": 2.0}}


def test_registry(registry: NeuronRegistry) -> None:
    assert "accum" in registry and "self" in registry and "lin-comb" in registry
    assert registry.get("self").role == "self"
    assert registry.get("input").role == "input"
    assert set(registry) >= {
        "timer",
        "input",
        "const_1",
        "eos",
        "accum",
        "norm",
        "dot",
        "compare",
        "output",
        "identity",
        "plus",
        "max-norm",
        "mult-mask",
        "lin-comb",
        "self",
    }
    with pytest.raises(UnknownNeuronTypeError, match=r"unknown neuron type 'nope' \(known: accum,"):
        registry.get("nope")
    with pytest.raises(DmmError, match="already registered"):
        registry.register(registry.get("accum"))


def test_registering_a_new_type_as_documented(registry: NeuronRegistry) -> None:
    # the example from dmm_engine.neurons' docstring
    def double(inputs: dict) -> dict:
        return {"y": vvalue.scale(2.0, inputs.get("x", {}))}

    registry.register(
        NeuronType("double", inputs=("x",), outputs=("y",), function=double, doc="y = 2·x")
    )
    assert registry.get("double").function({"x": {"a": 1.5}}) == {"y": {"a": 3.0}}
    registry.register(NeuronType("double", ("x",), ("y",), double), replace=True)
