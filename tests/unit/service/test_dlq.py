"""Dead-letter classification: every class of bad input gets its reason, nothing raises."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.codec import InputEvent, InputRecord
from service.dlq import REASONS, DeadLetter, classify, header_map
from service.errors import BAD_INPUT_ERRORS
from service.settings import LimitSettings

LIMITS = LimitSettings(max_message_bytes=64, max_symbol_length=8, max_key_bytes=16)

BAD = [
    # (key, value, reason, error class, words in the message)
    (None, b"t", "missing-key", "MissingKeyError", "no key"),
    (b"", b"t", "missing-key", "MissingKeyError", "no key"),
    (b"\xff\xfe", b"t", "bad-key", "BadKeyError", "not valid UTF-8"),
    (b"k" * 17, b"t", "bad-key", "BadKeyError", "17 bytes; the limit is 16"),
    (b"s", b"", "empty", "EmptyMessageError", "empty"),
    (b"s", None, "empty", "EmptyMessageError", "empty"),
    (b"s", b"x" * 65, "oversized", "OversizedMessageError", "65 bytes; the limit is 64"),
    (b"s", b"\xc3\x28", "invalid-utf8", "InvalidUtf8Error", "not valid UTF-8"),
    (b"s", b'{"char": "t"', "invalid-json", "InvalidJsonError", "not JSON"),
    (b"s", b"{not json}", "invalid-json", "InvalidJsonError", "not JSON"),
    (b"s", b'{"char": "t", "colour": "red"}', "unknown-field", "UnknownFieldError", "'colour'"),
    (b"s", b'{"chars": "t"}', "unknown-field", "UnknownFieldError", "'chars'"),
    (b"s", b"{}", "bad-value", "BadValueError", "exactly one of"),
    (b"s", b'{"char": "t", "token": "t"}', "bad-value", "BadValueError", "exactly one of"),
    (b"s", b'{"char": "ab"}', "bad-value", "BadValueError", "exactly one character"),
    (b"s", b'{"char": 5}', "bad-value", "BadValueError", "must be a string"),
    (b"s", b'{"token": "a b"}', "bad-value", "BadValueError", "whitespace"),
    (b"s", b'{"token": ""}', "bad-value", "BadValueError", "empty"),
    (b"s", b"a b", "bad-value", "BadValueError", "whitespace"),
    (b"s", b"toolongtoken", "bad-value", "BadValueError", "longest symbol is 8"),
    (b"s", b'{"v": "text"}', "bad-value", "BadValueError", "expected a number"),
    (b"s", b'{"v": {"a": NaN}}', "bad-value", "BadValueError", "not a finite number"),
    (b"s", b'{"v": {"a": 1e7}}', "bad-value", "BadValueError", "largest allowed magnitude"),
    (b"s", b'{"v": [1]}', "bad-value", "BadValueError", "expected a number"),
]


@pytest.mark.parametrize(("key", "value", "reason", "error_class", "words"), BAD)
def test_bad_input_becomes_a_dead_letter_with_its_reason(
    key: bytes | None, value: bytes | None, reason: str, error_class: str, words: str
) -> None:
    letter = classify(InputRecord("dmm.input", 3, 41, key, value), LIMITS)
    assert isinstance(letter, DeadLetter)
    assert (letter.reason, letter.error_class) == (reason, error_class)
    assert words in letter.message
    assert (letter.key, letter.topic, letter.partition, letter.offset) == (key, "dmm.input", 3, 41)


def test_every_reason_is_exercised() -> None:
    assert {reason for _, _, reason, _, _ in BAD} == set(REASONS)
    assert len(REASONS) == len(BAD_INPUT_ERRORS) == len(set(REASONS))


def test_headers_name_the_error_and_the_source() -> None:
    letter = classify(InputRecord("dmm.input", 3, 41, b"s", b"{bad"), LIMITS)
    assert isinstance(letter, DeadLetter)
    headers = header_map(letter.headers())
    assert headers["dmm.error.reason"] == "invalid-json"
    assert headers["dmm.error.class"] == "InvalidJsonError"
    assert headers["dmm.error.message"].startswith("value starts with '{' but is not JSON")
    assert (headers["dmm.source.topic"], headers["dmm.source.partition"]) == ("dmm.input", "3")
    assert headers["dmm.source.offset"] == "41"
    assert "dmm.value.size" not in headers
    assert letter.value == b"{bad"  # the original, for replay after a fix


def test_an_oversized_value_is_cut_to_the_limit_and_says_so() -> None:
    letter = classify(InputRecord("dmm.input", 0, 0, b"s", b"y" * 1000), LIMITS)
    assert isinstance(letter, DeadLetter)
    assert letter.value == b"y" * 64
    assert header_map(letter.headers())["dmm.value.size"] == "1000"


def test_deeply_nested_json_is_a_dead_letter_not_a_crash() -> None:
    deep = b'{"v": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001
    letter = classify(InputRecord("t", 0, 0, b"s", deep), LimitSettings(max_message_bytes=10**6))
    assert isinstance(letter, DeadLetter) and letter.reason in ("invalid-json", "bad-value")


@given(key=st.none() | st.binary(max_size=20), value=st.none() | st.binary(max_size=80))
def test_classify_never_raises(key: bytes | None, value: bytes | None) -> None:
    result = classify(InputRecord("t", 0, 0, key, value), LIMITS)
    assert isinstance(result, (InputEvent, DeadLetter))
    if isinstance(result, DeadLetter):
        assert result.reason in REASONS


@given(
    value=st.text(min_size=1, max_size=8).filter(
        lambda t: len(t) == 1 or not any(c.isspace() for c in t)
    )
)
def test_any_one_symbol_text_is_accepted(value: str) -> None:
    result = classify(InputRecord("t", 0, 0, b"s", value.encode()), LIMITS)
    if len(value) > 1 and value[0] == "{":
        return  # read as JSON by design
    assert isinstance(result, InputEvent) and result.symbol == value
