"""`dmm tail` lines: outputs, dead letters and anything else, one readable line each."""

from __future__ import annotations

from service.codec import OutputRecord, encode_output
from service.dlq import DeadLetter
from service.tail import format_record


def test_an_output_record_shows_stream_seq_input_and_outputs() -> None:
    value = encode_output(OutputRecord("s1", 12, 11, 2, ".", {"left": 2, "right": 1}))
    line = format_record(b"s1", value)
    assert line.split() == ["s1", "#12", '"."', "left=2", "right=1", "(v2,", "offset", "11)"]
    assert format_record(b"s1", value, raw=True) == value.decode()


def test_a_dead_letter_shows_its_reason_and_source() -> None:
    letter = DeadLetter(b"s1", b"{x", "invalid-json", "InvalidJsonError", "not JSON", "in", 0, 17)
    line = format_record(letter.key, letter.value, letter.headers())
    assert line.startswith("DLQ invalid-json")
    assert "in/0@17" in line and "key='s1'" in line and line.endswith("not JSON")


def test_anything_else_shows_key_and_value() -> None:
    assert format_record(b"k", b"hello") == "k: hello"
    assert format_record(None, None) == "None: "
