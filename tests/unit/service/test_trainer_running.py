"""What the workers run, read off a control history: applied versions, pending ones, deltas."""

from __future__ import annotations

from dmm_engine import default_registry, vvalue, zoo
from service.control import ControlAck, build_update
from service.publish import ControlHistory
from service.trainer.running import delta_between, next_version, pending_versions, running_model

BASE = zoo.load("duplicate-detector", default_registry())
MODEL = BASE.name
DELTA = {"output": {"dict-2": {"dot": {"dot": -0.5}}}}


def history(*, acks: tuple[ControlAck, ...] = ()) -> ControlHistory:
    update = build_update(MODEL, 2, "delta", DELTA, base_version=1)
    return ControlHistory((update,), ((MODEL, 2),), acks)


def test_without_acks_the_workers_run_the_base_model_and_the_update_is_pending() -> None:
    running = running_model(history(), BASE)
    assert (running.network, running.version) == (BASE, 1)
    assert pending_versions(history(), MODEL, 1) == [2]
    assert next_version(history(), BASE) == 3


def test_an_applied_delta_is_added_to_the_base_matrix() -> None:
    applied = history(acks=(ControlAck(MODEL, 2, "w1", "applied"),))
    running = running_model(applied, BASE)
    assert running.version == 2
    assert running.network.matrix["output"]["dict-2"]["dot"]["dot"] == 0.5
    assert pending_versions(applied, MODEL, 2) == []


def test_a_rejected_update_is_not_pending_and_not_running() -> None:
    rejected = history(acks=(ControlAck(MODEL, 2, "w1", "rejected", "stale-version: ..."),))
    assert running_model(rejected, BASE).version == 1
    assert pending_versions(rejected, MODEL, 1) == []
    assert next_version(rejected, BASE) == 3  # a rejected update still used up its number


def test_delta_between_is_what_self_adds() -> None:
    after = vvalue.add(BASE.matrix, DELTA)
    assert delta_between(BASE.matrix, after) == DELTA  # zero links dropped
    assert delta_between(BASE.matrix, BASE.matrix) == {}
