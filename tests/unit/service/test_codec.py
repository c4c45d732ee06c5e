"""The wire formats: input messages parsed at the boundary, output records encoded."""

from __future__ import annotations

import json

import pytest

from service.codec import (
    InputEvent,
    InputRecord,
    OutputRecord,
    decode_input,
    decode_output,
    encode_output,
    input_of,
)
from service.errors import BadInputError, BadValueError
from service.settings import LimitSettings

LIMITS = LimitSettings()


def record(value: bytes | None, key: bytes | None = b"s1", offset: int = 7) -> InputRecord:
    return InputRecord("dmm.input", 2, offset, key, value)


@pytest.mark.parametrize(
    ("value", "symbol"),
    [
        (b"t", "t"),
        (b" ", " "),  # every character is a symbol, whitespace included (as in `dmm run`)
        (b"\n", "\n"),
        (b"{", "{"),  # one character, not JSON
        ("é".encode(), "é"),
        (b"foo", "foo"),
        (b"fo{o", "fo{o"),
        (b'{"char": "t"}', "t"),
        (b'{"char": " "}', " "),
        (b'{"token": "foo"}', "foo"),
        (b'{"token": "{x"}', "{x"),
    ],
)
def test_symbols_enter_as_one_hot_values(value: bytes, symbol: str) -> None:
    event = decode_input(record(value), LIMITS)
    assert event == InputEvent("s1", 2, 7, {symbol: 1.0}, symbol)
    assert input_of(event) == symbol


def test_v_inputs_enter_as_they_are() -> None:
    event = decode_input(record(b'{"v": {"a": 2, "b": {":number": 0.5}}}'), LIMITS)
    assert event.value == {"a": 2.0, "b": {":number": 0.5}}
    assert event.symbol is None
    assert input_of(event) == {"a": 2, "b": 0.5}
    assert decode_input(record(b'{"v": 3}'), LIMITS).value == {":number": 3.0}


def test_limits_are_settings() -> None:
    small = LimitSettings(max_symbol_length=3, max_message_bytes=12, max_key_bytes=2)
    assert decode_input(record(b"abc", key=b"ab"), small).symbol == "abc"
    for value, key in [(b"abcd", b"ab"), (b"abc", b"abc"), (b'{"token": "a"}', b"ab")]:
        with pytest.raises(BadInputError, match=r"limit|longest"):
            decode_input(record(value, key=key), small)


def test_output_records_are_compact_json_in_the_documented_order() -> None:
    out = OutputRecord("s1", 12, 11, 1, ".", {"left": 2, "right": {"a": 1}})
    data = encode_output(out)
    assert data == (
        b'{"stream":"s1","seq":12,"offset":11,"model_version":1,"input":".",'
        b'"outputs":{"left":2,"right":{"a":1}}}'
    )
    assert decode_output(data) == out
    assert list(json.loads(data)) == [
        "stream",
        "seq",
        "offset",
        "model_version",
        "input",
        "outputs",
    ]


def test_non_ascii_stays_readable() -> None:
    data = encode_output(OutputRecord("поток", 1, 0, 1, "ж", {"left": 0}))
    assert "поток".encode() in data and "ж".encode() in data


@pytest.mark.parametrize(
    "data", [b"not json", b'{"stream": "s"}', b"[1]", b'{"stream":"s","seq":"x"}']
)
def test_decode_output_names_what_is_wrong(data: bytes) -> None:
    with pytest.raises(BadValueError, match="not an output record"):
        decode_output(data)
