"""`dmm tail`: a live, readable view of a topic (outputs, dead letters, or anything else)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import TextIO

from service.clients import make_consumer
from service.codec import decode_output
from service.dlq import header_map
from service.errors import BadValueError
from service.settings import Settings
from service.shutdown import stop_on_signals

POLL_MS = 200


def format_record(
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]] | None = None,
    *,
    raw: bool = False,
) -> str:
    """One line for one message: an output record, a dead letter, or ``key: value``.

    Examples: ``s1  #12  '.'  left=2  right=1  (v1, offset 11)`` and
    ``DLQ invalid-json  dmm.input/0@17  key='s1': value starts with '{' but is not JSON``.
    """
    text = (value or b"").decode("utf-8", "replace")
    if raw:
        return text
    named = header_map(headers)
    if "dmm.error.reason" in named:
        where = f"{named.get('dmm.source.topic')}/{named.get('dmm.source.partition')}"
        return (
            f"DLQ {named['dmm.error.reason']:<13} {where}@{named.get('dmm.source.offset')}  "
            f"key={_text(key)!r}: {named.get('dmm.error.message', '')}"
        )
    try:
        record = decode_output(value or b"")
    except BadValueError:
        return f"{_text(key)}: {text}"
    outputs = "  ".join(f"{name}={json.dumps(v)}" for name, v in record.outputs.items())
    shown = json.dumps(record.input, ensure_ascii=False)
    return (
        f"{record.stream:<12} #{record.seq:<6} {shown:<8} {outputs}  "
        f"(v{record.model_version}, offset {record.offset})"
    )


def _text(key: bytes | None) -> str | None:
    return key.decode("utf-8", "replace") if key is not None else None


async def tail(
    settings: Settings,
    topic: str,
    out: TextIO,
    *,
    from_beginning: bool = False,
    raw: bool = False,
    max_messages: int | None = None,
    timeout_s: float | None = None,
    handle_signals: bool = True,
) -> int:
    """Print the messages of `topic` as they arrive until SIGINT/SIGTERM or a bound.

    Reads committed messages only (``read_committed``), so an exactly-once worker's aborted
    output never shows. Returns the number of messages printed.
    """
    consumer = make_consumer(
        settings, group_id=None, auto_offset_reset="earliest" if from_beginning else "latest"
    )
    stop = asyncio.Event()
    deadline = time.monotonic() + timeout_s if timeout_s is not None else None
    shown = 0
    await consumer.start()
    try:
        consumer.subscribe([topic])
        with stop_on_signals(stop, handle_signals):
            while not stop.is_set() and (max_messages is None or shown < max_messages):
                if deadline is not None and time.monotonic() >= deadline:
                    break
                batch = await consumer.getmany(timeout_ms=POLL_MS)
                records = [r for rs in batch.values() for r in rs]
                if max_messages is not None:
                    records = records[: max_messages - shown]
                for record in records:
                    out.write(
                        format_record(record.key, record.value, record.headers, raw=raw) + "\n"
                    )
                    shown += 1
                out.flush()
    finally:
        await consumer.stop()
    return shown
