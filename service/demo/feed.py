"""The demo's live text: a few chat channels typing short sentences at a human pace.

Each sentence is one stream (``chat-<channel>/<n>``): the duplicate detector counts from the
start of its stream, so a fragment per stream keeps the counts in the range the synthesized
machines were trained for. One bad message (invalid UTF-8) is sent on the way so that the
summary can show a dead letter.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer

from service.clients import make_producer
from service.settings import Settings

SENTENCES = (
    "the cat sat.",
    "a dog ran to the sea.",
    "ants in the sand.",
    "test string.",
    "the bat and the cat met.",
    "dots are dots.",
    "a tiny red boat.",
    "sea and sand and sun.",
    "she sells sea shells.",
    "is it a test.",
    "the dog sat at the door.",
    "red ants ate a date.",
    "a cat is not a bat.",
    "time to stream.",
    "no news is good news.",
    "one more sentence.",
)
"""Short sentences: no symbol more than 8 times, one full stop each."""

BAD_MESSAGE = (b"chat-bad", b"\xff\xfe")
"""Invalid UTF-8: the worker sends it to the DLQ with reason ``invalid-utf8``."""
PAUSE_BETWEEN_SENTENCES_S = 0.4


@dataclass(slots=True)
class FeedCounts:
    """What the feed sent so far."""

    messages: int = 0
    sentences: int = 0
    bad: int = 0
    texts: dict[str, str] = field(default_factory=dict)


async def feed(
    settings: Settings,
    channels: int,
    chars_per_s: float,
    stop: asyncio.Event,
    counts: FeedCounts,
    *,
    bad_after_s: float = 3.0,
) -> None:
    """Type sentences on `channels` channels at `chars_per_s` each until `stop` is set."""
    producer = make_producer(settings)
    await producer.start()
    started = time.monotonic()
    try:
        tasks = [
            asyncio.create_task(_channel(producer, settings, c, chars_per_s, stop, counts))
            for c in range(1, channels + 1)
        ]
        while not stop.is_set() and time.monotonic() - started < bad_after_s:
            await asyncio.sleep(0.1)
        if not stop.is_set():
            await producer.send_and_wait(settings.topics.input, BAD_MESSAGE[1], key=BAD_MESSAGE[0])
            counts.bad += 1
        await asyncio.gather(*tasks)
        await producer.flush()
    finally:
        await producer.stop()


async def _channel(
    producer: AIOKafkaProducer,
    settings: Settings,
    channel: int,
    chars_per_s: float,
    stop: asyncio.Event,
    counts: FeedCounts,
) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        text = SENTENCES[(channel * 5 + n) % len(SENTENCES)]
        stream, key = f"chat-{channel}/{n}", f"chat-{channel}/{n}".encode()
        for i, symbol in enumerate(text):
            if stop.is_set():
                return
            counts.texts[stream] = text[: i + 1]  # what was sent of it
            await producer.send(settings.topics.input, symbol.encode("utf-8"), key=key)
            counts.messages += 1
            await asyncio.sleep(1.0 / chars_per_s)
        counts.sentences += 1
        await asyncio.sleep(PAUSE_BETWEEN_SENTENCES_S)
