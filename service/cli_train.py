"""`dmm synth`, `dmm eval`, `dmm show`: training and synthesis commands (reference §5).

Thin callers: each parses options, calls `dmm_engine.synthesis`, and maps `DmmError`/`OSError`
to one line on stderr and exit status 2. Register them on the main app::

    app.command("synth")(cli_train.synth_command)
    app.command("eval")(cli_train.eval_command)
    app.command("show")(cli_train.show_command)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

import torch
import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from typer.models import OptionInfo

from dmm_engine import DmmError, Network, NeuronRegistry, default_registry, load_matrix, zoo
from dmm_engine.synthesis import (
    COMPARE_FREE_TYPES,
    FF3_TYPES,
    QUICK,
    Schedule,
    Task,
    TrainingSet,
    build_report,
    evaluate,
    ff3,
    random_matrix,
    show,
    synthesize,
    write_outputs,
)
from dmm_engine.synthesis.presets import PRESETS
from dmm_engine.synthesis.synthesize import Progress as StepProgress
from dmm_engine.train import GradMode, LossReport
from dmm_engine.vvalue import VValue
from service.errors import ServiceError
from service.neuron_types import load_registry
from service.settings import load_settings

EXIT_BAD_INPUT = 2
Arch = Literal["ff3", "compare-free"]
Preset = Literal["seed", "general"]
Init = Literal["ff3-initial", "random"]
logger = logging.getLogger(__name__)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"dmm: error: {message}", err=True)
    return typer.Exit(EXIT_BAD_INPUT)


@contextlib.contextmanager
def _exit_on_errors() -> Iterator[None]:
    try:
        yield
    except (DmmError, ServiceError) as exc:
        raise _fail(str(exc).replace("\n", "; ")) from exc
    except OSError as exc:
        raise _fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")) from exc


DEFAULT_LAYERS = {"ff3": 5, "compare-free": 6}

NeuronTypes = Annotated[
    str | None,
    typer.Option(
        help="Neuron types of your own: module:attribute or file.py:attribute, comma-separated. "
        "Default: DMM_WORKER_NEURON_TYPES."
    ),
]


def registry_with(neuron_types: str | None) -> NeuronRegistry:
    """The built-in neuron types plus `neuron_types` (else ``DMM_WORKER_NEURON_TYPES``).

    Raises:
        NeuronTypesError, SettingsError: a bad entry or variable, named.
    """
    return load_registry(load_settings({"worker.neuron_types": neuron_types}))


def _architecture(arch: Arch, matrix: VValue | None, layers: int | None = None) -> Network:
    n_layers = layers or DEFAULT_LAYERS[arch]
    if arch == "compare-free":
        return ff3(matrix, n_layers=n_layers, types=COMPARE_FREE_TYPES, name="compare-free")
    return ff3(matrix, n_layers=n_layers, types=FF3_TYPES)


def _network(
    model: str | None, arch: Arch | None, matrix: Path | None, registry: NeuronRegistry
) -> Network:
    if (model is None) == (matrix is None):
        raise DmmError("give exactly one of --model FILE or --arch ARCH --matrix FILE")
    if matrix is not None:
        return _architecture(arch or "ff3", load_matrix(matrix))
    if arch is not None:
        raise DmmError("--arch goes with --matrix (a bare rank-4 soft matrix), not with --model")
    assert model is not None
    return zoo.resolve(model, registry)


def eval_json(report: LossReport) -> str:
    """The `dmm eval` output line."""
    keys = ("prereg_loss", "reg_l1", "reg_l2", "soft_links", "max_element_error")
    values = report.as_dict()
    return json.dumps({key: values[key] for key in keys})


def eval_command(
    text: Annotated[
        str,
        typer.Option(
            "--text", help="The string both machines read (timer-driven, 1 char / 10 cycles)."
        ),
    ],
    window: Annotated[
        int, typer.Option("--window", min=1, help="Cycles from the reset state (the seed: 140).")
    ],
    model: Annotated[
        str | None, typer.Option("--model", help="Model file or zoo name to evaluate.")
    ] = None,
    arch: Annotated[
        Arch | None,
        typer.Option("--arch", help="Architecture of --matrix: ff3 or compare-free. Default ff3."),
    ] = None,
    matrix: Annotated[
        Path | None, typer.Option("--matrix", help="Bare rank-4 soft matrix (the author's JSON).")
    ] = None,
    teacher: Annotated[
        str,
        typer.Option(
            "--teacher", help="Target machine (zoo name or file). Default duplicate-detector."
        ),
    ] = "duplicate-detector",
    neuron_types: NeuronTypes = None,
) -> None:
    """Loss of a machine against a teacher on one string, as JSON (the seed's test_this!)."""
    torch.set_num_threads(1)
    with _exit_on_errors():
        registry = registry_with(neuron_types)
        network = _network(model, arch, matrix, registry)
        target = zoo.resolve(teacher, registry)
        report = evaluate(network, target, registry, text, window)
    typer.echo(eval_json(report))


def show_command(
    model: Annotated[
        str, typer.Argument(help="Model file or zoo name (or a bare matrix with --arch).")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Picture to write: .svg or .png.")],
    arch: Annotated[
        Arch | None,
        typer.Option("--arch", help="MODEL is a bare rank-4 matrix of this architecture."),
    ] = None,
    neuron_types: NeuronTypes = None,
) -> None:
    """Draw a machine: neurons, links and weights (soft solid, hard dashed)."""
    with _exit_on_errors():
        registry = registry_with(neuron_types)
        if arch is not None:
            network = _architecture(arch, load_matrix(Path(model)))
        else:
            network = zoo.resolve(model, registry)
        show(network, output)
    typer.echo(str(output))


def _start(arch: Arch, init: Init, seed: int, layers: int | None) -> Network:
    n_layers = layers or DEFAULT_LAYERS[arch]
    if init == "ff3-initial":
        if (arch, n_layers) != ("ff3", 5):
            raise DmmError(
                "--init ff3-initial is the seed's 5-layer ff3 matrix; use --init random for "
                "other architectures and layer counts"
            )
        return ff3(zoo.matrix("ff3-initial"))
    types = COMPARE_FREE_TYPES if arch == "compare-free" else FF3_TYPES
    return _architecture(arch, random_matrix(seed, n_layers=n_layers, types=types), n_layers)


def _training_sets(
    preset: Preset, texts: list[str] | None, window: int | None
) -> tuple[TrainingSet, ...]:
    if texts:
        return (TrainingSet(tuple(texts), window or 140),)
    if window is not None:
        raise DmmError("--window goes with --text (the presets fix their own windows)")
    return PRESETS[preset][0]


def _schedule(quick: bool, dense_steps: int | None, target_links: int | None) -> Schedule:
    schedule = QUICK if quick else Schedule()
    if dense_steps is not None:
        schedule = dataclasses.replace(schedule, dense_steps=dense_steps)
    if target_links is not None:
        floor = max(schedule.endgame_links, target_links)
        schedule = dataclasses.replace(schedule, target_links=target_links, endgame_links=floor)
    return schedule


@contextlib.contextmanager
def _log_to(path: Path) -> Iterator[None]:
    """Also write this command's and the engine's INFO records to `path`."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    loggers = [logging.getLogger("dmm_engine"), logger]
    levels = [each.level for each in loggers]
    for each in loggers:
        each.addHandler(handler)
        each.setLevel(logging.INFO)
    try:
        yield
    finally:
        for each, level in zip(loggers, levels, strict=True):
            each.removeHandler(handler)
            each.setLevel(level)
        handler.close()


def _option(name: str, text: str, minimum: int | None = None) -> OptionInfo:
    option: OptionInfo = typer.Option(name, help=text, min=minimum)
    return option


OutDir = Annotated[
    Path, _option("--out", "Directory for the model, report, pictures and log. Default synth-out.")
]
Name = Annotated[str, _option("--name", "File stem of the outputs. Default synthesized.")]
PresetOption = Annotated[
    Preset,
    _option(
        "--preset", "Training set: seed ('test string.', 140 cycles) or general. Default seed."
    ),
]
Texts = Annotated[
    list[str] | None,
    _option("--text", "Training string (repeat for several); replaces the preset."),
]
Window = Annotated[
    int | None, _option("--window", "Cycles per --text string. Default 140.", minimum=1)
]
ArchOption = Annotated[Arch, _option("--arch", "Trainable architecture. Default ff3.")]
InitOption = Annotated[
    Init,
    _option(
        "--init", "Start: the seed's ff3-initial matrix or random 0.01·N(0,1). Default ff3-initial."
    ),
]
Seed = Annotated[int, _option("--seed", "Seed of --init random. Default 0.")]
Layers = Annotated[
    int | None,
    _option("--layers", "Interneuron layers. Default 5 (ff3), 6 (compare-free).", minimum=1),
]
DenseSteps = Annotated[
    int | None, _option("--dense-steps", "Override the schedule's dense steps (2500).", minimum=0)
]
TargetLinks = Annotated[
    int | None, _option("--target-links", "Override the schedule's target (20 links).", minimum=1)
]
GradModeOption = Annotated[
    GradMode,
    _option(
        "--grad-mode",
        "faithful (accumulator memory detached, as the seed) or full. Default faithful.",
    ),
]
Quick = Annotated[
    bool, _option("--quick", "A short schedule for smoke tests (no quality promise).")
]
Threads = Annotated[
    int,
    _option(
        "--threads", "torch threads. Default 1 (tiny tensors: more threads are slower).", minimum=1
    ),
]


def synth_command(
    out: OutDir = Path("synth-out"),
    name: Name = "synthesized",
    preset: PresetOption = "seed",
    text: Texts = None,
    window: Window = None,
    arch: ArchOption = "ff3",
    init: InitOption = "ff3-initial",
    seed: Seed = 0,
    layers: Layers = None,
    dense_steps: DenseSteps = None,
    target_links: TargetLinks = None,
    grad_mode: GradModeOption = "faithful",
    quick: Quick = False,
    threads: Threads = 1,
) -> None:
    """Synthesize a sparse machine unattended: dense training, then pruning with backtracking."""
    registry = default_registry()
    torch.set_num_threads(threads)
    with _exit_on_errors():
        schedule = _schedule(quick, dense_steps, target_links)
        sets = _training_sets(preset, text, window)
        cases = PRESETS[preset][1] if not text else [(t, s.window) for s in sets for t in s.texts]
        task = Task(zoo.load("duplicate-detector", registry), registry, sets, grad_mode=grad_mode)
        start = _start(arch, init, seed, layers)
        out.mkdir(parents=True, exist_ok=True)
        with _log_to(out / f"{name}.log"), _progress() as progress:
            settings = f"preset={preset} arch={arch} init={init} grad_mode={grad_mode}"
            logger.info("synth %s schedule=%s", settings, schedule)
            result = synthesize(task, start, schedule, progress=progress)
            report = build_report(result, task, schedule, cases)
            paths = write_outputs(result, report, out, name)
    summary = {
        "soft_links": result.report.soft_links,
        "prereg_loss": result.report.prereg,
        "wall_s": round(result.wall_s, 1),
        "steps": result.steps_total,
        **{kind: str(path) for kind, path in paths.items()},
    }
    typer.echo(json.dumps(summary))


@contextlib.contextmanager
def _progress() -> Iterator[StepProgress | None]:
    """A rich status line on a TTY (stage, step, links, loss); nothing otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, transient=True) as bar:
        job = bar.add_task("starting", total=None)

        def update(stage: str, step: int, report: LossReport) -> None:
            if step % 10 == 0:
                state = f"{report.soft_links} links, prereg {report.prereg:.4g}"
                bar.update(job, description=f"{stage} step {step}: {state}")

        yield update
