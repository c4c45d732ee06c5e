"""Hot swap through Self on both engines: same tick, new neurons, all-or-nothing updates."""

from __future__ import annotations

import dataclasses

import pytest

from dmm_engine import DmmError, NetworkValidationError, NeuronRegistry, one_hot, vvalue, zoo
from dmm_engine.compiled import CompiledMachines
from dmm_engine.network import with_self
from dmm_engine.streams import InterpreterMachines, StreamMachines

# right := 2·max-norm of the counts (a new neuron) instead of the count of '.'
DELTA = {
    "norm2": {"dict": {"accum": {"dict": 1.0}}},
    "output": {"dict-2": {"dot": {"dot": -1.0}, "norm2": {"norm": 2.0}}},
}


def _both(registry: NeuronRegistry) -> list[StreamMachines]:
    net = with_self(zoo.load("duplicate-detector", registry), registry)
    return [InterpreterMachines(net, registry), CompiledMachines(net, registry)]


def _right(machines: StreamMachines, stream: str, symbol: str) -> float:
    (out,) = machines.step([(stream, one_hot(symbol))])
    return vvalue.get_number(out["right"])


def test_engines_agree_on_the_message_where_an_update_takes_effect(
    registry: NeuronRegistry,
) -> None:
    for machines in _both(registry):
        before = [_right(machines, s, ch) for ch in "ab." for s in ("x", "y")]
        assert before == [0, 0, 0, 0, 1, 1]
        machines.apply_delta(DELTA, {"norm2": "norm"})
        # the next message of every stream runs wholly on the new W: right = 2·(max count)
        assert [_right(machines, "x", "a"), _right(machines, "x", "a")] == [4.0, 6.0]
        assert [
            _right(machines, "y", "b"),
            _right(machines, "y", "."),
            _right(machines, "y", "b"),
        ] == [4.0, 4.0, 6.0]
        assert "norm2" in machines.matrix()


def test_snapshots_leave_the_shared_matrix_out(registry: NeuronRegistry) -> None:
    for machines in _both(registry):
        machines.step([("s", one_hot("a"))])
        assert "self" not in machines.snapshot("s")["outputs"]


@pytest.mark.parametrize(
    ("delta", "neurons", "error"),
    [
        ({"ghost": {"dict": {"accum": {"dict": 1.0}}}}, None, "no neuron 'ghost'"),
        ({"norm": {"dict-9": {"accum": {"dict": 1.0}}}}, None, "has no input 'dict-9'"),
        (
            {"norm2": {"dict": {"accum": {"dict": 1.0}}}},
            {"norm2": "nonsense"},
            "unknown neuron type",
        ),
    ],
)
def test_a_bad_delta_changes_nothing(
    registry: NeuronRegistry, delta: vvalue.VValue, neurons: dict[str, str] | None, error: str
) -> None:
    for machines in _both(registry):
        for ch in "aa.":
            machines.step([("s", one_hot(ch))])
        before = machines.matrix()
        with pytest.raises((NetworkValidationError, DmmError), match=error):
            machines.apply_delta(delta, neurons)
        assert machines.matrix() == before
        assert machines.step([("s", one_hot("a"))]) == [
            {"left": {":number": 2.0}, "right": {":number": 1.0}}
        ]


def test_with_self_adds_the_accumulator_loop_once(registry: NeuronRegistry) -> None:
    net = zoo.load("duplicate-detector", registry)
    selfish = with_self(net, registry)
    assert selfish.neurons["self"] == "self"
    assert selfish.fixed["self"] == {"accum": {"self": {"single": 1.0}}}
    assert with_self(selfish, registry) is selfish
    taken = dataclasses.replace(net, neurons={**net.neurons, "self": "norm"})
    with pytest.raises(NetworkValidationError, match="the name is taken"):
        with_self(taken, registry)
