"""The compiled engine gives the interpreter's numbers: random networks, streams and keys."""

from __future__ import annotations

import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dmm_engine import Network, default_registry, one_hot, run_timer_driven, vvalue
from dmm_engine.compiled import CompiledEngine, CompiledMachines, TimerFeed
from dmm_engine.streams import InterpreterMachines
from tests.strategies import lite_networks, long_texts

REGISTRY = default_registry()


FLOAT32_SAFE = 1e15
"""Beyond this a recurrent network is blowing up; float32 overflows where Python floats don't."""


def _bounded(values: list[dict[str, vvalue.VValue]]) -> bool:
    return all(vvalue.max_norm(v) < FLOAT32_SAFE for outputs in values for v in outputs.values())


def _close(a: vvalue.VValue, b: vvalue.VValue, rtol: float) -> bool:
    fa, fb = vvalue.flatten(a), vvalue.flatten(b)
    return all(
        abs(fa.get(p, 0.0) - fb.get(p, 0.0)) <= rtol * max(1.0, abs(fa.get(p, 0.0)))
        for p in set(fa) | set(fb)
    )


@settings(max_examples=25)
@given(lite_networks(), st.lists(long_texts, min_size=1, max_size=4), st.data())
def test_message_driven_streams_match(net: Network, texts: list[str], data: st.DataObject) -> None:
    # streams join late: stream i sends its first message at round start[i]; ≥ 20 rounds = 200 cycles
    starts = [data.draw(st.integers(0, 10)) for _ in texts]
    rounds = max(20, max(s + len(t) for s, t in zip(starts, texts, strict=True)))
    compiled = CompiledMachines(net, REGISTRY, dtype=torch.float64)
    reference = InterpreterMachines(net, REGISTRY)
    for r in range(rounds):
        batch = [
            (f"s{i}", one_hot(text[(r - start) % len(text)]))
            for i, (text, start) in enumerate(zip(texts, starts, strict=True))
            if r >= start
        ]
        if not batch:
            continue
        wanted = reference.step(batch)
        assume(_bounded(wanted))
        for got, want in zip(compiled.step(batch), wanted, strict=True):
            for name in want:
                assert _close(got[name], want[name], 1e-5), (r, name, got[name], want[name])


@settings(max_examples=15)
@given(lite_networks(), st.lists(long_texts, min_size=1, max_size=3))
def test_timer_driven_every_cycle_matches(net: Network, texts: list[str]) -> None:
    cycles = 200
    engine = CompiledEngine(net, REGISTRY, dtype=torch.float64)
    feed = TimerFeed.of_texts(engine, [list(t) for t in texts])
    state = engine.new_state(len(texts))
    expected = [run_timer_driven(net, REGISTRY, list(t), cycles) for t in texts]
    for c in range(cycles):
        state, outputs = engine.cycle(state, timer_feed=feed, read=True)
        assert outputs is not None
        for b in range(len(texts)):
            for name, values in outputs.items():
                got = engine.to_vvalue(values[b])
                assert _close(got, expected[b][c][name], 1e-9), (c, b, name)
