"""Exceptions raised by `dmm_engine`: one root, small named subclasses.

Every message names the offending input, the rule it broke and where (a path such as
``matrix.accum.dict-3``), so that a user can fix it without reading the code.
"""

from __future__ import annotations

from typing import ClassVar


class DmmError(Exception):
    """Root of every error raised by `dmm_engine`."""

    retriable: ClassVar[bool] = False


class VValueError(DmmError):
    """A value is not a V-value, or an operation got V-values it cannot combine."""


class NetworkValidationError(DmmError):
    """A network (neurons, matrices, outputs) breaks a rule; `problems` lists every one.

    Each problem is one line ``path: what is wrong; what was expected``.
    """

    def __init__(self, name: str, problems: list[str]) -> None:
        self.name = name
        self.problems = list(problems)
        shown = "\n  ".join(self.problems)
        super().__init__(
            f"network {name!r} is invalid ({len(self.problems)} problem(s)):\n  {shown}"
        )


class ModelFileError(DmmError):
    """A model or matrix file cannot be read: missing, not JSON, wrong format or invalid."""


class UnknownNeuronTypeError(DmmError):
    """A neuron type name is not in the registry."""


class CompileError(DmmError):
    """A network cannot be compiled for the tensor engine."""
