"""Synthesis: architectures (§8 G), time-parallel evaluation, pruning, schedule, a short run."""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from dmm_engine import (
    CompileError,
    DmmError,
    Network,
    NeuronRegistry,
    count_links,
    links,
    load_model,
    zoo,
)
from dmm_engine.compiled import CompiledEngine
from dmm_engine.synthesis import (
    COMPARE_FREE_TYPES,
    QUICK,
    Schedule,
    Task,
    TimeParallelUnroll,
    TrainingSet,
    build_report,
    cut_links,
    evaluate,
    ff3,
    inert_links,
    keep_at_least,
    keep_largest,
    plot_curves,
    random_matrix,
    show,
    synthesize,
    write_outputs,
)
from dmm_engine.synthesis.build import matrix_from_links
from dmm_engine.synthesis.presets import (
    GENERAL_HOLDOUT,
    GENERAL_SETS,
    clean_window,
    general_strings,
)
from dmm_engine.synthesis.prune import reorder
from dmm_engine.train import StepUnroll


def test_link_counts_of_the_architectures(registry: NeuronRegistry) -> None:
    # reference §8 G
    dense = ff3()
    assert (count_links(dense.matrix), count_links(dense.fixed)) == (1486, 12)
    assert count_links(ff3(types=COMPARE_FREE_TYPES, n_layers=6).matrix) == 942
    assert count_links(zoo.load("duplicate-detector", registry).matrix) == 11
    assert count_links(random_matrix(7)) == 1486
    assert random_matrix(7) == random_matrix(7) != random_matrix(8)


def test_time_parallel_outputs_equal_the_step_engine_compare_free(registry: NeuronRegistry) -> None:
    network = ff3(
        random_matrix(3, scale=0.3, n_layers=6, types=COMPARE_FREE_TYPES),
        n_layers=6,
        types=COMPARE_FREE_TYPES,
    )
    engine = CompiledEngine(network, registry, dtype=torch.float64, grad_mode="full")
    texts = [list("ab.ba"), list("tets. str.ingtb")]
    weights = engine.soft_weights
    step = StepUnroll(engine, texts, 90).outputs(weights)
    parallel = TimeParallelUnroll(engine, texts, 90).outputs(weights)
    assert step.shape == parallel.shape == (2, 90, 2)
    assert torch.allclose(step, parallel, rtol=1e-10, atol=1e-10)


def test_time_parallel_refuses_other_recurrences(registry: NeuronRegistry) -> None:
    loop = dataclasses.replace(
        ff3(),
        matrix={
            "norm-1-1": {"dict": {"norm-2-1": {"norm": 0.5}}},
            "norm-2-1": {"dict": {"norm-1-1": {"norm": 0.5}}},
        },
    )
    with pytest.raises(CompileError, match=r"\['norm-1-1', 'norm-2-1'\] lie on a cycle"):
        TimeParallelUnroll(CompiledEngine(loop, registry), [list("a")], 5)
    no_memory = dataclasses.replace(ff3(), fixed={})
    with pytest.raises(CompileError, match="has no memory loop"):
        TimeParallelUnroll(CompiledEngine(no_memory, registry), [list("a")], 5)


def test_keep_and_cut(registry: NeuronRegistry) -> None:
    weights = torch.tensor([0.3, -0.05, 0.05, 2.0, -0.2])
    assert keep_largest(weights, 2).tolist() == [True, False, False, True, True]
    assert keep_at_least(weights, 0.2).tolist() == [True, False, False, True, True]
    with pytest.raises(DmmError, match=r"cut=6 must be within 0..5"):
        keep_largest(weights, 6)
    network = ff3(zoo.matrix("sparse20-after-100"))
    engine = CompiledEngine(network, registry)
    keep = keep_at_least(engine.soft_weights, 0.6)
    smaller, index = cut_links(network, engine, engine.soft_weights, keep)
    assert count_links(smaller.matrix) == int(keep.sum()) == len(index)
    rebuilt = CompiledEngine(smaller, registry)
    order = reorder(engine.soft_links, rebuilt.soft_links)
    assert torch.equal(engine.soft_weights[order], rebuilt.soft_weights)
    with pytest.raises(DmmError, match="are not among the old links"):
        reorder(rebuilt.soft_links, engine.soft_links)


def test_inert_links_cannot_change_the_outputs(registry: NeuronRegistry) -> None:
    matrix = zoo.matrix("sparse20-after-100")
    extra = [
        ("norm-4-1", "dict", "accum-1-2", "dict", 0.7),  # norm-4-1 feeds nothing
        ("compare-4-1", "dict-1", "dot-3-1", "dot", 0.2),  # dot-3-1 has no inputs: always 0
        ("output", "dict-1", "compare-4-1", "true", 0.9),  # so compare-4-1 is always 0 too
    ]
    network = ff3(matrix_from_links([*links(matrix), *extra]))
    assert inert_links(network, registry) == {link[:4] for link in extra}
    teacher = zoo.load("duplicate-detector", registry)
    with_inert = evaluate(network, teacher, registry, "test string.", 140)
    without = evaluate(ff3(matrix), teacher, registry, "test string.", 140)
    assert with_inert.prereg == pytest.approx(without.prereg, rel=1e-5)  # float32 sum order
    assert inert_links(ff3(matrix), registry) == set()


