"""Compiled vs interpreter on the duplicate detector with message-driven input, side by side.

For B in {1, 64, 1024, 4096} streams of realistic text: stream-cycles per second of both engines
(the interpreter is measured on up to 8 streams and reported per stream: it runs streams one by
one), the time of one tick over the time of one clone() of the state tensor, and bytes of
state per stream. Writes bench/results/engine.json and prints one summary line.

    python bench/engine.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

import torch

from dmm_engine import default_registry, one_hot, zoo
from dmm_engine.compiled import CompiledEngine, step_message
from dmm_engine.streams import InterpreterMachines

RESULTS = Path(__file__).resolve().parent / "results" / "engine.json"
# Realistic live text: mixed case, digits and punctuation (about 50 distinct characters).
TEXT = (
    "Breaking: Kafka cluster #3 reports 12 partitions lagging; operators paged at 04:10 UTC. "
    "Why did the consumer group rebalance twice? Nobody knows yet, but logs show a GC pause "
    "of 7.5 s on broker-2. Update (04:25): the lag is shrinking, throughput back to 80k msg/s! "
    "Quick brown foxes jump over lazy dogs; VEXING JOKES QUIZ FRIGHTENED ZEBRAS. "
)


def texts(batch: int, messages: int) -> list[str]:
    sample = TEXT * (1 + messages // len(TEXT) + 1)
    return [(sample[(37 * b) % len(TEXT) :])[:messages] for b in range(batch)]


def best_of(repeats: int, run: object) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def compiled_rate(batch: int, messages: int) -> tuple[float, float, int]:
    registry = default_registry()
    engine = CompiledEngine(zoo.load("duplicate-detector", registry), registry)
    streams = texts(batch, messages)
    feeds = [engine.dense_feed([one_hot(t[m]) for t in streams]) for m in range(messages)]
    state = engine.new_state(batch)

    def run() -> None:
        nonlocal state
        with torch.no_grad():
            for feed in feeds:
                state, _ = step_message(engine, state, feed)

    run()  # warm up: keys registered, allocator primed
    seconds = best_of(3, run)
    cycles = messages * engine.network.cycles_per_message
    tick = best_of(5, lambda: engine.cycle(state)) if batch else 0.0
    copy = best_of(5, lambda: state.tensor.clone())
    bytes_per_stream = state.tensor.numel() * state.tensor.element_size() // batch
    return batch * cycles / seconds, tick / copy, bytes_per_stream


def interpreter_rate(batch: int, messages: int) -> float:
    registry = default_registry()
    machines = InterpreterMachines(zoo.load("duplicate-detector", registry), registry)
    streams = texts(batch, messages)
    start = time.perf_counter()
    for m in range(messages):
        machines.step([(f"s{b}", one_hot(t[m])) for b, t in enumerate(streams)])
    seconds = time.perf_counter() - start
    return batch * messages * machines.network.cycles_per_message / seconds


def git_commit() -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    return done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages (under 60 s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads. Default 1.")
    args = parser.parse_args()
    # One thread: with two on two cores, small batches thrash in OpenMP barriers (B=64: 40x
    # slower while anything else runs) and large ones gain nothing measurable.
    torch.set_num_threads(args.threads)
    messages = 20 if args.quick else 60
    interpreter = interpreter_rate(8, 10 if args.quick else 30)
    results = []
    for batch in (1, 64, 1024, 4096):
        rate, tick_over_copy, state_bytes = compiled_rate(batch, messages)
        results.append(
            {
                "streams": batch,
                "compiled_stream_cycles_per_s": round(rate),
                "interpreter_stream_cycles_per_s": round(interpreter),
                "speedup": round(rate / interpreter, 1),
                "tick_over_state_copy": round(tick_over_copy, 2),
                "state_bytes_per_stream": state_bytes,
            }
        )
    record = {
        "benchmark": "engine",
        "parameters": {
            "model": "duplicate-detector",
            "input": "message-driven",
            "messages_per_stream": messages,
            "interpreter_streams": 8,
            "quick": args.quick,
            "torch_threads": torch.get_num_threads(),
        },
        "results": results,
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "processor": platform.processor() or platform.machine(),
        },
        "git_commit": git_commit(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    by_b = {r["streams"]: r for r in results}
    print(
        f"engine: B=4096 {by_b[4096]['compiled_stream_cycles_per_s']:,} stream-cycles/s compiled; "
        f"speedup at B=1024 {by_b[1024]['speedup']}x over the interpreter "
        f"({round(interpreter):,}/s); tick/copy at B=4096 {by_b[4096]['tick_over_state_copy']}; "
        f"{by_b[4096]['state_bytes_per_stream']} B/stream -> {RESULTS.relative_to(Path.cwd())}"
    )


if __name__ == "__main__":
    main()
