"""Wire formats: input messages parsed at the boundary, output records encoded for Kafka.

Input value (key = stream id, UTF-8), one of:

* UTF-8 text of exactly one symbol: one character (any, whitespace included), or a token of
  up to ``max_symbol_length`` characters without whitespace;
* JSON ``{"char": "t"}``, ``{"token": "foo"}`` or ``{"v": V-value}`` (exactly one field).

Text that starts with ``{`` and is longer than one character is read as JSON (send a token
such as ``{x`` as ``{"token": "{x"}``). A symbol enters the machine as the one-hot
``{symbol: 1.0}``; a ``v`` enters as it is.

Output value: ``{"stream", "seq", "offset", "model_version", "input", "outputs"}`` with the
outputs in canonical V-value JSON (`dmm_engine.vvalue.to_jsonable`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from dmm_engine import DmmError, one_hot, vvalue
from dmm_engine.vvalue import VValue
from service.errors import (
    BadKeyError,
    BadValueError,
    EmptyMessageError,
    InvalidJsonError,
    InvalidUtf8Error,
    MissingKeyError,
    OversizedMessageError,
    UnknownFieldError,
)
from service.settings import LimitSettings

INPUT_FIELDS = ("char", "token", "v")


class RawRecord(Protocol):
    """What the codec reads from a consumed message (aiokafka's ``ConsumerRecord`` fits)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class InputRecord:
    """A consumed message as plain data (tests and tools build these; Kafka gives its own)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class InputEvent:
    """One valid input message.

    Attributes:
        stream: the stream id (the message key).
        partition, offset: where the message came from.
        value: the V-value that enters the machine.
        symbol: the character or token, or None for a ``{"v": ...}`` input.
    """

    stream: str
    partition: int
    offset: int
    value: VValue
    symbol: str | None


@dataclass(frozen=True, slots=True)
class OutputRecord:
    """One output message: the named outputs of `stream` after its `seq`-th message.

    `input` is the symbol, or the V-value JSON of a ``v`` input; `outputs` maps each output
    name to canonical V-value JSON.
    """

    stream: str
    seq: int
    offset: int
    model_version: int
    input: Any
    outputs: dict[str, Any]


def decode_input(record: RawRecord, limits: LimitSettings) -> InputEvent:
    """Parse one consumed message into an `InputEvent`.

    Raises:
        BadInputError: a subclass per rule (`MissingKeyError`, `BadKeyError`,
            `EmptyMessageError`, `OversizedMessageError`, `InvalidUtf8Error`,
            `InvalidJsonError`, `UnknownFieldError`, `BadValueError`); the message says what
            was wrong and what was expected.
    """
    stream = decode_key(record.key, limits)
    data = record.value
    if not data:
        raise EmptyMessageError("value is empty; expected one symbol or a JSON input")
    if len(data) > limits.max_message_bytes:
        raise OversizedMessageError(
            f"value is {len(data)} bytes; the limit is {limits.max_message_bytes} "
            "(DMM_LIMITS_MAX_MESSAGE_BYTES)"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidUtf8Error(
            f"value is not valid UTF-8: {exc.reason} at byte {exc.start}"
        ) from None
    if len(text) > 1 and text[0] == "{":
        value, symbol = _decode_json(text, limits)
    else:
        symbol = _check_symbol(text, limits, "value")
        value = one_hot(symbol)
    return InputEvent(stream, record.partition, record.offset, value, symbol)


def decode_key(key: bytes | None, limits: LimitSettings) -> str:
    """The stream id of a message key (non-empty UTF-8 of at most ``max_key_bytes``)."""
    if not key:
        raise MissingKeyError("message has no key; the key is the stream id")
    if len(key) > limits.max_key_bytes:
        raise BadKeyError(
            f"key is {len(key)} bytes; the limit is {limits.max_key_bytes} "
            "(DMM_LIMITS_MAX_KEY_BYTES)"
        )
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadKeyError(f"key is not valid UTF-8: {exc.reason} at byte {exc.start}") from None


def _decode_json(text: str, limits: LimitSettings) -> tuple[VValue, str | None]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidJsonError(f"value starts with '{{' but is not JSON: {exc}") from None
    except RecursionError:
        raise InvalidJsonError("value is JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise InvalidJsonError(f"value is JSON {type(data).__name__}; expected an object")
    unknown = sorted(set(data) - set(INPUT_FIELDS))
    if unknown:
        raise UnknownFieldError(
            f"unknown field(s) {', '.join(map(repr, unknown))}; expected exactly one of "
            "'char', 'token', 'v'"
        )
    if len(data) != 1:
        given = ", ".join(map(repr, data)) or "none"
        raise BadValueError(f"expected exactly one of 'char', 'token', 'v'; got {given}")
    ((field, content),) = data.items()
    if field == "v":
        return _decode_vvalue(content, limits), None
    if not isinstance(content, str):
        raise BadValueError(f"{field!r} must be a string, got {type(content).__name__}")
    if field == "char" and len(content) != 1:
        raise BadValueError(f"'char' must be exactly one character, got {len(content)}")
    symbol = _check_symbol(content, limits, field)
    return one_hot(symbol), symbol


def _check_symbol(text: str, limits: LimitSettings, where: str) -> str:
    if len(text) > limits.max_symbol_length:
        raise BadValueError(
            f"{where} is {len(text)} characters; the longest symbol is "
            f"{limits.max_symbol_length} (DMM_LIMITS_MAX_SYMBOL_LENGTH)"
        )
    if not text:
        raise BadValueError(f"{where} is empty; expected one character or token")
    if len(text) > 1 and any(c.isspace() for c in text):
        raise BadValueError(
            f"{where} {text[:40]!r} holds whitespace: a token has none (one symbol per message)"
        )
    return text


def _decode_vvalue(content: object, limits: LimitSettings) -> VValue:
    try:
        value = vvalue.from_jsonable(content, "v")
        largest = max((abs(x) for _, x in vvalue.leaves(value)), default=0.0)
    except DmmError as exc:
        raise BadValueError(str(exc)) from None
    except RecursionError:
        raise BadValueError("'v' is nested too deeply") from None
    if largest > limits.max_abs_value:
        raise BadValueError(
            f"'v' holds {largest:g}; the largest allowed magnitude is {limits.max_abs_value:g} "
            "(DMM_LIMITS_MAX_ABS_VALUE)"
        )
    return value


def input_of(event: InputEvent) -> Any:
    """The ``input`` field of an output record: the symbol, or the V-value JSON."""
    return event.symbol if event.symbol is not None else vvalue.to_jsonable(event.value)


def encode_output(record: OutputRecord) -> bytes:
    """The output message value: compact JSON, fields in the documented order."""
    body = {
        "stream": record.stream,
        "seq": record.seq,
        "offset": record.offset,
        "model_version": record.model_version,
        "input": record.input,
        "outputs": record.outputs,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode_output(data: bytes) -> OutputRecord:
    """Read an output message back (`dmm tail`, tests).

    Raises:
        BadValueError: not an output record (the message names the missing field).
    """
    try:
        body = json.loads(data)
        return OutputRecord(
            stream=str(body["stream"]),
            seq=int(body["seq"]),
            offset=int(body["offset"]),
            model_version=int(body["model_version"]),
            input=body["input"],
            outputs=dict(body["outputs"]),
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise BadValueError(f"not an output record ({exc.__class__.__name__}: {exc})") from None


def encode_key(stream: str) -> bytes:
    """The message key of a stream id."""
    return stream.encode("utf-8")
