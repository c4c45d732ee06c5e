"""Synthesis: trainable architectures, fast evaluation, unattended sparsification, reports.

Example — the default run of `dmm synth` (reference §5)::

    from dmm_engine import default_registry, zoo
    from dmm_engine.synthesis import Schedule, Task, TrainingSet, ff3, synthesize

    registry = default_registry()
    task = Task(zoo.load("duplicate-detector", registry), registry,
                [TrainingSet(("test string.",), 140)])
    result = synthesize(task, ff3(zoo.matrix("ff3-initial")), Schedule())
    result.report.soft_links, result.report.prereg  # ≤ 20 links, prereg ≤ 2e-3
"""

from dmm_engine.synthesis.build import (
    COMPARE_FREE_TYPES,
    FF3_TYPES,
    ff3,
    ff3_soft_links,
    random_matrix,
)
from dmm_engine.synthesis.draw import plot_curves, show
from dmm_engine.synthesis.prune import cut_links, inert_links, keep_at_least, keep_largest
from dmm_engine.synthesis.report import SEED_TABLE, build_report, generalisation, write_outputs
from dmm_engine.synthesis.schedule import QUICK, Schedule
from dmm_engine.synthesis.synthesize import Point, StageRecord, Synthesis, synthesize
from dmm_engine.synthesis.task import Task, TrainingSet, evaluate, unroll_for
from dmm_engine.synthesis.timewise import TimeParallelUnroll

__all__ = [
    "COMPARE_FREE_TYPES",
    "FF3_TYPES",
    "QUICK",
    "SEED_TABLE",
    "Point",
    "Schedule",
    "StageRecord",
    "Synthesis",
    "Task",
    "TimeParallelUnroll",
    "TrainingSet",
    "build_report",
    "cut_links",
    "evaluate",
    "ff3",
    "ff3_soft_links",
    "generalisation",
    "inert_links",
    "keep_at_least",
    "keep_largest",
    "plot_curves",
    "random_matrix",
    "show",
    "synthesize",
    "unroll_for",
    "write_outputs",
]
