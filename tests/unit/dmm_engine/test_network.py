"""Network validation: every problem is reported with its path and what was expected."""

from __future__ import annotations

import math

import pytest

from dmm_engine import Network, NetworkValidationError, NeuronRegistry, count_links, validate, zoo


def _network(**changes: object) -> Network:
    base: dict[str, object] = {
        "name": "t",
        "neurons": {"accum": "accum", "input": "input", "output": "output"},
        "matrix": {
            "accum": {"dict-1": {"accum": {"dict": 1.0}}, "dict-2": {"input": {"char": 1.0}}}
        },
        "outputs": {"left": ("output", "dict-1")},
        "input": "input",
    }
    base.update(changes)
    return Network(**base)  # type: ignore[arg-type]


def _problems(network: Network, registry: NeuronRegistry) -> list[str]:
    with pytest.raises(NetworkValidationError) as info:
        validate(network, registry)
    return info.value.problems


def test_a_valid_network_passes(registry: NeuronRegistry) -> None:
    validate(_network(), registry)
    validate(zoo.load("duplicate-detector", registry), registry)


def test_unknown_input_field_names_path_and_expected_fields(registry: NeuronRegistry) -> None:
    net = _network(matrix={"accum": {"dict-3": {"accum": {"dict": 1.0}}}})
    assert _problems(net, registry) == [
        "matrix.accum.dict-3: neuron 'accum' (type accum) has no input 'dict-3' (inputs: dict-1, dict-2)"
    ]


def test_unknown_output_field_and_unknown_neurons(registry: NeuronRegistry) -> None:
    net = _network(
        matrix={
            "ghost": {"x": {"accum": {"out": 1.0}}},
            "accum": {"dict-1": {"nobody": {"dict": 1.0}}},
        }
    )
    problems = _problems(net, registry)
    assert (
        "matrix.ghost: no neuron 'ghost' in the network (neurons: accum, input, output)" in problems
    )
    assert (
        "matrix.ghost.x.accum.out: neuron 'accum' (type accum) has no output 'out' (outputs: dict)"
        in problems
    )
    assert (
        "matrix.accum.dict-1.nobody: no neuron 'nobody' in the network (neurons: accum, input, output)"
        in problems
    )


@pytest.mark.parametrize(
    ("matrix", "expected"),
    [
        (
            {"accum": {"dict-1": {"accum": {"dict": math.nan}}}},
            "matrix.accum.dict-1.accum.dict: weight nan is not finite",
        ),
        (
            {"accum": {"dict-1": {"accum": {"dict": "1"}}}},
            "matrix.accum.dict-1.accum.dict: expected a link weight (a number), got '1'",
        ),
        (
            {"accum": {"dict-1": 1.0}},
            "matrix.accum.dict-1: expected an object {from_neuron: {...}}, got 1.0",
        ),
        ({"accum": 2.0}, "matrix.accum: expected an object {to_input: {...}}, got 2.0"),
        (
            {"accum": {"dict-1": {"accum": 3.0}}},
            "matrix.accum.dict-1.accum: expected an object {from_output: weight}, got 3.0",
        ),
    ],
)
def test_malformed_weights_and_levels(
    registry: NeuronRegistry, matrix: dict, expected: str
) -> None:
    assert expected in _problems(_network(matrix=matrix), registry)


def test_links_into_outputs_or_from_inputs_are_type_errors(registry: NeuronRegistry) -> None:
    # a link must go from an output field to an input field
    net = _network(matrix={"accum": {"dict": {"accum": {"dict-1": 1.0}}}})
    assert _problems(net, registry) == [
        "matrix.accum.dict: neuron 'accum' (type accum) has no input 'dict' (inputs: dict-1, dict-2)",
        "matrix.accum.dict.accum.dict-1: neuron 'accum' (type accum) has no output 'dict-1' (outputs: dict)",
    ]


def test_neurons_outputs_input_and_cycles(registry: NeuronRegistry) -> None:
    net = _network(
        neurons={
            "accum": "accum",
            "input": "accum",
            "output": "output",
            "x.y": "nonsense",
            "s1": "self",
            "s2": "self",
        },
        outputs={"left": ("output", "dict-9")},
        cycles_per_message=0,
        matrix={},
    )
    problems = _problems(net, registry)
    assert any(
        p.startswith("neurons.x.y: a neuron name must be non-empty, without '.'") for p in problems
    )
    assert any(
        p.startswith("neurons.x.y: unknown neuron type 'nonsense' (known: accum,") for p in problems
    )
    assert "neurons: at most one neuron of type self, found s1, s2" in problems
    assert any(
        p.startswith("outputs.left: neuron 'output' (type output) has no input 'dict-9'")
        for p in problems
    )
    assert any(p.startswith("input: neuron 'input' has type accum; expected") for p in problems)
    assert "cycles_per_message: expected an integer >= 1, got 0" in problems


def test_error_message_lists_every_problem(registry: NeuronRegistry) -> None:
    net = _network(matrix={"a": {}, "b": {}})
    with pytest.raises(NetworkValidationError, match=r"network 't' is invalid \(2 problem\(s\)\)"):
        validate(net, registry)


def test_count_links(registry: NeuronRegistry) -> None:
    assert count_links(zoo.load("duplicate-detector", registry).matrix) == 11
    assert count_links(zoo.matrix("ff3-initial")) == 1486
    assert count_links(zoo.matrix("sparse20-after-100")) == 19
