"""The trainer's sample of live text: the most recent symbols of each stream, bounded.

`StreamSampler` keeps up to ``window`` symbols per stream and up to ``max_streams`` streams;
when a new stream would exceed that, the stream seen least recently is dropped. Memory is
therefore bounded by ``window × max_streams`` symbols whatever the input rate.

Streams are split for the gate by a stable hash of their id (`is_held_out`), so a stream is
always on the same side of the split — across runs, restarts and replicas — and a candidate
is never judged on text it was trained on.

Example:
    >>> sampler = StreamSampler(window=4, max_streams=2)
    >>> for stream, symbol in [("a", "x"), ("a", "y"), ("b", "z")]:
    ...     sampler.add(stream, symbol)
    >>> sampler.windows()
    {'a': ('x', 'y'), 'b': ('z',)}
"""

from __future__ import annotations

import zlib
from collections import OrderedDict, deque
from collections.abc import Mapping, Sized
from typing import TypeVar

HASH_RANGE = 2**32
Window = TypeVar("Window", bound=Sized)


def is_held_out(stream: str, fraction: float) -> bool:
    """True for about `fraction` of all stream ids, the same ones every time (CRC-32)."""
    return zlib.crc32(stream.encode("utf-8")) < fraction * HASH_RANGE


class StreamSampler:
    """Recent symbols per stream, least recently seen streams dropped first.

    Args:
        window: most symbols kept per stream (older ones fall out).
        max_streams: most streams kept.

    Raises:
        ValueError: `window` or `max_streams` below 1.
    """

    def __init__(self, *, window: int, max_streams: int) -> None:
        if window < 1 or max_streams < 1:
            raise ValueError(
                f"StreamSampler(window={window}, max_streams={max_streams}): both must be >= 1"
            )
        self.window = window
        self.max_streams = max_streams
        self._streams: OrderedDict[str, deque[str]] = OrderedDict()
        self.symbols_seen = 0
        self.streams_dropped = 0

    def add(self, stream: str, symbol: str) -> None:
        """Append `symbol` to `stream`'s window; the stream becomes the most recently seen."""
        symbols = self._streams.get(stream)
        if symbols is None:
            if len(self._streams) >= self.max_streams:
                self._streams.popitem(last=False)
                self.streams_dropped += 1
            symbols = self._streams[stream] = deque(maxlen=self.window)
        else:
            self._streams.move_to_end(stream)
        symbols.append(symbol)
        self.symbols_seen += 1

    def __len__(self) -> int:
        return len(self._streams)

    def windows(self) -> dict[str, tuple[str, ...]]:
        """Stream → its recent symbols, least recently seen stream first (a copy)."""
        return {stream: tuple(symbols) for stream, symbols in self._streams.items()}

    def split(
        self, holdout_fraction: float, max_train: int, *, min_symbols: int = 1
    ) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
        """``(training, held_out)`` windows (see `split_windows`)."""
        return split_windows(self.windows(), holdout_fraction, max_train, min_symbols)


def split_windows(
    windows: Mapping[str, Window], holdout_fraction: float, max_train: int, min_symbols: int
) -> tuple[dict[str, Window], dict[str, Window]]:
    """``(training, held_out)`` of the windows with at least `min_symbols` entries: held-out
    streams by `is_held_out`, and at most `max_train` training streams, the last ones of
    `windows` (the most recently seen, in a sampler's order)."""
    training, held_out = {}, {}
    for stream, window in windows.items():
        if len(window) < min_symbols:
            continue
        (held_out if is_held_out(stream, holdout_fraction) else training)[stream] = window
    recent = list(training)[-max_train:] if max_train > 0 else []
    return {stream: training[stream] for stream in recent}, held_out
