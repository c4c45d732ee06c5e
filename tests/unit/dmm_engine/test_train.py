"""Training: reference §8 C (gradients), D (forward losses), E (Adam steps), against the log.

The oracles are the author's logged numbers (reference §5.8, §8) and, for gradients, central
differences (`dmm_engine.gradcheck`).
"""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path

import pytest
import torch

from dmm_engine import DmmError, Network, NeuronRegistry, load_matrix, zoo
from dmm_engine.compiled import CompiledEngine
from dmm_engine.gradcheck import check_gradient, numerical_gradient
from dmm_engine.synthesis import (
    SEED_TABLE,
    Task,
    TimeParallelUnroll,
    TrainingSet,
    cut_links,
    evaluate,
    ff3,
    keep_at_least,
    unroll_for,
)
from dmm_engine.train import (
    AdamConfig,
    AdamState,
    GradMode,
    Objective,
    StepUnroll,
    adam_step,
    train,
)

TEST = ("test string.",)


def sparse19() -> dict[str, object]:
    path = Path(str(resources.files("dmm_engine.zoo").joinpath("data"))) / (
        "sparse19-after-500-steps-matrix.json"
    )
    return load_matrix(path)


def task(
    registry: NeuronRegistry, mode: GradMode = "faithful", texts: tuple[str, ...] = TEST
) -> Task:
    teacher = zoo.load("duplicate-detector", registry)
    return Task(teacher, registry, [TrainingSet(texts, 140)], grad_mode=mode)


# --- §8 D: forward losses -----------------------------------------------------------------


@pytest.mark.parametrize("unroll", ["step", "time-parallel"])
def test_ff3_initial_forward_loss_and_regularisers(registry: NeuronRegistry, unroll: str) -> None:
    teacher = CompiledEngine(zoo.load("duplicate-detector", registry), registry)
    student = CompiledEngine(ff3(zoo.matrix("ff3-initial")), registry, keys=teacher.keys)
    run = (
        StepUnroll(student, TEST, 140)
        if unroll == "step"
        else TimeParallelUnroll(student, [list(TEST[0])], 140)
    )
    objective = Objective.against_teacher(student, teacher, TEST, 140, lam=0.001, unroll=run)
    report = objective.evaluate(student.soft_weights)
    assert report.prereg == pytest.approx(434.98627, rel=1e-6)
    assert report.reg_l1 == pytest.approx(11.908083, rel=1e-6)
    assert report.reg_l2 == pytest.approx(0.150648, rel=1e-5)
    assert report.loss == pytest.approx(434.98627 + 0.001 * 11.908083, rel=1e-6)
    assert report.soft_links == 1486


SEED_ROWS = {  # reference §5.8: sparse20-after-100 (19 links), FF3/testing/log-file.txt
    ("test string.", 140): (0.0016100588, 0.0005265353),
    ("test string.", 150): (0.6776272, 0.11265322),
    ("teest string.", 140): (0.0013412877, 0.0005265353),
    ("teest string.", 150): (0.0014515945, 0.0005265353),
    ("tets string.", 140): (0.0014382894, 0.0005265353),
    ("tets. str.ingtb str.ingtb", 140): (1.6212574, 0.944003),
    ("tets. str.ingtb str.ingtb", 180): (8.995915, 0.96731496),
    ("tets. str.ingtb str.ingtb", 250): (50.602097, 1.735625),
}


def test_every_row_of_the_generalisation_table_of_the_19_link_machine(
    registry: NeuronRegistry,
) -> None:
    assert set(SEED_ROWS) == set(SEED_TABLE)
    network = ff3(zoo.matrix("sparse20-after-100"))
    teacher = zoo.load("duplicate-detector", registry)
    for (text, window), (prereg, worst) in SEED_ROWS.items():
        report = evaluate(network, teacher, registry, text, window)
        assert report.prereg == pytest.approx(prereg, rel=1e-5), (text, window)
        assert report.max_element_error == pytest.approx(worst, rel=1e-5), (text, window)
        assert report.soft_links == 19
    assert report.reg_l1 == pytest.approx(12.706874, rel=1e-6)
    assert report.reg_l2 == pytest.approx(10.178641, rel=1e-6)


# --- §8 E: Adam steps ----------------------------------------------------------------------


