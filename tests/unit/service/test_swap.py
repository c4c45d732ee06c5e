"""Hot swap's pure core on real machines of both engines: hostile updates, deltas, the tick."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from dmm_engine import NeuronRegistry, one_hot, zoo
from dmm_engine.compiled import CompiledMachines
from dmm_engine.network import with_self
from dmm_engine.streams import InterpreterMachines, StreamMachines
from service.batch import process_batch
from service.codec import InputRecord, OutputRecord
from service.settings import ControlSettings, LimitSettings
from service.state import StreamState
from service.swap import SwapRules, handle_update
from tests.unit.service.swap_cases import (
    KEY,
    MAX_SOFT_LINKS,
    MODEL,
    NORM2_DELTA,
    NORM2_NEURONS,
    HostileCase,
    hostile_cases,
    message,
    update_fields,
)

Engine = Callable[[NeuronRegistry], StreamMachines]
CONTROL = ControlSettings(signing_key=KEY.decode(), max_soft_links=MAX_SOFT_LINKS)
OFFSETS = {0: 42, 1: 7}


def interpreter(registry: NeuronRegistry) -> StreamMachines:
    return InterpreterMachines(with_self(zoo.load(MODEL, registry), registry), registry)


def compiled(registry: NeuronRegistry) -> StreamMachines:
    return CompiledMachines(with_self(zoo.load(MODEL, registry), registry), registry)


ENGINES = pytest.mark.parametrize(
    "engine", [interpreter, compiled], ids=["interpreter", "compiled"]
)


def rules(registry: NeuronRegistry, control: ControlSettings = CONTROL) -> SwapRules:
    return SwapRules(MODEL, "worker-1", registry, control)


def warm(machines: StreamMachines, text: str = "aab.") -> None:
    for symbol in text:
        machines.step([("s", one_hot(symbol)), ("t", one_hot(symbol * 2))])


@ENGINES
@pytest.mark.parametrize("case", hostile_cases(running=1), ids=lambda c: c.name)
def test_a_hostile_update_is_rejected_naming_the_rule_and_changes_nothing(
    registry: NeuronRegistry, engine: Engine, case: HostileCase
) -> None:
    machines, reference = engine(registry), engine(registry)
    warm(machines)
    warm(reference)
    before = copy.deepcopy(machines.matrix())

    ack = handle_update(MODEL.encode(), case.value, machines, 1, rules(registry), OFFSETS)

    assert ack is not None and ack.status == "rejected"
    assert ack.reason.startswith(f"{case.reason}: "), ack.reason
    assert case.detail in ack.reason, ack.reason
    assert (ack.model, ack.worker, dict(ack.applied_at_offsets)) == (MODEL, "worker-1", {})
    assert machines.matrix() == before and set(machines.network.neurons) == set(
        reference.network.neurons
    )
    for symbol in "a.a":
        batch = [("s", one_hot(symbol)), ("t", one_hot(symbol))]
        assert machines.step(batch) == reference.step(batch)


@pytest.mark.parametrize(
    ("body", "reason", "detail"),
    [
        (
            update_fields(2, neurons={"accum": "norm"}),
            "neuron-type-change",
            "neuron 'accum' has type accum in the running network; an update cannot make it norm",
        ),
        (
            update_fields(2, delta={"self": {"delta": {"accum": {"dict": 1.0}}}}),
            "type-incorrect-link",
            "may not touch the Self neuron 'self'",
        ),
        (
            update_fields(2, delta={"norm": {"norm": {"accum": {"dict": 1.0}}}}),
            "type-incorrect-link",
            "'norm' is not an input of neuron 'norm' (type norm); a link goes into an input",
        ),
        (
            update_fields(2, neurons={**NORM2_NEURONS, "self2": "self"}, delta=NORM2_DELTA),
            "invalid-network",
            "at most one neuron of type self",
        ),
        ({**update_fields(2), "version": True}, "bad-schema", "'version' must be an integer >= 1"),
    ],
)
def test_more_rules_each_with_its_reason(
    registry: NeuronRegistry, body: dict[str, object], reason: str, detail: str
) -> None:
    machines = interpreter(registry)
    before = copy.deepcopy(machines.matrix())
    ack = handle_update(MODEL.encode(), message(body), machines, 1, rules(registry), OFFSETS)
    assert ack is not None and ack.reason.startswith(f"{reason}: ") and detail in ack.reason, ack
    assert machines.matrix() == before


@ENGINES
def test_a_valid_delta_is_applied_and_acked_with_the_boundary(
    registry: NeuronRegistry, engine: Engine
) -> None:
    machines = engine(registry)
    warm(machines)
    ack = handle_update(
        MODEL.encode(), message(update_fields(2)), machines, 1, rules(registry), OFFSETS
    )
    assert ack is not None
    assert (ack.status, ack.version, ack.reason, dict(ack.applied_at_offsets)) == (
        "applied", 2, "", OFFSETS,
    )  # fmt: skip
    assert machines.matrix()["norm2"] == NORM2_DELTA["norm2"]
    assert "dot" not in machines.matrix()["output"]["dict-2"]  # the zero link is dropped
    assert machines.network.neurons["norm2"] == "norm"


@ENGINES
def test_a_full_matrix_becomes_a_delta_through_self_and_rolls_back(
    registry: NeuronRegistry, engine: Engine
) -> None:
    machines = engine(registry)
    original = copy.deepcopy(machines.matrix())
    assert handle_update(
        MODEL.encode(), message(update_fields(2)), machines, 1, rules(registry), {}
    )
    rollback = update_fields(3, matrix=original, base_version=2)
    ack = handle_update(MODEL.encode(), message(rollback), machines, 2, rules(registry), {})
    assert ack is not None and (ack.status, ack.version) == ("applied", 3)
    assert machines.matrix() == original  # norm2 is still declared, but no link uses it


def test_updates_for_another_model_are_ignored(registry: NeuronRegistry) -> None:
    machines = interpreter(registry)
    other = update_fields(2, model="other-model")
    assert handle_update(b"other-model", message(other), machines, 1, rules(registry), {}) is None
    assert handle_update(None, message(other), machines, 1, rules(registry), {}) is None
    assert "norm2" not in machines.matrix()


def test_without_a_signing_key_unsigned_updates_are_accepted(registry: NeuronRegistry) -> None:
    machines = interpreter(registry)
    unsigned = rules(registry, ControlSettings())
    ack = handle_update(None, message(update_fields(2), None), machines, 1, unsigned, {})
    assert ack is not None and ack.status == "applied"


def test_an_unreadable_update_without_a_key_is_still_acked(registry: NeuronRegistry) -> None:
    ack = handle_update(None, b"\xff\xfe", interpreter(registry), 1, rules(registry), {})
    assert ack is not None and (ack.model, ack.version, ack.status) == (None, None, "rejected")
    assert ack.reason.startswith("malformed-json: not UTF-8")


def records(texts: dict[str, str], first_offset: int) -> list[InputRecord]:
    """The streams' symbols round-robin on partition 0 from `first_offset`."""
    out = []
    for i in range(max(map(len, texts.values()))):
        for stream, text in texts.items():
            if i < len(text):
                key, value = stream.encode(), text[i].encode()
                out.append(InputRecord("in", 0, first_offset + len(out), key, value))
    return out


