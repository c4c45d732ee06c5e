"""What a synthesis run leaves behind: the model file, a JSON report and pictures.

The report holds the schedule, links and losses per stage, the generalisation table (the
strings of reference §5.8, each against the teacher from the reset state), the wall time and
the final soft matrix; the pictures are the loss/link-count curves and the network graph.
"""

from __future__ import annotations

import dataclasses
import json
import platform
from collections.abc import Sequence
from pathlib import Path

import torch

from dmm_engine.modelfile import save_model
from dmm_engine.network import Network, count_links
from dmm_engine.neurons import NeuronRegistry
from dmm_engine.synthesis.draw import plot_curves, show
from dmm_engine.synthesis.schedule import Schedule
from dmm_engine.synthesis.synthesize import Synthesis
from dmm_engine.synthesis.task import Task, evaluate

SEED_TABLE: tuple[tuple[str, int], ...] = (
    ("test string.", 140),
    ("test string.", 150),
    ("teest string.", 140),
    ("teest string.", 150),
    ("tets string.", 140),
    ("tets. str.ingtb str.ingtb", 140),
    ("tets. str.ingtb str.ingtb", 180),
    ("tets. str.ingtb str.ingtb", 250),
)
"""The generalisation cases of reference §5.8 (``FF3/testing``): (string, window)."""


def generalisation(
    network: Network,
    teacher: Network,
    registry: NeuronRegistry,
    cases: Sequence[tuple[str, int]] = SEED_TABLE,
) -> list[dict[str, object]]:
    """One row per case: prereg loss, max per-element squared error, average (§5.8 columns)."""
    rows: list[dict[str, object]] = []
    for text, window in cases:
        report = evaluate(network, teacher, registry, text, window)
        rows.append(
            {
                "text": text,
                "window": window,
                "prereg_loss": report.prereg,
                "max_element_error": report.max_element_error,
                "average": report.prereg / (2 * window),
            }
        )
    return rows


def build_report(
    synthesis: Synthesis,
    task: Task,
    schedule: Schedule,
    cases: Sequence[tuple[str, int]] = SEED_TABLE,
) -> dict[str, object]:
    """The JSON-ready report of a run (see the module docstring)."""
    teacher = task.teacher.network
    return {
        "format": "dmm-synth-report/1",
        "training_sets": [{"texts": list(s.texts), "window": s.window} for s in task.sets],
        "teacher": teacher.name,
        "grad_mode": task.grad_mode,
        "schedule": schedule.as_dict(),
        "soft_links": count_links(synthesis.network.matrix),
        "final": synthesis.report.as_dict(),
        "stages": [dataclasses.asdict(stage) for stage in synthesis.stages],
        "steps_total": synthesis.steps_total,
        "wall_s": synthesis.wall_s,
        "generalisation": generalisation(synthesis.network, teacher, task.registry, cases),
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "platform": platform.platform(),
        },
        "matrix": synthesis.network.matrix,
    }


def write_outputs(
    synthesis: Synthesis, report: dict[str, object], out_dir: str | Path, name: str
) -> dict[str, Path]:
    """Write ``NAME.json`` (model), ``NAME-report.json``, ``NAME-curves.png``, ``NAME.svg``.

    Returns:
        The paths written, by kind: ``model``, ``report``, ``curves``, ``graph``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "model": out / f"{name}.json",
        "report": out / f"{name}-report.json",
        "curves": out / f"{name}-curves.png",
        "graph": out / f"{name}.svg",
    }
    network = dataclasses.replace(
        synthesis.network,
        name=name,
        metadata={**synthesis.network.metadata, "synthesis_report": paths["report"].name},
    )
    save_model(network, paths["model"])
    paths["report"].write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    curve = synthesis.curve
    plot_curves(
        [p.step for p in curve],
        [p.prereg for p in curve],
        [p.links for p in curve],
        paths["curves"],
    )
    show(network, paths["graph"])
    return paths
