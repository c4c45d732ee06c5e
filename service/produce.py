"""`dmm produce`: text in, one message per character (or token) out, keyed by a stream id."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TextIO

from dmm_engine import split_symbols
from dmm_engine.drivers import SymbolMode
from service.clients import make_producer
from service.codec import encode_key
from service.errors import InputTextError
from service.settings import Settings
from service.topics import ensure_topics

ACK_WINDOW = 10_000
"""Messages in flight before waiting for their acknowledgements (bounds memory)."""


async def read_symbols(source: TextIO, mode: SymbolMode) -> AsyncIterator[str]:
    """Symbols of `source` as lines arrive; lines are read in a thread (stdin may be live)."""
    while True:
        try:
            line = await asyncio.to_thread(source.readline)
        except UnicodeDecodeError as exc:
            raise InputTextError(f"input is not valid UTF-8: {exc}") from exc
        if not line:
            return
        for symbol in split_symbols(line, mode):
            yield symbol


async def produce_text(
    settings: Settings,
    source: TextIO,
    *,
    topic: str,
    key: str,
    mode: SymbolMode = "chars",
    rate: float | None = None,
) -> int:
    """Send every symbol of `source` to `topic` with key `key`, one message each.

    Creates the service's topics (and `topic`) first when ``DMM_TOPICS_CREATE`` is true, so
    the input topic gets its configured partition count rather than a broker default.

    Args:
        settings: connection and topic settings.
        source: text to read (stdin or a file), UTF-8.
        topic, key: where to send; the key is the stream id.
        mode: ``"chars"`` (every character, whitespace included) or ``"tokens"``.
        rate: messages per second (None: as fast as possible).

    Returns:
        The number of messages sent and acknowledged.
    """
    if settings.topics.create:
        await ensure_topics(settings, extra=[topic])
    producer = make_producer(settings)
    await producer.start()
    sent, pending = 0, []
    interval = 1.0 / rate if rate else 0.0
    next_at = time.monotonic()
    try:
        async for symbol in read_symbols(source, mode):
            if interval:
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            pending.append(await producer.send(topic, symbol.encode("utf-8"), key=encode_key(key)))
            sent += 1
            if len(pending) >= ACK_WINDOW or interval:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent
