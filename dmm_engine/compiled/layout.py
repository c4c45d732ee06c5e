"""Lay a network out for tensors: which fields are scalar or dict, and where each one lives.

Neurons are grouped by type (groups sorted by type name, neurons by name); within a group,
field j of all its neurons is one contiguous block, so a type's vectorised form reads and
writes slices. Output fields of active neurons form the state: scalar ones ``[n_s, B]``, dict
ones ``[n_d, B, K]``. Input fields are numbered ``main scalar | main dict | readout``; readout
fields belong to types with no outputs (``output``) and are computed only when read.
The matrix W + F becomes one dense ``[n_inputs, n_outputs]`` tensor over these numbers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from dmm_engine.compiled.forms import FormRegistry, Kind, TensorForm
from dmm_engine.errors import CompileError
from dmm_engine.network import Link, Network
from dmm_engine.neurons import NeuronRegistry

Field = tuple[str, str]
"""``(neuron, field)``."""


@dataclass(frozen=True, slots=True)
class Group:
    """All active neurons of one type, and where their fields start."""

    type_name: str
    neurons: tuple[str, ...]
    form: TensorForm
    input_starts: tuple[int, ...]  # per input field: start in its kind's main input block
    output_starts: tuple[int, ...]  # per output field: start in its kind's output block


@dataclass(frozen=True, slots=True)
class Layout:
    """Index spaces of one network's active part (see the module docstring)."""

    groups: tuple[Group, ...]
    scalar_outputs: tuple[Field, ...]
    dict_outputs: tuple[Field, ...]
    scalar_inputs: tuple[Field, ...]
    dict_inputs: tuple[Field, ...]
    readout_inputs: tuple[Field, ...]
    input_neuron: str | None

    @property
    def n_inputs(self) -> int:
        return len(self.scalar_inputs) + len(self.dict_inputs) + len(self.readout_inputs)

    @property
    def n_outputs(self) -> int:
        return len(self.scalar_outputs) + len(self.dict_outputs)

    def output_index(self, field: Field) -> int | None:
        """Global output column of `field` (scalar block first), or None if not laid out."""
        for offset, block in (
            (0, self.scalar_outputs),
            (len(self.scalar_outputs), self.dict_outputs),
        ):
            if field in block:
                return offset + block.index(field)
        return None

    def input_index(self, field: Field) -> int | None:
        """Global input row of `field` (main scalar | main dict | readout), or None."""
        blocks = (self.scalar_inputs, self.dict_inputs, self.readout_inputs)
        offset = 0
        for block in blocks:
            if field in block:
                return offset + block.index(field)
            offset += len(block)
        return None


def active_neurons(links: Iterable[Link], skip: str | None) -> set[str]:
    """Neurons named by any link, except `skip` (the Self neuron, which the engine holds)."""
    names = {name for to, _, source, _, _ in links for name in (to, source)}
    if skip is not None:
        names.discard(skip)
    return names


def build_layout(
    network: Network,
    registry: NeuronRegistry,
    forms: FormRegistry,
    active: set[str],
) -> Layout:
    """Group the `active` neurons by type and number their fields."""
    by_type: dict[str, list[str]] = {}
    for name in sorted(active):
        if name not in network.neurons:
            raise CompileError(f"network {network.name!r}: a link names undeclared neuron {name!r}")
        by_type.setdefault(network.neurons[name], []).append(name)
    spaces: dict[str, list[Field]] = {"so": [], "do": [], "si": [], "di": [], "ri": []}
    groups = []
    for type_name in sorted(by_type):
        neurons, form = tuple(by_type[type_name]), forms.get(type_name)
        spec = registry.get(type_name)
        if len(form.input_kinds) != len(spec.inputs) or len(form.output_kinds) != len(spec.outputs):
            raise CompileError(f"tensor form {type_name!r} does not match the type's fields")
        readout = not spec.outputs
        starts_in = tuple(
            _allocate(spaces["ri" if readout else ("si" if kind == "scalar" else "di")], neurons, f)
            for f, kind in zip(spec.inputs, form.input_kinds, strict=True)
        )
        starts_out = tuple(
            _allocate(spaces["so" if kind == "scalar" else "do"], neurons, f)
            for f, kind in zip(spec.outputs, form.output_kinds, strict=True)
        )
        groups.append(Group(type_name, neurons, form, starts_in, starts_out))
    input_neuron = network.input if network.input in active else None
    return Layout(
        groups=tuple(groups),
        scalar_outputs=tuple(spaces["so"]),
        dict_outputs=tuple(spaces["do"]),
        scalar_inputs=tuple(spaces["si"]),
        dict_inputs=tuple(spaces["di"]),
        readout_inputs=tuple(spaces["ri"]),
        input_neuron=input_neuron,
    )


def _allocate(space: list[Field], neurons: tuple[str, ...], field: str) -> int:
    start = len(space)
    space.extend((neuron, field) for neuron in neurons)
    return start


def link_indices(layout: Layout, links: Iterable[Link]) -> tuple[list[int], list[int], list[float]]:
    """``(rows, columns, weights)`` of `links` in the layout's dense matrix."""
    rows, cols, weights = [], [], []
    for to, to_input, source, from_output, weight in links:
        row = layout.input_index((to, to_input))
        col = layout.output_index((source, from_output))
        if row is None or col is None:
            raise CompileError(
                f"link {to}.{to_input} ← {source}.{from_output} does not fit the layout "
                "(a link into or out of Self other than its accumulator loop?)"
            )
        rows.append(row)
        cols.append(col)
        weights.append(weight)
    return rows, cols, weights


def dense_matrix(layout: Layout, links: Iterable[Link], dtype: torch.dtype) -> torch.Tensor:
    """The dense ``[n_inputs, n_outputs]`` matrix of `links` (weights of repeated links add)."""
    rows, cols, weights = link_indices(layout, links)
    matrix = torch.zeros(layout.n_inputs, layout.n_outputs, dtype=dtype)
    matrix.index_put_(
        (torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long)),
        torch.tensor(weights, dtype=dtype),
        accumulate=True,
    )
    return matrix


def kind_of(layout: Layout, field: Field) -> Kind:
    """Whether an input field is consumed as a scalar or a dict."""
    return "scalar" if field in layout.scalar_inputs else "dict"