def test_schedule_rules_and_errors() -> None:
    schedule = Schedule()
    assert [schedule.lam_for(n) for n in (1486, 800, 500, 100, 30)] == [0.01, 0.03, 0.06, 0.1, 0.05]
    assert schedule.sweep_cut(1486) == 179 and schedule.sweep_cut(62) == 2
    assert schedule.limit(0.01, 280) == pytest.approx(0.5) and schedule.limit(3.0, 280) == 6.0
    assert schedule.limit(0.01, 2800) == pytest.approx(5.0)
    with pytest.raises(DmmError, match=r"cut_fraction=1.5 must be in \(0, 1\)"):
        Schedule(cut_fraction=1.5)
    with pytest.raises(DmmError, match="ending with above = 0"):
        Schedule(lam_by_links=((10, 0.1),))
    with pytest.raises(DmmError, match="dense_steps=-1 must be >= 0"):
        Schedule(dense_steps=-1)
    with pytest.raises(DmmError, match="needs at least one non-empty string"):
        TrainingSet((), 140)


SMALL = dataclasses.replace(
    QUICK, dense_steps=150, endgame_links=14, target_links=12, polish_steps=40
)


def test_a_short_unattended_run_writes_model_report_and_pictures(
    registry: NeuronRegistry, tmp_path: Path
) -> None:
    teacher = zoo.load("duplicate-detector", registry)
    task = Task(teacher, registry, [TrainingSet(("test string.",), 140)])
    start = ff3(random_matrix(5, n_layers=2), n_layers=2)  # 238 soft links
    steps_seen: list[int] = []
    result = synthesize(
        task, start, SMALL, progress=lambda stage, step, report: steps_seen.append(step)
    )
    assert result.report.soft_links <= 14
    assert len(steps_seen) == result.steps_total
    kept = [s for s in result.stages if s.accepted]
    assert kept[0].name == "dense" and kept[0].links_before == 238
    assert all(a.links_after >= b.links_after for a, b in itertools.pairwise(kept))
    assert result.curve[-1].links == result.report.soft_links
    report = build_report(result, task, SMALL, cases=[("test string.", 140), ("tets string.", 140)])
    paths = write_outputs(result, report, tmp_path, "tiny")
    data = json.loads(paths["report"].read_text())
    assert data["soft_links"] == result.report.soft_links
    assert [row["text"] for row in data["generalisation"]] == ["test string.", "tets string."]
    assert data["generalisation"][0]["prereg_loss"] == pytest.approx(result.report.prereg, rel=1e-5)
    model = load_model(paths["model"], registry)
    assert model.name == "tiny" and count_links(model.matrix) == result.report.soft_links
    assert evaluate(model, teacher, registry, "test string.", 140).prereg == pytest.approx(
        result.report.prereg, rel=1e-5
    )
    assert paths["curves"].read_bytes()[:4] == b"\x89PNG"
    assert b"<svg" in paths["graph"].read_bytes()[:400]


def test_show_draws_any_model(registry: NeuronRegistry, tmp_path: Path) -> None:
    show(zoo.load("duplicate-detector", registry), tmp_path / "hand.png")
    show(ff3(zoo.matrix("sparse20-after-100")), tmp_path / "s20.svg", title="19 links")
    assert (tmp_path / "hand.png").read_bytes()[:4] == b"\x89PNG"
    assert "19 links" in (tmp_path / "s20.svg").read_text()
    with pytest.raises(DmmError, match=r"picture format '.pdf' is not one of svg, png"):
        show(zoo.load("duplicate-detector", registry), tmp_path / "x.pdf")
    with pytest.raises(DmmError, match="has no links to draw"):
        show(Network("empty", {}, {}), tmp_path / "e.svg")
    plot_curves([1, 2, 5], [3.0, 2.0, 1e-20], [9, 9, 8], tmp_path / "c.svg")
    assert (tmp_path / "c.svg").exists()


def test_general_strings_cover_counts_up_to_8_and_up_to_4_dots() -> None:
    texts = general_strings(8, 16, seed=1)
    assert texts == GENERAL_SETS[0].texts == general_strings(8, 16, seed=1)
    assert [max(Counter(t).values()) for t in texts] == [8, 7, 6, 5, 4, 3, 8, 7]
    assert [t.count(".") for t in texts] == [0, 1, 2, 3, 4, 0, 1, 2]
    assert GENERAL_SETS[0].window == clean_window("x" * 16) == 163
    assert all(window == clean_window(t) for t, window in GENERAL_HOLDOUT[:-1])
    assert set(GENERAL_HOLDOUT).isdisjoint((t, w) for t in texts for w in (163,))
    with pytest.raises(DmmError, match="length 4 cannot hold a 8-fold character"):
        general_strings(1, 4, seed=0)
