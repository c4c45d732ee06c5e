"""Tensor forms of neuron types: one vectorised function per type, applied to all its neurons.

Each input and output field is either ``"scalar"`` (only its ``":number"`` matters: shape
``[n, B]`` for the n neurons of the type) or ``"dict"`` (a flat V-value over the key columns:
``[n, B, K]``). A form's function takes the type's input fields in declaration order and
returns its output fields in declaration order. The semantics are those of
`dmm_engine.neurons` on flat V-values, with absent keys as zeros.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from dmm_engine.errors import CompileError
from dmm_engine.neurons import DOT_GOVERNOR

Kind = Literal["scalar", "dict"]


@dataclass(frozen=True, slots=True)
class Context:
    """What a form may need besides its inputs.

    Attributes:
        batch: B, the number of streams.
        capacity: K, the number of key columns.
        eos_column: the column of the end-of-sentence key ``"."``.
        detach_memory: the ``faithful`` gradient mode (reference §5.3): no gradient through
            an accumulator's previous state (its ``dict-1`` input).
        constants: the engine's cache of constant outputs by shape (read-only tensors: a
            cycle copies outputs into the new state, so nothing ever writes into them).
    """

    batch: int
    capacity: int
    eos_column: int
    detach_memory: bool
    dtype: torch.dtype
    constants: dict[tuple[object, ...], Tensor] = field(default_factory=dict)

    def constant(self, name: str, n: int, make: Callable[[], Tensor]) -> Tensor:
        """The constant output `name` of `n` neurons at this batch and capacity (cached)."""
        key = (name, n, self.batch, self.capacity, self.dtype)
        if key not in self.constants:
            self.constants[key] = make()
        return self.constants[key]


FormFunction = Callable[[Sequence[Tensor], int, Context], list[Tensor]]
"""``(inputs, n_neurons, context) -> outputs``."""


@dataclass(frozen=True, slots=True)
class TensorForm:
    """The vectorised form of the neuron type `name`."""

    name: str
    input_kinds: tuple[Kind, ...]
    output_kinds: tuple[Kind, ...]
    function: FormFunction


def _timer(x: Sequence[Tensor], n: int, ctx: Context) -> list[Tensor]:
    return [x[0] + 1.0]


def _const_1(x: Sequence[Tensor], n: int, ctx: Context) -> list[Tensor]:
    return [ctx.constant("const_1", n, lambda: torch.ones(n, ctx.batch, dtype=ctx.dtype))]


def _eos(x: Sequence[Tensor], n: int, ctx: Context) -> list[Tensor]:
    def make() -> Tensor:
        out = torch.zeros(n, ctx.batch, ctx.capacity, dtype=ctx.dtype)
        out[:, :, ctx.eos_column] = 1.0
        return out

    return [ctx.constant("eos", n, make)]


def _accum(x: Sequence[Tensor], n: int, ctx: Context) -> list[Tensor]:
    memory = x[0].detach() if ctx.detach_memory else x[0]
    return [memory + x[1]]


def _norm(x: Sequence[Tensor], n: int, ctx: Context) -> list[Tensor]:
    # max(max, −min): two reads and no temporary (torch's inf-norm kernel is ~30× slower here)
    return [torch.maximum(x[0].amax(dim=-1), x[0].amin(dim=-1).neg())]


def _dot(x: Sequence[Tensor], n: int, ctx: Context) -> list[Tensor]:
    return [torch.linalg.vecdot(x[0], x[1], dim=-1).clamp(-DOT_GOVERNOR, DOT_GOVERNOR)]


def _dot_unclipped(x: Sequence[Tensor], n: int, ctx: Context) -> list[Tensor]:
    return [torch.linalg.vecdot(x[0], x[1], dim=-1)]


def _compare(x: Sequence[Tensor], n: int, ctx: Context) -> list[Tensor]:
    return [torch.relu(x[0] - x[1]), torch.relu(x[1] - x[0])]


def _nothing(x: Sequence[Tensor], n: int, ctx: Context) -> list[Tensor]:
    return []


def silent_input(x: Sequence[Tensor], n: int, ctx: Context) -> list[Tensor]:
    return [
        ctx.constant("empty", n, lambda: torch.zeros(n, ctx.batch, ctx.capacity, dtype=ctx.dtype))
    ]


def _identity(x: Sequence[Tensor], n: int, ctx: Context) -> list[Tensor]:
    return [x[0]]


def _plus(x: Sequence[Tensor], n: int, ctx: Context) -> list[Tensor]:
    return [x[0] + x[1]]


def _mult_mask(x: Sequence[Tensor], n: int, ctx: Context) -> list[Tensor]:
    return [x[0] * x[1]]


def _lin_comb(x: Sequence[Tensor], n: int, ctx: Context) -> list[Tensor]:
    out = torch.zeros(n, ctx.batch, ctx.capacity, dtype=ctx.dtype)
    out[:, :, 0] = (x[0] * x[1]).sum(dim=-1)
    return [out]


def _less_or_equal(x: Sequence[Tensor], n: int, ctx: Context) -> list[Tensor]:
    ok = ((x[1] - x[0]) >= 0).all(dim=-1).to(ctx.dtype)
    return [ok, 1.0 - ok]


S: Kind = "scalar"
D: Kind = "dict"
BUILTIN_FORMS: tuple[TensorForm, ...] = (
    TensorForm("timer", (S,), (S,), _timer),
    TensorForm("input", (S,), (D,), silent_input),
    TensorForm("const_1", (), (S,), _const_1),
    TensorForm("eos", (), (D,), _eos),
    TensorForm("accum", (D, D), (D,), _accum),
    TensorForm("norm", (D,), (S,), _norm),
    TensorForm("dot", (D, D), (S,), _dot),
    TensorForm("dot-unclipped", (D, D), (S,), _dot_unclipped),
    TensorForm("compare", (S, S), (S, S), _compare),
    TensorForm("output", (D, D), (), _nothing),
    TensorForm("identity", (D,), (D,), _identity),
    TensorForm("plus", (D, D), (D,), _plus),
    TensorForm("max-norm", (D,), (S,), _norm),
    TensorForm("less-or-equal", (D, D), (S, S), _less_or_equal),
    TensorForm("mult-mask", (D, D), (D,), _mult_mask),
    TensorForm("lin-comb", (D, D), (D,), _lin_comb),
)


class FormRegistry:
    """Tensor forms by neuron type name; `default_forms()` holds the built-ins."""

    def __init__(self, forms: Sequence[TensorForm] = ()) -> None:
        self._forms = {form.name: form for form in forms}

    def register(self, form: TensorForm) -> None:
        """Add or replace the form of `form.name`."""
        self._forms[form.name] = form

    def get(self, type_name: str) -> TensorForm:
        """The form of `type_name`; raises `CompileError` saying how to proceed without one."""
        try:
            return self._forms[type_name]
        except KeyError:
            raise CompileError(
                f"neuron type {type_name!r} has no tensor form: run this network on the "
                "interpreter (dmm: --engine interpreter, DMM_WORKER_ENGINE=interpreter), or "
                "give CompiledEngine(forms=...) a FormRegistry with a TensorForm for it"
            ) from None


def default_forms() -> FormRegistry:
    """A new registry holding the tensor forms of the built-in neuron types (not ``self``)."""
    return FormRegistry(BUILTIN_FORMS)
