"""The reference interpreter against the published traces (§4.4, §8 B), Self (§2.1, §8 H), §8 D."""

from __future__ import annotations

import dataclasses

import pytest

from dmm_engine import (
    DmmError,
    Network,
    NeuronRegistry,
    cycle,
    initial_state,
    read_outputs,
    run_timer_driven,
    step_message,
    vvalue,
    zoo,
)
from dmm_engine.synthesis import ff3
from tests.helpers import numbers, segments

# reference §4.4 [verified]: (first cycle, last cycle, (left, right))
TRACES = {
    ("test string.", 150): [
        (1, 34, (0, 0)),
        (35, 64, (1, 0)),
        (65, 113, (2, 0)),
        (114, 123, (2, 1)),
        (124, 133, (2, 2)),
        (134, 143, (2, 3)),
        (144, 144, (2, 4)),
        (145, 150, (3, 4)),
    ],
    ("tets string.", 140): [
        (1, 24, (0, 0)),
        (25, 64, (1, 0)),
        (65, 113, (2, 0)),
        (114, 123, (2, 1)),
        (124, 133, (2, 2)),
        (134, 140, (2, 3)),
    ],
    ("teest string.", 150): [
        (1, 24, (0, 0)),
        (25, 74, (1, 0)),
        (75, 123, (2, 0)),
        (124, 133, (2, 1)),
        (134, 143, (2, 2)),
        (144, 150, (2, 3)),
    ],
    ("tets. str.ingtb str.ingtb", 250): [
        (1, 24, (0, 0)),
        (25, 43, (1, 0)),
        (44, 74, (1, 1)),
        (75, 93, (2, 1)),
        (94, 134, (2, 2)),
        (135, 174, (3, 2)),
        (175, 193, (4, 2)),
        (194, 234, (4, 3)),
        (235, 250, (5, 3)),
    ],
}


def _trace(
    network: Network, registry: NeuronRegistry, text: str, cycles: int
) -> list[tuple[float, ...]]:
    return [numbers(o) for o in run_timer_driven(network, registry, list(text), cycles)]


@pytest.mark.parametrize(("text", "cycles"), list(TRACES))
def test_handcrafted_traces_every_cycle(registry: NeuronRegistry, text: str, cycles: int) -> None:
    net = zoo.load("duplicate-detector", registry)
    expected = TRACES[(text, cycles)]
    assert segments(_trace(net, registry, text, cycles)) == [
        (a, b, tuple(map(float, v))) for a, b, v in expected
    ]


def test_unclipped_dot_trace(registry: NeuronRegistry) -> None:
    # reference §4.4, variadic-dp-v0-0-1.jl: … 145–153 (3,4); 154 (3,5); 155–160 (4,5)
    net = zoo.load("duplicate-detector", registry)
    net = dataclasses.replace(net, neurons={**net.neurons, "dot": "dot-unclipped"})
    tail = segments(_trace(net, registry, "test string.", 160))[-3:]
    assert tail == [(145, 153, (3.0, 4.0)), (154, 154, (3.0, 5.0)), (155, 160, (4.0, 5.0))]


def test_published_state_at_cycle_150(registry: NeuronRegistry) -> None:
    # reference §4.4: at cycle 150 accum = {n1 g1 e1 ' '1 t3 r1 s2 .4 i1}, norm 4, compare.true 3, dot 4
    net = zoo.load("duplicate-detector", registry)
    net = dataclasses.replace(net, neurons={**net.neurons, "dot": "dot-unclipped"})
    from dmm_engine.drivers import TimerDrivenText

    state = initial_state(net, registry)
    for _ in range(150):
        state = cycle(net, registry, state, TimerDrivenText(list("test string.")))
    assert state.outputs["accum"]["dict"] == {
        "n": 1,
        "g": 1,
        "e": 1,
        " ": 1,
        "t": 3,
        "r": 1,
        "s": 2,
        ".": 4,
        "i": 1,
    }
    assert state.outputs["norm"]["norm"] == {":number": 4.0}
    assert state.outputs["compare"]["true"] == {":number": 3.0}
    assert state.outputs["dot"]["dot"] == {":number": 4.0}


def _teacher_loss(
    student: Network, registry: NeuronRegistry, text: str, cycles: int
) -> tuple[float, float]:
    teacher = zoo.load("duplicate-detector", registry)
    errors = [
        (a - b) ** 2
        for s, t in zip(
            _trace(student, registry, text, cycles),
            _trace(teacher, registry, text, cycles),
            strict=True,
        )
        for a, b in zip(s, t, strict=True)
    ]
    return sum(errors), max(errors)


def test_ff3_initial_matrix_forward_loss(registry: NeuronRegistry) -> None:
    # reference §8 D: 434.98627 (Float32 in the seed; this interpreter computes in float64)
    loss, _ = _teacher_loss(ff3(zoo.matrix("ff3-initial")), registry, "test string.", 140)
    assert loss == pytest.approx(434.98627, rel=1e-5)


@pytest.mark.parametrize(
    ("text", "window", "prereg", "max_element"),
    [  # reference §5.8 (sparse20-after-100, 19 links)
        ("test string.", 140, 0.0016100588, 0.0005265353),
        ("test string.", 150, 0.6776272, 0.11265322),
        ("tets string.", 140, 0.0014382894, 0.0005265353),
        ("tets. str.ingtb str.ingtb", 180, 8.995915, 0.96731496),
    ],
)
def test_sparse20_generalisation_table(
    registry: NeuronRegistry, text: str, window: int, prereg: float, max_element: float
) -> None:
    loss, worst = _teacher_loss(ff3(zoo.matrix("sparse20-after-100")), registry, text, window)
    # float64 here vs Float32 in the seed: tiny losses agree to ~1e-4 relative
    assert loss == pytest.approx(prereg, rel=2e-4)
    assert worst == pytest.approx(max_element, rel=2e-4)


