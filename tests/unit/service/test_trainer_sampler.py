"""The trainer's sample: bounded windows per stream, least recently seen dropped, stable split."""

from __future__ import annotations

import pytest

from service.trainer.sampler import StreamSampler, is_held_out


def test_windows_keep_the_most_recent_symbols_in_order() -> None:
    sampler = StreamSampler(window=3, max_streams=10)
    for symbol in "abcde":
        sampler.add("s", symbol)
    assert sampler.windows() == {"s": ("c", "d", "e")}
    assert sampler.symbols_seen == 5


def test_the_least_recently_seen_stream_is_dropped_first() -> None:
    sampler = StreamSampler(window=4, max_streams=2)
    sampler.add("old", "x")
    sampler.add("new", "y")
    sampler.add("old", "z")  # "old" is now the most recent
    sampler.add("third", "w")  # so "new" goes
    assert list(sampler.windows()) == ["old", "third"]
    assert len(sampler) == 2 and sampler.streams_dropped == 1


def test_the_holdout_split_is_stable_and_near_its_fraction() -> None:
    streams = [f"stream-{i}" for i in range(4000)]
    held = [s for s in streams if is_held_out(s, 0.25)]
    assert 0.22 < len(held) / len(streams) < 0.28
    assert held == [s for s in streams if is_held_out(s, 0.25)]  # same answer every time
    assert set(held) <= {s for s in streams if is_held_out(s, 0.5)}  # larger fraction: superset


def test_split_separates_held_out_streams_and_caps_the_training_side() -> None:
    sampler = StreamSampler(window=8, max_streams=100)
    for i in range(40):
        for symbol in "abcd"[: 1 + i % 4]:
            sampler.add(f"s{i}", symbol)
    training, held_out = sampler.split(0.3, max_train=5, min_symbols=3)
    assert not set(training) & set(held_out)
    assert all(is_held_out(s, 0.3) for s in held_out)
    assert all(len(w) >= 3 for w in [*training.values(), *held_out.values()])
    assert len(training) == 5
    eligible = [s for s, w in sampler.windows().items() if len(w) >= 3 and not is_held_out(s, 0.3)]
    assert list(training) == eligible[-5:]  # the most recently seen


def test_sizes_below_one_are_refused() -> None:
    with pytest.raises(ValueError, match="window=0"):
        StreamSampler(window=0, max_streams=1)
