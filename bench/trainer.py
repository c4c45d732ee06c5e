"""Seconds per trainer run: the time-parallel evaluation vs the cycle-by-cycle engine.

The question of issue 7's trainer: how long does one run of `dmm trainer` take, and what does
the evaluation path cost? One run = `service.trainer.tuning.fine_tune` on sampled windows
(training and held-out, teacher targets), the call the active trainer makes every
``DMM_TRAINER_INTERVAL_S``. Side by side, in one run, on the same windows:

* timewise — the demo's degraded synthesized-general machine (layered: every level of the
  window evaluated at once, `TimeParallelUnroll`), the path the trainer takes on the
  synthesized machines;
* step — the same machine and windows on the cycle-by-cycle compiled engine (`StepUnroll`),
  the fallback the trainer takes on a network with soft recurrent links, e.g. the
  handcrafted one.

Both start from the same matrix and take the same Adam steps; the held-out errors before and
after are recorded too (they must agree: same numbers, different evaluation order). Writes
bench/results/trainer.json and prints one summary line.

    python bench/trainer.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

# Run as a script, this file's folder comes first on sys.path: look packages up from the root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dmm_engine import default_registry, zoo
from dmm_engine.synthesis.task import Evaluation
from service.demo.feed import SENTENCES
from service.demo.run import degraded_network
from service.trainer.tuning import TeacherTargets, TuningConfig, fine_tune

RESULTS = Path(__file__).resolve().parent / "results" / "trainer.json"
WINDOW_SYMBOLS = 32


def one_run(streams: int, steps: int, step_engine: bool) -> dict[str, float]:
    registry = default_registry()
    teacher = zoo.load("duplicate-detector", registry)
    training = {f"train-{i}": SENTENCES[i % len(SENTENCES)] for i in range(streams)}
    held_out = {f"held-{i}": SENTENCES[(7 * i + 3) % len(SENTENCES)] for i in range(streams // 3)}
    config = TuningConfig(steps=steps)
    evaluation: Evaluation = "step" if step_engine else "auto"
    started = time.perf_counter()
    sources = [
        TeacherTargets(teacher, registry, w, WINDOW_SYMBOLS, "faithful", evaluation)
        for w in (training, held_out)
    ]
    result = fine_tune(degraded_network(), *sources, config)
    return {
        "seconds": time.perf_counter() - started,
        "seconds_per_step": result.seconds / steps,
        "holdout_before": result.holdout_before,
        "holdout_after": result.holdout_after,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (CI smoke run)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the trainer process
    streams, steps = (12, 20) if args.quick else (24, 200)
    timewise = one_run(streams, steps, step_engine=False)
    step = one_run(streams, steps, step_engine=True)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    results = {
        "question": "seconds per trainer run (fine_tune), time-parallel vs step engine",
        "parameters": {
            "training_streams": streams,
            "held_out_streams": streams // 3,
            "texts": "the demo's sentences (service.demo.feed.SENTENCES)",
            "steps": steps,
            "window_symbols": WINDOW_SYMBOLS,
            "model": "synthesized-general, output.dict-1 <- compare-4-2.false scaled by 0.6",
            "torch_threads": 1,
        },
        "timewise": timewise,
        "step": step,
        "step_over_timewise": step["seconds"] / timewise["seconds"],
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "cpu": platform.processor() or platform.machine()},
        "commit": commit,
    }  # fmt: skip
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(
        f"trainer run ({streams} streams, {steps} steps): timewise {timewise['seconds']:.2f} s, "
        f"step engine {step['seconds']:.2f} s ({results['step_over_timewise']:.0f}x); held-out "
        f"error {timewise['holdout_before']:.3g} -> {timewise['holdout_after']:.3g} "
        f"(step engine: {step['holdout_after']:.3g})"
    )


if __name__ == "__main__":
    main()