def run_around_a_swap(machines: StreamMachines, registry: NeuronRegistry) -> list[OutputRecord]:
    """Two batches through the worker's core with the norm2 delta applied in between."""
    states: dict[str, StreamState] = {}
    first = records({"x": "ab.a", "y": "bb", "z": "."}, 0)
    second = records({"x": "aa.", "y": "b.b", "w": "cc"}, len(first))
    outputs: list[OutputRecord] = []
    version = 1
    for batch in (first, second):
        result = process_batch(
            machines, states, batch, limits=LimitSettings(), model_version=version
        )
        states.update(result.states)
        outputs += result.outputs
        if version == 1:
            boundary = {0: len(first)}
            ack = handle_update(
                MODEL.encode(), message(update_fields(2)), machines, 1, rules(registry), boundary
            )
            assert ack is not None and ack.status == "applied"
            version = 2
    return outputs


def test_interpreter_and_compiled_agree_on_the_tick_an_update_takes_effect(
    registry: NeuronRegistry,
) -> None:
    reference = run_around_a_swap(interpreter(registry), registry)
    fast = run_around_a_swap(compiled(registry), registry)
    assert fast == reference
    # the version changes at the boundary, and so do the outputs: right = 2·(max count)
    x = [(r.offset, r.model_version, r.outputs) for r in reference if r.stream == "x"]
    assert x == [
        (0, 1, {"left": 0, "right": 0}),
        (3, 1, {"left": 0, "right": 0}),
        (5, 1, {"left": 0, "right": 1}),
        (6, 1, {"left": 1, "right": 1}),
        (7, 2, {"left": 2, "right": 6}),  # the first message after the boundary (offset 7)
        (10, 2, {"left": 3, "right": 8}),
        (13, 2, {"left": 3, "right": 8}),
    ]
    assert {r.model_version for r in reference if r.stream == "w"} == {2}
    assert [r.outputs["right"] for r in reference if r.stream == "w"] == [2, 4]
