"""For any text, after each message: left = max count − 1, right = min(count of '.', 4)."""

from __future__ import annotations

from collections import Counter

from hypothesis import given

from dmm_engine import default_registry, one_hot, run_messages, split_symbols, vvalue, zoo
from tests.strategies import texts, token_texts

REGISTRY = default_registry()


def _check(model: str, symbols: list[str]) -> None:
    net = zoo.load(model, REGISTRY)
    counts: Counter[str] = Counter()
    for symbol, outputs in zip(
        symbols, run_messages(net, REGISTRY, map(one_hot, symbols)), strict=True
    ):
        counts[symbol] += 1
        assert vvalue.get_number(outputs["left"]) == max(counts.values()) - 1
        assert vvalue.get_number(outputs["right"]) == min(counts["."], 4)


@given(texts)
def test_law_on_characters(text: str) -> None:
    _check("duplicate-detector", split_symbols(text, "chars"))


@given(token_texts)
def test_law_on_tokens(text: str) -> None:
    _check("duplicate-detector-tokens", split_symbols(text, "tokens"))
