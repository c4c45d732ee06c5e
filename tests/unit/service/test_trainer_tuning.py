"""The trainer's run: buckets of windows, the gate, and fine-tuning a degraded machine."""

from __future__ import annotations

import dataclasses

import pytest

from dmm_engine import default_registry, zoo
from service.demo.run import degraded_network
from service.settings import load_settings
from service.trainer.tuning import (
    TeacherTargets,
    TuningConfig,
    buckets,
    fine_tune,
    judge,
    mean_error,
    training_sets,
)
from tests.helpers import sentences


def test_buckets_double_up_to_the_window() -> None:
    assert buckets(32) == [4, 8, 16, 32]
    assert buckets(20) == [4, 8, 16, 20]
    assert buckets(4) == [4]
    assert buckets(3) == []


def test_windows_are_cut_to_their_bucket_keeping_the_latest_symbols() -> None:
    sets = training_sets({"a": "xyz", "b": "abcdef", "c": "0123456789", "d": "wxyz"}, 32)
    by_length = {len(s.texts[0]): s for s in sets}
    assert sorted(by_length) == [4, 8]  # "xyz" is too short to train on
    assert sorted(by_length[4].texts) == [tuple("cdef"), tuple("wxyz")]
    assert by_length[8].texts == (tuple("23456789"),)
    assert by_length[8].window == 83  # 10 cycles per symbol + 3 to see the last one's effect


@pytest.mark.parametrize(
    ("before", "after", "publish"),
    [
        (1.0, 0.5, True),
        (1.0, 0.95, False),  # better, but not by the 10 % margin
        (1.0, 1.0, False),  # a tie
        (1.0, 2.0, False),  # worse
        (1e-7, 1e-9, False),  # relatively better, but by less than min_gain
        (1.0, float("nan"), False),
    ],
)
def test_judge_publishes_only_a_clearly_better_candidate(
    before: float, after: float, publish: bool
) -> None:
    verdict = judge(before, after, margin=0.1, min_gain=1e-6)
    assert verdict.publish is publish
    assert str(before) in verdict.reason or f"{before:.6g}" in verdict.reason


def test_fine_tuning_repairs_a_degraded_machine_and_the_gate_lets_it_through() -> None:
    registry = default_registry()
    teacher = zoo.load("duplicate-detector", registry)
    training = TeacherTargets(teacher, registry, sentences("a", 12, seed=1), 32, "faithful")
    held_out = TeacherTargets(teacher, registry, sentences("b", 6, seed=2), 32, "faithful")
    network = degraded_network()

    result = fine_tune(network, training, held_out, TuningConfig(steps=60), streams=(12, 6))

    assert result.holdout_before == pytest.approx(mean_error(held_out, network))
    assert result.holdout_after < result.holdout_before / 10
    assert result.train_after < result.train_before / 10
    assert result.verdict.publish, result.verdict.reason
    candidate = dataclasses.replace(network, matrix=result.matrix)
    assert mean_error(held_out, candidate) == pytest.approx(result.holdout_after)
    assert (result.training_streams, result.held_out_streams, result.steps) == (12, 6, 60)


def test_a_candidate_made_worse_is_not_published() -> None:
    registry = default_registry()
    teacher = zoo.load("duplicate-detector", registry)
    training = TeacherTargets(teacher, registry, sentences("c", 8, seed=3), 32, "faithful")
    held_out = TeacherTargets(teacher, registry, sentences("d", 4, seed=4), 32, "faithful")
    network = zoo.load("synthesized-general", registry)

    result = fine_tune(network, training, held_out, TuningConfig(steps=1, learning_rate=1.0))

    assert result.holdout_after > result.holdout_before
    assert not result.verdict.publish
    assert "is not below" in result.verdict.reason


def test_the_config_comes_from_the_trainer_settings() -> None:
    settings = load_settings({"trainer.steps": 7, "trainer.grad_mode": "full", "trainer.l1": 0.01})
    config = TuningConfig.of(settings.trainer)
    assert (config.steps, config.grad_mode, config.l1) == (7, "full", 0.01)


def test_a_diverging_run_keeps_the_running_matrix() -> None:
    registry = default_registry()
    teacher = zoo.load("duplicate-detector", registry)
    training = TeacherTargets(teacher, registry, sentences("e", 6, seed=5), 32, "faithful")
    held_out = TeacherTargets(teacher, registry, sentences("f", 3, seed=6), 32, "faithful")
    network = degraded_network()

    result = fine_tune(network, training, held_out, TuningConfig(steps=3, learning_rate=1e30))

    assert result.diverged and not result.verdict.publish
    assert result.verdict.reason.startswith("training diverged: non-finite loss")
    assert result.matrix == network.matrix
