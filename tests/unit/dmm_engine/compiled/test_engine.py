"""The compiled engine: published traces, Self and re-layout, keys, streams, gradients."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dmm_engine import (
    CompileError,
    Network,
    NeuronRegistry,
    NeuronType,
    cycle,
    initial_state,
    one_hot,
    read_outputs,
    vvalue,
    zoo,
)
from dmm_engine.compiled import CompiledEngine, CompiledMachines, TimerFeed, step_message
from dmm_engine.drivers import MessageFeed, TimerDrivenText
from dmm_engine.streams import InterpreterMachines
from dmm_engine.synthesis import ff3
from tests.helpers import segments
from tests.unit.dmm_engine.test_interpreter import TRACES


def test_published_traces_on_the_compiled_engine(registry: NeuronRegistry) -> None:
    net = zoo.load("duplicate-detector", registry)
    engine = CompiledEngine(net, registry)
    keys = list(TRACES)
    feed = TimerFeed.of_texts(engine, [list(text) for text, _ in keys])
    state = engine.new_state(len(keys))
    traces: list[list[tuple[float, ...]]] = [[] for _ in keys]
    for _ in range(max(cycles for _, cycles in keys)):
        state, out = engine.cycle(state, timer_feed=feed, read=True)
        assert out is not None
        for b in range(len(keys)):
            traces[b].append((float(out["left"][b, 0]), float(out["right"][b, 0])))
    for b, (text, cycles) in enumerate(keys):
        expected = [(a, z, tuple(map(float, v))) for a, z, v in TRACES[(text, cycles)]]
        assert segments(traces[b][:cycles]) == expected, text


def test_ff3_forward_loss_in_float32(registry: NeuronRegistry) -> None:
    # reference §8 D: 434.98627 with the seed's Float32 arithmetic
    teacher = CompiledEngine(zoo.load("duplicate-detector", registry), registry)
    student = CompiledEngine(ff3(zoo.matrix("ff3-initial")), registry, keys=teacher.keys)
    feed = TimerFeed.of_texts(teacher, [list("test string.")])
    s, t, loss = student.new_state(1), teacher.new_state(1), 0.0
    for _ in range(140):
        s, ys = student.cycle(s, timer_feed=feed, read=True)
        t, yt = teacher.cycle(t, timer_feed=feed, read=True)
        assert ys is not None and yt is not None
        loss += sum(float((ys[n][0, 0] - yt[n][0, 0]) ** 2) for n in ("left", "right"))
    assert loss == pytest.approx(434.98627, rel=1e-6)


def _with_self(net: Network) -> Network:
    return dataclasses.replace(
        net,
        neurons={**net.neurons, "self": "self", "norm2": "norm"},
        fixed={**net.fixed, "self": {"accum": {"self": {"single": 1.0}}}},
    )


def test_self_delta_timing_and_relayout_match_the_interpreter(registry: NeuronRegistry) -> None:
    # The delta re-wires `right` from dot to a new neuron norm2 (norm of accum) and drops dot.
    compiled_net = _with_self(zoo.load("duplicate-detector", registry))
    delta = {
        "norm2": {"dict": {"accum": {"dict": 1.0}}},
        "output": {"dict-2": {"dot": {"dot": -1.0}, "norm2": {"norm": 2.0}}},
        "dot": {"dict-1": {"accum": {"dict": -1.0}}, "dict-2": {"eos": {"char": -1.0}}},
    }
    reference_net = dataclasses.replace(
        compiled_net,
        neurons={**compiled_net.neurons, "control": "input"},
        fixed={
            **compiled_net.fixed,
            "self": {"accum": {"self": {"single": 1.0}}, "delta": {"control": {"char": 1.0}}},
        },
    )
    text, emit_at = list(".ab.a"), 23
    engine = CompiledEngine(compiled_net, registry)
    feed = TimerFeed.of_texts(engine, [text])
    state = engine.new_state(1)
    ref = initial_state(reference_net, registry)
    drivers = {"input": TimerDrivenText(text), "control": MessageFeed(delta, emit_at)}
    seen = []
    for c in range(1, 61):
        state, out = engine.cycle(
            state, timer_feed=feed, read=True, self_delta=delta if c == emit_at else None
        )
        ref = cycle(reference_net, registry, ref, drivers)
        want = read_outputs(reference_net, ref)
        assert out is not None
        got = {n: float(out[n][0, 0]) for n in ("left", "right")}
        assert got == {n: vvalue.get_number(want[n]) for n in ("left", "right")}, c
        seen.append(got["right"])
    # emitted at up movement 23: W changes at up movement 24 and is used from down movement 25,
    # where norm2 has just joined (empty output: right = 0); at 26 right = 2·(max count = 1)
    assert seen[21:26] == [1.0, 1.0, 1.0, 0.0, 2.0]
    assert "dot" not in {n for n, _ in engine.layout.scalar_outputs}
    assert ("norm2", "norm") in engine.layout.scalar_outputs


def test_self_links_other_than_the_loop_need_the_interpreter(registry: NeuronRegistry) -> None:
    net = _with_self(zoo.load("duplicate-detector", registry))
    net = dataclasses.replace(
        net,
        fixed={
            **net.fixed,
            "self": {"accum": {"self": {"single": 1.0}}, "delta": {"input": {"char": 1.0}}},
        },
    )
    with pytest.raises(CompileError, match="takes deltas only through"):
        CompiledEngine(net, registry)
    plain = CompiledEngine(zoo.load("duplicate-detector", registry), registry)
    state = plain.new_state(1)
    state, _ = plain.cycle(state, self_delta={"x": {}})
    with pytest.raises(CompileError, match="has no Self neuron"):
        plain.cycle(state)


def test_types_without_a_tensor_form_are_a_compile_error(registry: NeuronRegistry) -> None:
    registry.register(NeuronType("double", ("x",), ("y",), lambda i: {"y": i.get("x", {})}))
    net = Network("d", {"c": "const_1", "d": "double"}, {"d": {"x": {"c": {"const_1": 1.0}}}})
    with pytest.raises(CompileError, match="'double' has no tensor form"):
        CompiledEngine(net, registry)


def test_keys_grow_past_capacity_without_losing_state(registry: NeuronRegistry) -> None:
    net = zoo.load("duplicate-detector", registry)
    machines = CompiledMachines(net, registry)
    reference = InterpreterMachines(net, registry)
    text = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ.a.b"
    assert machines.engine.capacity == 16
    for ch in text:
        got = machines.step([("s", one_hot(ch))])
        want = reference.step([("s", one_hot(ch))])
        assert got == want
    assert machines.engine.capacity == 64
    assert got == [{"left": {":number": 1.0}, "right": {":number": 2.0}}]


def test_snapshots_move_between_engines(registry: NeuronRegistry) -> None:
    net = zoo.load("duplicate-detector", registry)
    compiled, reference = CompiledMachines(net, registry), InterpreterMachines(net, registry)
    for ch in "abca.":
        compiled.step([("s", one_hot(ch))])
    reference.restore("s", compiled.snapshot("s"))
    compiled.restore("t", reference.snapshot("s"))
    assert compiled.snapshot("t") == compiled.snapshot("s")
    for ch in "aab":
        a, b, c = compiled.step([("s", one_hot(ch)), ("t", one_hot(ch))]) + reference.step(
            [("s", one_hot(ch))]
        )
        assert a == b == c
    assert compiled.snapshot("nobody") == {"cycle": 0, "outputs": {}}


def test_streams_join_and_leave(registry: NeuronRegistry) -> None:
    net = zoo.load("duplicate-detector", registry)
    machines = CompiledMachines(net, registry)
    for i in range(40):  # past the initial row capacity of 16
        machines.step([(f"s{i}", one_hot("x"))])
    machines.step([(f"s{i}", one_hot("x")) for i in range(40)])
    assert machines.step([("s3", one_hot("x"))]) == [
        {"left": {":number": 2.0}, "right": {":number": 0.0}}
    ]
    machines.drop("s3")
    assert "s3" not in machines.streams() and len(machines.streams()) == 39
    assert machines.step([("s3", one_hot("x"))]) == [
        {"left": {":number": 0.0}, "right": {":number": 0.0}}
    ]
    assert machines.state_bytes() > 0


def test_nested_input_values_are_rejected(registry: NeuronRegistry) -> None:
    engine = CompiledEngine(zoo.load("duplicate-detector", registry), registry)
    with pytest.raises(CompileError, match="takes flat V-values; key 'a' holds a nested value"):
        engine.dense_feed([{"a": {"b": 1.0}}])


def test_gradients_flow_to_the_soft_matrix_and_match_finite_differences(
    registry: NeuronRegistry,
) -> None:
    teacher = CompiledEngine(
        zoo.load("duplicate-detector", registry), registry, dtype=torch.float64
    )
    student = CompiledEngine(
        ff3(zoo.matrix("sparse20-after-100")),
        registry,
        keys=teacher.keys,
        dtype=torch.float64,
        grad_mode="full",
    )
    feed = TimerFeed.of_texts(teacher, [list("test string.")])

    def loss(weights: torch.Tensor) -> torch.Tensor:
        blocks = student.blocks_of(student.dense_with(weights))
        s, t, total = (
            student.new_state(1),
            teacher.new_state(1),
            torch.zeros((), dtype=torch.float64),
        )
        for _ in range(60):
            s, ys = student.cycle(s, timer_feed=feed, read=True, matrix=blocks)
            t, yt = teacher.cycle(t, timer_feed=feed, read=True)
            assert ys is not None and yt is not None
            total = total + sum(((ys[n][:, 0] - yt[n][:, 0]) ** 2).sum() for n in ("left", "right"))
        return total

    weights = student.soft_weights.clone().requires_grad_(True)
    value = loss(weights)
    (grad,) = torch.autograd.grad(value, weights)
    assert grad.abs().sum() > 0
    h = 1e-6
    for i in range(len(weights)):
        bump = torch.zeros_like(weights)
        bump[i] = h
        numeric = (loss(weights.detach() + bump) - loss(weights.detach() - bump)) / (2 * h)
        assert float(grad[i]) == pytest.approx(float(numeric), rel=1e-4, abs=1e-6), (
            student.soft_links[i]
        )


def test_step_message_emits_a_delta_so_the_whole_next_message_uses_it(
    registry: NeuronRegistry,
) -> None:
    net = _with_self(zoo.load("duplicate-detector", registry))
    engine = CompiledEngine(net, registry)
    state = engine.new_state(1)
    double_right = {"output": {"dict-2": {"dot": {"dot": 1.0}}}}
    state, out = step_message(
        engine, state, engine.dense_feed([one_hot(".")]), self_delta=double_right
    )
    assert float(out["right"][0, 0]) == 1.0  # this message: old W throughout
    state, out = step_message(engine, state, engine.dense_feed([one_hot(".")]))
    assert float(out["right"][0, 0]) == 4.0  # next message: new W from its first cycle (2 · 2)


def test_readout_inputs_never_alias_main_inputs(registry: NeuronRegistry) -> None:
    # regression (found by the equivalence property test): the output neuron's inputs are
    # numbered in their own space and once shadowed the alias of a two-neuron norm block
    net = Network(
        "two-norms",
        {"timer": "timer", "input": "input", "output": "output", "n0": "norm", "n1": "norm"},
        {
            "n0": {"dict": {"input": {"char": 1.0}}},
            "n1": {"dict": {"input": {"char": 1.0}}},
            "output": {"dict-1": {"input": {"char": 1.0}}},
        },
        {
            "timer": {"timer": {"timer": {"timer": 1.0}}},
            "input": {"timer": {"timer": {"timer": 1.0}}},
        },
        outputs={"probe": ("n0", "dict")},
        input="input",
    )
    compiled, reference = CompiledMachines(net, registry), InterpreterMachines(net, registry)
    for ch in "ab":
        assert compiled.step([("s", one_hot(ch))]) == reference.step([("s", one_hot(ch))])
