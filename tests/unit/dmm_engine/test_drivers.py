"""Input drivers: the seed's timer-driven schedule and the service's message-driven input."""

from __future__ import annotations

import pytest

from dmm_engine import (
    DmmError,
    NeuronRegistry,
    TimerDrivenText,
    run_messages,
    split_symbols,
    vvalue,
    zoo,
)
from dmm_engine.drivers import MessageFeed, one_hot


def test_timer_driven_schedule_repeats_the_last_symbol() -> None:
    driver = TimerDrivenText(["a", "b"])
    emitted = [driver.emit(0, {"timer": vvalue.number(t)})["char"] for t in range(0, 41)]
    assert emitted[0] == {"a": 1.0} and emitted[10] == {"b": 1.0}
    assert emitted[20] == emitted[30] == emitted[40] == {"b": 1.0}  # "test string..." (§4.2)
    assert all(e == {} for i, e in enumerate(emitted) if i % 10)
    assert driver.emit(0, {})["char"] == {"a": 1.0}  # empty timer reads as 0
    assert TimerDrivenText([]).emit(0, {}) == {"char": {}}


def test_message_feed_emits_once() -> None:
    feed = MessageFeed({"x": 1.0}, first_cycle=11)
    assert [feed.emit(c, {})["char"] for c in (10, 11, 12)] == [{}, {"x": 1.0}, {}]


def test_split_symbols() -> None:
    assert split_symbols("a b\n", "chars") == ["a", " ", "b", "\n"]
    assert split_symbols(" the  cat .\n", "tokens") == ["the", "cat", "."]
    with pytest.raises(DmmError, match="symbol mode 'words'"):
        split_symbols("x", "words")  # type: ignore[arg-type]


def test_message_driven_outputs_follow_the_law(registry: NeuronRegistry) -> None:
    net = zoo.load("duplicate-detector", registry)
    text = "test string."
    outs = list(run_messages(net, registry, (one_hot(c) for c in text)))
    for i, o in enumerate(outs, start=1):
        seen = text[:i]
        assert vvalue.get_number(o["left"]) == max(seen.count(c) for c in seen) - 1
        assert vvalue.get_number(o["right"]) == min(seen.count("."), 4)