def test_first_four_faithful_adam_steps_match_the_log(registry: NeuronRegistry) -> None:
    objective = task(registry).objective(ff3(zoo.matrix("ff3-initial")), 0.001)
    result = train(objective, objective.engine.soft_weights, 4)
    logged = [
        (434.98627, 11.908083),
        (417.8722, 11.291319),
        (401.88974, 10.780625),
        (384.95862, 10.412238),
    ]
    for report, (prereg, reg_l1) in zip(result.history, logged, strict=True):
        assert report.prereg == pytest.approx(prereg, rel=1e-5)
        assert report.reg_l1 == pytest.approx(reg_l1, rel=1e-5)


def test_full_mode_takes_a_different_second_step(registry: NeuronRegistry) -> None:
    objective = task(registry, "full").objective(ff3(zoo.matrix("ff3-initial")), 0.001)
    second = train(objective, objective.engine.soft_weights, 2).history[1]
    assert second.prereg == pytest.approx(414.36182, rel=1e-5)
    assert second.reg_l1 == pytest.approx(11.437367, rel=1e-5)


def test_step_engine_and_time_parallel_take_the_same_steps(registry: NeuronRegistry) -> None:
    texts = ("test string.", "tets. str.ingtb")  # batched, different lengths
    teacher = CompiledEngine(zoo.load("duplicate-detector", registry), registry)
    for mode in ("faithful", "full"):
        student = CompiledEngine(
            ff3(zoo.matrix("ff3-initial")), registry, keys=teacher.keys, grad_mode=mode
        )
        runs = [StepUnroll(student, texts, 140), TimeParallelUnroll(student, texts, 140)]
        results = [
            train(
                Objective.against_teacher(student, teacher, texts, 140, unroll=r),
                student.soft_weights,
                2,
            )
            for r in runs
        ]
        step, parallel = (r.history[1].prereg for r in results)
        assert step == pytest.approx(parallel, rel=1e-5), mode
        assert torch.allclose(results[0].weights, results[1].weights, atol=1e-6), mode


def test_sparse19_pruned_to_19_links_steps_to_sparse20(registry: NeuronRegistry) -> None:
    training = task(registry)
    start = training.objective(ff3(sparse19()), 0.2)
    weights = start.engine.soft_weights
    assert start.evaluate(weights).loss == pytest.approx(2.523135, rel=1e-5)  # λ = 0.2 in the log
    network, _ = cut_links(ff3(sparse19()), start.engine, weights, keep_at_least(weights, 0.1))
    objective = training.objective(network, 0.1)
    result = train(objective, objective.engine.soft_weights, 100)
    first, second = result.history[:2]
    assert (first.prereg, first.reg_l1) == pytest.approx((0.0068644676, 12.580988), rel=1e-5)
    assert (second.prereg, second.reg_l1) == pytest.approx((0.0076915575, 12.597985), rel=1e-5)
    assert 0.0015 < result.report.prereg < 0.0018
    published = training.objective(ff3(zoo.matrix("sparse20-after-100")), 0.1).engine
    assert published.soft_links == objective.engine.soft_links
    assert float((result.weights - published.soft_weights).abs().max()) < 3e-3


# --- §8 C: gradients on the handcrafted machine ------------------------------------------


def unclipped(registry: NeuronRegistry) -> Network:
    net = zoo.load("duplicate-detector", registry)
    return dataclasses.replace(net, neurons={**net.neurons, "dot": "dot-unclipped"})


def five_cycle_loss(engine: CompiledEngine, after: int) -> Objective:
    """Σ (left−10)² + (right−10)² over the 5 cycles after `after` cycles of "test string."."""
    run = StepUnroll(engine, TEST, 5, detached_prefix=after)
    return Objective.of_parts([(run, torch.full((2, 5, 1), 10.0))], lam=0.0)


EXPECTED = {  # reference §8 C, Zygote printout
    ("output", "dict-2", "dot", "dot"): -250.0,
    ("output", "dict-1", "compare", "true"): -240.0,
    ("compare", "dict-1", "norm", "norm"): -240.0,
    ("compare", "dict-2", "const_1", "const_1"): 48.0,
    ("norm", "dict", "accum", "dict"): -180.0,
    ("dot", "dict-1", "accum", "dict"): -200.0,
    ("dot", "dict-2", "eos", "char"): -200.0,
    ("timer", "timer", "timer", "timer"): 0.0,
    ("input", "timer", "timer", "timer"): 0.0,
    ("accum", "dict-2", "input", "char"): 0.0,
}
MEMORY = ("accum", "dict-1", "accum", "dict")


