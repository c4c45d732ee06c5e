"""Dead letters: bad input goes to ``dmm.dlq`` with its reason, and the worker keeps going.

A dead letter keeps the original key and value (an oversized value is cut to the size limit
and says so in a header) and carries headers an operator can filter on:

================================  ==============================================
``dmm.error.reason``              the label, e.g. ``invalid-json`` (see `REASONS`)
``dmm.error.class``               the exception class, e.g. ``InvalidJsonError``
``dmm.error.message``             what was wrong and what was expected
``dmm.source.topic``              topic, partition and offset of the original
``dmm.source.partition``
``dmm.source.offset``
``dmm.value.size``                original value size in bytes (only when cut)
================================  ==============================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from service.codec import InputEvent, RawRecord, decode_input
from service.errors import BAD_INPUT_ERRORS, BadInputError
from service.settings import LimitSettings

REASONS: tuple[str, ...] = tuple(error.reason for error in BAD_INPUT_ERRORS)
"""Every reason label, in the order the codec checks for them."""
MAX_MESSAGE_HEADER_CHARS = 1000

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A bad input message and why it was rejected.

    Attributes:
        key, value: the original key and value (value cut to the size limit when oversized).
        reason: the label of `error_class` (one of `REASONS`).
        error_class, message: the exception's class name and message.
        topic, partition, offset: where the original came from.
        original_size: the original value's size in bytes when `value` was cut, else None.
    """

    key: bytes | None
    value: bytes | None
    reason: str
    error_class: str
    message: str
    topic: str
    partition: int
    offset: int
    original_size: int | None = None

    def headers(self) -> Headers:
        """The Kafka headers of this dead letter."""
        headers = [
            ("dmm.error.reason", self.reason.encode()),
            ("dmm.error.class", self.error_class.encode()),
            ("dmm.error.message", self.message[:MAX_MESSAGE_HEADER_CHARS].encode()),
            ("dmm.source.topic", self.topic.encode()),
            ("dmm.source.partition", str(self.partition).encode()),
            ("dmm.source.offset", str(self.offset).encode()),
        ]
        if self.original_size is not None:
            headers.append(("dmm.value.size", str(self.original_size).encode()))
        return headers


def classify(record: RawRecord, limits: LimitSettings) -> InputEvent | DeadLetter:
    """The record's `InputEvent` if it is valid, else its `DeadLetter` (never raises for it)."""
    try:
        return decode_input(record, limits)
    except BadInputError as error:
        return dead_letter(record, error, limits)


def dead_letter(record: RawRecord, error: BadInputError, limits: LimitSettings) -> DeadLetter:
    """The dead letter of `record` rejected with `error`."""
    value, original_size = record.value, None
    if value is not None and len(value) > limits.max_message_bytes:
        value, original_size = value[: limits.max_message_bytes], len(value)
    return DeadLetter(
        key=record.key,
        value=value,
        reason=error.reason,
        error_class=type(error).__name__,
        message=str(error),
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        original_size=original_size,
    )


def header_map(headers: Sequence[tuple[str, bytes]] | None) -> dict[str, str]:
    """Headers of a consumed message as ``{name: text}`` (`dmm tail`, tests)."""
    return {name: value.decode("utf-8", "replace") for name, value in headers or ()}
