"""Seconds per Adam step: compiled training vs the interpreter with eager tree autograd.

The question of issue 5: how much faster is one training step (reset, 140 cycles of trainable
and teacher, gradient, Adam) than with the seed's approach? Measured side by side, in one run,
at 1486 soft links (``ff3-initial``) and at 19 (``sparse20-after-100``), on "test string.":

* compiled — `dmm_engine.train` with the time-parallel unroll (`TimeParallelUnroll`), the path
  `dmm synth` uses; also the cycle-by-cycle compiled engine (`StepUnroll`) for reference;
* interpreter — the seed's approach: every weight a torch scalar, V-values as Python dicts of
  torch scalars, the interpreter's two-stroke cycle (its `links`, `active_neurons`, the same
  neuron semantics) run eagerly, reverse-mode autograd over that graph (Zygote's role in the
  seed). It is re-implemented here because `dmm_engine.interpreter` computes in floats.

Forward (no gradient), forward with graph and backward are timed separately;
``grad_over_forward`` = (loss and gradient) / (loss without gradient), compiled, 1486 links
(best of several runs each; the single backward timings are one-shot and noisier).
``--synth`` also times a whole default `dmm synth` run. Writes bench/results/train.json and
prints one summary line.

    python bench/train.py [--quick] [--threads N] [--synth]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import torch

from dmm_engine import Network, default_registry, interpreter, links, zoo
from dmm_engine.neurons import DOT_GOVERNOR
from dmm_engine.synthesis import Schedule, Task, TrainingSet, ff3, synthesize
from dmm_engine.train import AdamState, Objective, StepUnroll, adam_step

RESULTS = Path(__file__).resolve().parent / "results" / "train.json"
TEXT, WINDOW = "test string.", 140
TorchDict = dict[str, torch.Tensor]


# --- the seed's approach: eager tree autograd over dict V-values ------------------------------


def _number(d: TorchDict | None) -> torch.Tensor:
    return d.get(":number", torch.zeros(())) if d else torch.zeros(())


def _neuron(kind: str, inputs: dict[str, TorchDict], faithful: bool) -> dict[str, TorchDict]:
    """DMM Lite neuron functions (reference §3.1) on dicts of torch scalars."""
    one = torch.ones(())
    if kind == "timer":
        return {"timer": {":number": _number(inputs.get("timer")) + 1}}
    if kind == "const_1":
        return {"const_1": {":number": one}}
    if kind == "eos":
        return {"char": {".": one}}
    if kind == "accum":
        memory = inputs.get("dict-1", {})
        out = {k: (v.detach() if faithful else v) for k, v in memory.items()}
        for k, v in inputs.get("dict-2", {}).items():
            out[k] = out[k] + v if k in out else v
        return {"dict": out}
    if kind == "norm":
        values = list(inputs.get("dict", {}).values())
        return {"norm": {":number": torch.stack(values).abs().max() if values else torch.zeros(())}}
    if kind == "dot":
        a, b = inputs.get("dict-1", {}), inputs.get("dict-2", {})
        terms = [a[k] * b[k] for k in a if k in b]
        s = torch.stack(terms).sum() if terms else torch.zeros(())
        return {"dot": {":number": s.clamp(-DOT_GOVERNOR, DOT_GOVERNOR)}}
    if kind == "compare":
        n1, n2 = _number(inputs.get("dict-1")), _number(inputs.get("dict-2"))
        return {"true": {":number": torch.relu(n1 - n2)}, "false": {":number": torch.relu(n2 - n1)}}
    return {}  # output: its inputs are the result


def tree_ad_outputs(
    network: Network, weights: dict[tuple[str, str, str, str], torch.Tensor], faithful: bool
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(left, right) after each cycle of the timer-driven `TEXT`, as torch scalars."""
    all_links = [
        (to, ti, src, so, weights.get((to, ti, src, so), w))
        for part in (network.matrix, network.fixed)
        for to, ti, src, so, w in links(part)
    ]
    active = interpreter.active_neurons(network, network.matrix)
    outputs: dict[str, dict[str, TorchDict]] = {}
    trace = []
    for _ in range(WINDOW):
        inputs: dict[str, dict[str, TorchDict]] = {}
        for to, ti, src, so, w in all_links:  # down movement: Σ weight · previous output
            target = inputs.setdefault(to, {}).setdefault(ti, {})
            for k, v in outputs.get(src, {}).get(so, {}).items():
                target[k] = target[k] + w * v if k in target else w * v
        for name in active:  # up movement
            kind = network.neurons[name]
            if kind == "input":
                t = max(float(_number(inputs.get(name, {}).get("timer"))), 0.0)
                i = min(int(t // 10), len(TEXT) - 1)
                outputs[name] = {"char": {TEXT[i]: torch.ones(())} if t % 10 == 0 else {}}
            else:
                outputs[name] = _neuron(kind, inputs.get(name, {}), faithful)
        out = inputs.get("output", {})
        trace.append((_number(out.get("dict-1")), _number(out.get("dict-2"))))
    return trace


def interpreter_times(matrix_name: str, repeats: int) -> dict[str, float]:
    registry = default_registry()
    teacher = zoo.load("duplicate-detector", registry)
    with torch.no_grad():
        targets = tree_ad_outputs(teacher, {}, faithful=True)
    student = ff3(zoo.matrix(matrix_name))
    leaves = {link[:4]: torch.tensor(link[4], requires_grad=True) for link in links(student.matrix)}

    def loss() -> torch.Tensor:
        trace = tree_ad_outputs(student, leaves, faithful=True)
        return sum(
            ((y - t) ** 2).sum()
            for ys, ts in zip(trace, targets, strict=True)
            for y, t in zip(ys, ts, strict=True)
        )  # type: ignore[return-value]

    with torch.no_grad():
        forward, value = best_of(repeats, loss)
    graph, total = best_of(repeats, loss)
    start = time.perf_counter()
    torch.autograd.grad(total, list(leaves.values()), allow_unused=True)
    backward = time.perf_counter() - start
    return {"forward_s": forward, "forward_graph_s": graph, "backward_s": backward,
            "step_s": graph + backward, "prereg": float(value)}  # fmt: skip


# --- compiled ---------------------------------------------------------------------------------


def compiled_times(matrix_name: str, repeats: int, step_engine: bool) -> dict[str, float]:
    registry = default_registry()
    task = Task(zoo.load("duplicate-detector", registry), registry, [TrainingSet((TEXT,), WINDOW)])
    objective = task.objective(ff3(zoo.matrix(matrix_name)), lam=0.001)
    if step_engine:
        unroll = StepUnroll(objective.engine, [TEXT], WINDOW)
        objective = Objective.of_parts([(unroll, objective.parts[0][1])], 0.001)
    weights = objective.engine.soft_weights
    adam = AdamState.fresh(weights.numel())
    with torch.no_grad():
        forward, value = best_of(repeats, lambda: objective.loss(weights)[1].prereg)
    leaf = weights.clone().requires_grad_(True)
    graph, total = best_of(repeats, lambda: objective.loss(leaf)[0])
    start = time.perf_counter()
    torch.autograd.grad(total, leaf)
    backward = time.perf_counter() - start

    def step() -> None:
        _, grad = objective.value_and_grad(weights)
        adam_step(weights, grad, adam)

    gradient_s, _ = best_of(repeats, lambda: objective.value_and_grad(weights))
    step_s, _ = best_of(repeats, step)
    return {"forward_s": forward, "forward_graph_s": graph, "backward_s": backward,
            "gradient_s": gradient_s, "step_s": step_s, "prereg": value}  # fmt: skip


def best_of(repeats: int, run: Callable[[], object]) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def synth_wall() -> tuple[float, int]:
    registry = default_registry()
    task = Task(zoo.load("duplicate-detector", registry), registry, [TrainingSet((TEXT,), WINDOW)])
    result = synthesize(task, ff3(zoo.matrix("ff3-initial")), Schedule())
    return result.wall_s, result.report.soft_links


def git_commit() -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    return done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one interpreter repeat (≤ 120 s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads. Default 1.")
    parser.add_argument("--synth", action="store_true", help="also time a default dmm synth")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)  # tiny tensors: more threads only add barrier waits
    slow, fast = (1, 5) if args.quick else (2, 20)
    runs = {
        "compiled_1486": compiled_times("ff3-initial", fast, step_engine=False),
        "compiled_19": compiled_times("sparse20-after-100", fast, step_engine=False),
        "step_engine_1486": compiled_times("ff3-initial", slow + 1, step_engine=True),
        "interpreter_1486": interpreter_times("ff3-initial", slow),
        "interpreter_19": interpreter_times("sparse20-after-100", slow + 1),
    }
    c, i = runs["compiled_1486"], runs["interpreter_1486"]
    record: dict[str, object] = {
        "step_s_compiled_1486": c["step_s"],
        "step_s_interpreter_1486": i["step_s"],
        "step_speedup_1486": i["step_s"] / c["step_s"],
        "grad_over_forward": c["gradient_s"] / c["forward_s"],
        "step_s_compiled_19": runs["compiled_19"]["step_s"],
        "step_s_interpreter_19": runs["interpreter_19"]["step_s"],
        "step_speedup_19": runs["interpreter_19"]["step_s"] / runs["compiled_19"]["step_s"],
        "step_s_step_engine_1486": runs["step_engine_1486"]["step_s"],
        "runs": runs,
    }
    if args.synth:
        record["synth_wall_s"], record["synth_soft_links"] = synth_wall()
    record.update(
        benchmark="train",
        parameters={"text": TEXT, "window": WINDOW, "grad_mode": "faithful", "quick": args.quick,
                    "torch_threads": torch.get_num_threads(), "repeats": [fast, slow]},
        machine={"python": platform.python_version(), "torch": torch.__version__,
                 "processor": platform.processor() or platform.machine()},
        git_commit=git_commit(),
    )  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    synth = (
        f"; synth {record['synth_wall_s']:.0f} s -> {record['synth_soft_links']} links"
        if args.synth
        else ""
    )
    print(
        f"train: step {c['step_s'] * 1e3:.1f} ms compiled vs {i['step_s']:.2f} s interpreter "
        f"at 1486 links "
        f"({record['step_speedup_1486']:.0f}x), {runs['compiled_19']['step_s'] * 1e3:.1f} ms vs "
        f"{runs['interpreter_19']['step_s']:.2f} s at 19 ({record['step_speedup_19']:.0f}x); "
        f"grad/forward {record['grad_over_forward']:.2f}{synth} -> bench/results/train.json"
    )


if __name__ == "__main__":
    main()