@pytest.mark.parametrize(("mode", "memory"), [("faithful", 0.0), ("full", -480.0)])
def test_handcrafted_gradients(registry: NeuronRegistry, mode: GradMode, memory: float) -> None:
    engine = CompiledEngine(unclipped(registry), registry, grad_mode=mode)
    assert five_cycle_loss(engine, 150).evaluate(engine.soft_weights).prereg == 390.0
    _, grad = five_cycle_loss(engine, 155).value_and_grad(engine.soft_weights)
    by_link = dict(zip(engine.soft_links, grad.tolist(), strict=True))
    assert {link: by_link[link] for link in EXPECTED} == EXPECTED
    assert by_link[MEMORY] == pytest.approx(memory, abs=1e-3)


def test_central_differences_see_the_accumulator_memory(registry: NeuronRegistry) -> None:
    # Zygote missed this entry; the author's finite difference (h = 0.01) gives ≈ −479.94
    engine = CompiledEngine(unclipped(registry), registry, dtype=torch.float64, grad_mode="full")
    loss = five_cycle_loss(engine, 155)
    index = engine.soft_links.index(MEMORY)
    numeric = numerical_gradient(
        lambda w: loss.loss(w)[0], engine.soft_weights, h=0.01, indices=[index]
    )
    assert float(numeric[0]) == pytest.approx(-479.94, abs=0.01)
    check = check_gradient(lambda w: loss.loss(w)[0], engine.soft_weights, h=1e-5, rtol=1e-5)
    assert check.ok, check.describe()


def test_full_mode_gradient_of_the_19_link_machine_matches_central_differences(
    registry: NeuronRegistry,
) -> None:
    training = Task(
        zoo.load("duplicate-detector", registry),
        registry,
        [TrainingSet(("test string.", "tets string."), 140)],
        grad_mode="full",
        dtype=torch.float64,
    )
    objective = training.objective(ff3(zoo.matrix("sparse20-after-100")), lam=0.1)
    assert isinstance(objective.parts[0][0], TimeParallelUnroll)
    check = check_gradient(lambda w: objective.loss(w)[0], objective.engine.soft_weights)
    assert check.ok, check.describe()
    assert len(check.indices) == 19


def test_faithful_mode_drops_exactly_the_memory_path(registry: NeuronRegistry) -> None:
    # faithful ≠ the true derivative for links whose effect passes through accumulator memory
    engines = {
        mode: CompiledEngine(unclipped(registry), registry, dtype=torch.float64, grad_mode=mode)
        for mode in ("faithful", "full")
    }
    grads = {
        mode: five_cycle_loss(e, 155).value_and_grad(e.soft_weights)[1]
        for mode, e in engines.items()
    }
    differ = [
        link
        for link, a, b in zip(
            engines["full"].soft_links, grads["faithful"], grads["full"], strict=True
        )
        if a != b
    ]
    assert differ == [MEMORY]


# --- Adam, objectives, unrolls -------------------------------------------------------------


def test_first_adam_step_moves_each_weight_by_the_learning_rate() -> None:
    weights = torch.tensor([1.0, -2.0, 0.5])
    grad = torch.tensor([3.0, -1e-3, 0.0])
    moved, state = adam_step(weights, grad, AdamState.fresh(3))
    assert torch.allclose(moved, torch.tensor([0.999, -1.999, 0.5]), atol=1e-6)
    assert state.steps == 1
    assert state.beta_powers.tolist() == pytest.approx([0.81, 0.998001])
    trimmed = state.trimmed(torch.tensor([2, 0]))
    assert trimmed.m.tolist() == pytest.approx([0.0, 0.3])
    with pytest.raises(DmmError, match="must have one shape"):
        adam_step(weights[:2], grad[:2], state)


def test_keep_best_never_ends_worse_than_it_started(registry: NeuronRegistry) -> None:
    objective = task(registry).objective(ff3(zoo.matrix("sparse20-after-100")), 0.0)
    start = objective.evaluate(objective.engine.soft_weights)
    wild = AdamConfig(lr=0.05)  # large steps: the loss goes up
    last = train(objective, objective.engine.soft_weights, 5, config=wild)
    best = train(objective, objective.engine.soft_weights, 5, config=wild, keep_best=True)
    assert last.report.prereg > start.prereg
    assert best.report.prereg <= start.prereg
    assert objective.evaluate(best.weights) == best.report