def test_inputs_are_rebuilt_from_outputs_alone(registry: NeuronRegistry) -> None:
    net = zoo.load("duplicate-detector", registry)
    state = initial_state(net, registry)
    state = dataclasses.replace(state, inputs={"const_1": {"stale": {"x": 1.0}}})
    state = cycle(net, registry, state)
    assert state.inputs["const_1"] == {}  # no row: empty, as after the reset (§9.2)
    assert state.inputs["norm"] == {"dict": {}}  # a row whose source is still empty


# --- Self: the Oct-19-2016 "wave" (reference §2.1, §8 H) -------------------------------------


def _update(i: int) -> vvalue.VValue:
    j = i % 3 + 1
    return {"self": {"delta": {f"update-{i}": {"single": -1.0}, f"update-{j}": {"single": 1.0}}}}


def _wave_network() -> Network:
    hooks = {f"update-{i}": {"single": {f"update-{i}": {"single": 1.0}}} for i in (1, 2, 3)}
    matrix = {
        "self": {"accum": {"self": {"single": 1.0}}, "delta": {"update-1": {"single": 1.0}}},
        **hooks,
    }
    return Network(
        "wave", {"self": "self", **{f"update-{i}": "identity" for i in (1, 2, 3)}}, matrix
    )


def _delta_source(state_matrix: vvalue.VValue) -> str:
    row = state_matrix["self"]["delta"]  # type: ignore[index]
    active = [name for name, outs in row.items() if outs["single"] == 1.0]  # type: ignore[index,union-attr]
    assert len(active) == 1, row
    return active[0]


def test_self_referential_wave(registry: NeuronRegistry) -> None:
    net = _wave_network()
    outputs = {f"update-{i}": {"single": _update(i)} for i in (1, 2, 3)}
    state = initial_state(net, registry, outputs)
    sources = [_delta_source(state.outputs["self"]["single"])]
    for _ in range(7):
        state = cycle(net, registry, state)
        sources.append(_delta_source(state.outputs["self"]["single"]))
    assert sources == [
        "update-1",
        "update-2",
        "update-3",
        "update-1",
        "update-2",
        "update-3",
        "update-1",
        "update-2",
    ]
    # Self sums like DMM 1.0, with zero purging: the old sources are gone, not explicit zeros
    assert set(state.outputs["self"]["single"]["self"]["delta"]) == {"update-2"}  # type: ignore[index]


def test_update_emitted_at_t_is_first_used_at_down_movement_t_plus_2(
    registry: NeuronRegistry,
) -> None:
    # The input neuron emits X at up movement t=3; X adds the link probe.single ← const_1.const_1.
    # probe's input (built by down movement n from W_{n-1}) must change first at cycle t+2 = 5.
    net = Network(
        "t+2",
        {"self": "self", "input": "input", "const_1": "const_1", "probe": "identity"},
        matrix={"self": {"delta": {"input": {"char": 1.0}}}},
        fixed={
            "self": {"accum": {"self": {"single": 1.0}}},
            "input": {"timer": {"const_1": {"const_1": 0.0}}},
            "probe": {"single": {"probe": {"single": 0.0}}},
        },
        outputs={"probe": ("probe", "single")},
        input="input",
    )
    x = {"probe": {"single": {"const_1": {"const_1": 1.0}}}}
    from dmm_engine.drivers import MessageFeed

    state = initial_state(net, registry)
    seen = []
    for _ in range(6):
        state = cycle(net, registry, state, MessageFeed(x, first_cycle=3))
        seen.append(vvalue.get_number(read_outputs(net, state)["probe"]))
    assert seen == [0.0, 0.0, 0.0, 0.0, 1.0, 1.0]


def test_a_neuron_that_loses_every_link_goes_inactive(registry: NeuronRegistry) -> None:
    # X removes probe's only link: from then on probe is inactive and its state is dropped
    net = Network(
        "off",
        {"self": "self", "input": "input", "const_1": "const_1", "probe": "identity"},
        matrix={
            "self": {"delta": {"input": {"char": 1.0}}},
            "probe": {"single": {"const_1": {"const_1": 1.0}}},
        },
        fixed={
            "self": {"accum": {"self": {"single": 1.0}}},
            "input": {"timer": {"const_1": {"const_1": 0.0}}},
        },
        input="input",
    )
    x = {"probe": {"single": {"const_1": {"const_1": -1.0}}}}
    from dmm_engine.drivers import MessageFeed
    from dmm_engine.interpreter import active_neurons

    state = initial_state(net, registry)
    alive = []
    for _ in range(4):
        state = cycle(net, registry, state, MessageFeed(x, first_cycle=1))
        alive.append("probe" in state.outputs)
    # X emitted at up movement 1 removes the link in W_2, used from down movement 3
    assert alive == [True, True, False, False]
    assert "probe" not in state.inputs
    assert "probe" not in active_neurons(net, state.outputs["self"]["single"])


def test_runtime_link_to_an_undeclared_neuron_is_an_error(registry: NeuronRegistry) -> None:
    net = Network("bad", {"const_1": "const_1"}, {"ghost": {"x": {"const_1": {"const_1": 1.0}}}})
    with pytest.raises(DmmError, match="links neuron 'ghost', which the network does not declare"):
        cycle(net, registry, initial_state(net, registry))


def test_step_message_runs_cycles_per_message(registry: NeuronRegistry) -> None:
    net = zoo.load("duplicate-detector", registry)
    state = step_message(net, registry, initial_state(net, registry), {"a": 1.0})
    assert state.cycle == net.cycles_per_message == 10
    assert state.outputs["accum"]["dict"] == {"a": 1.0}
