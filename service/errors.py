"""Exceptions raised by `service`: one root, small named subclasses."""

from __future__ import annotations

from typing import ClassVar


class ServiceError(Exception):
    """Root of every error raised by `service`."""

    retriable: ClassVar[bool] = False


class InputTextError(ServiceError):
    """Text given to a command cannot be read (missing file, invalid UTF-8)."""