def test_teacher_and_student_must_share_keys_and_output_names(registry: NeuronRegistry) -> None:
    teacher = CompiledEngine(zoo.load("duplicate-detector", registry), registry)
    student = CompiledEngine(ff3(zoo.matrix("sparse20-after-100")), registry)
    with pytest.raises(DmmError, match="share one KeyRegistry"):
        Objective.against_teacher(student, teacher, TEST, 10)
    renamed = dataclasses.replace(ff3(), outputs={"y": ("output", "dict-1")})
    other = CompiledEngine(renamed, registry, keys=teacher.keys)
    with pytest.raises(DmmError, match=r"has outputs \['left', 'right'\].*has \['y'\]"):
        Objective.against_teacher(other, teacher, TEST, 10)
    run = StepUnroll(student, TEST, 10)
    with pytest.raises(DmmError, match=r"targets of shape \(2, 9, 1\).*outputs are \(2, 10, 1\)"):
        Objective.of_parts([(run, torch.zeros(2, 9, 1))], lam=0.0)


def test_the_handcrafted_machine_runs_on_the_step_engine(registry: NeuronRegistry) -> None:
    engine = CompiledEngine(zoo.load("duplicate-detector", registry), registry)
    with pytest.raises(DmmError, match=r"timer.timer ← timer.timer \(weight 1.0, soft\)"):
        TimeParallelUnroll(engine, [list("ab")], 10)
    assert isinstance(unroll_for(engine, ["ab"], 10), StepUnroll)


def test_bad_windows_and_steps_are_refused(registry: NeuronRegistry) -> None:
    engine = CompiledEngine(ff3(zoo.matrix("sparse20-after-100")), registry)
    with pytest.raises(DmmError, match="window=0"):
        StepUnroll(engine, TEST, 0)
    with pytest.raises(DmmError, match="window=0"):
        TimeParallelUnroll(engine, [list("a")], 0)
    objective = task(registry).objective(ff3(zoo.matrix("sparse20-after-100")), 0.0)
    with pytest.raises(DmmError, match="steps=-1"):
        train(objective, objective.engine.soft_weights, -1)
    with pytest.raises(DmmError, match="h=0"):
        numerical_gradient(lambda w: w.sum(), torch.zeros(2), h=0.0)
    with pytest.raises(DmmError, match=r"indices \[5\]"):
        numerical_gradient(lambda w: w.sum(), torch.zeros(2), indices=[5])


def test_nan_targets_are_left_out_of_the_loss_and_its_gradient(registry: NeuronRegistry) -> None:
    training = Task(
        zoo.load("duplicate-detector", registry),
        registry,
        [TrainingSet(("test string.",), 140)],
        grad_mode="full",
        dtype=torch.float64,
    )
    full = training.objective(ff3(zoo.matrix("sparse20-after-100")), lam=0.0)
    unroll, targets = full.parts[0]
    every_tenth = torch.zeros_like(targets, dtype=torch.bool)
    every_tenth[:, 9::10, :] = True  # where the worker reads a message's outputs
    sparse_targets = torch.where(every_tenth, targets, torch.nan)
    masked = Objective.of_parts([(unroll, sparse_targets)], lam=0.0)
    weights = full.engine.soft_weights.detach()

    loss, report = masked.loss(weights)
    expected = ((unroll.outputs(weights) - targets)[every_tenth] ** 2).sum()
    assert float(loss) == pytest.approx(float(expected), rel=1e-12)
    assert 0 < report.prereg < full.evaluate(weights).prereg
    check = check_gradient(lambda w: masked.loss(w)[0], weights)
    assert check.ok, check.describe()  # finite, and what central differences say


def test_a_task_can_be_held_to_the_step_engine(registry: NeuronRegistry) -> None:
    network = ff3(zoo.matrix("sparse20-after-100"))
    auto, step = (
        Task(zoo.load("duplicate-detector", registry), registry, [TrainingSet(TEST, 140)],
             evaluation=evaluation).objective(network, 0.1)
        for evaluation in ("auto", "step")
    )  # fmt: skip
    assert isinstance(auto.parts[0][0], TimeParallelUnroll)
    assert isinstance(step.parts[0][0], StepUnroll)
    weights = auto.engine.soft_weights
    assert step.evaluate(weights).prereg == pytest.approx(auto.evaluate(weights).prereg, rel=1e-5)
