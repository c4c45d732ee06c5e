"""Graceful stop on SIGTERM/SIGINT for the long-running commands (worker, tail)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event, enabled: bool = True) -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT set `stop` instead of killing the process.

    Must run inside the event loop of the main thread (asyncio's rule for signal handlers);
    with `enabled` False it does nothing (tests running the worker in-process).
    """
    if not enabled:
        yield
        return
    loop = asyncio.get_running_loop()

    def request_stop(signum: signal.Signals) -> None:
        logger.info("received %s: finishing the current batch, then stopping", signum.name)
        stop.set()

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, request_stop, signum)
    try:
        yield
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
