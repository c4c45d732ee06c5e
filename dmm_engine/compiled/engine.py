"""The compiled engine: B streams of one network advanced together with batched tensor ops.

The state of B streams is one 1-D tensor holding the outputs of every active neuron:
scalar output fields ``[n_s, B]`` then dict output fields ``[n_d, B, K]`` (field-major, so
the down movement is one matrix product over all keys of all streams). A cycle is: down
movement (two matrix products), one vectorised call per neuron type, one concatenation that
writes the new state. Inputs are rebuilt from outputs every cycle, as in the interpreter.

Self (reference §2.1): the soft matrix W is the output of the network's Self neuron and
changes only through its ``delta`` input. ``cycle(..., self_delta=X)`` emits X into that input
at this cycle's up movement t; W becomes W + X at up movement t+1 and is used from t+2, when
the active part and the tensors are re-laid out, keeping the state of every surviving neuron.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from dmm_engine import vvalue
from dmm_engine.compiled.forms import Context, FormRegistry, default_forms, silent_input
from dmm_engine.compiled.keys import KeyRegistry, capacity_for
from dmm_engine.compiled.layout import (
    Layout,
    active_neurons,
    build_layout,
    dense_matrix,
    link_indices,
)
from dmm_engine.errors import CompileError
from dmm_engine.network import Network, links
from dmm_engine.neurons import NeuronRegistry
from dmm_engine.vvalue import VValue

GradMode = Literal["faithful", "full"]


@dataclass(frozen=True, slots=True)
class MatrixBlocks:
    """W + F cut into contiguous blocks by kind (inputs × outputs; s = scalar, d = dict).

    Attributes:
        ss, sd: main scalar inputs from scalar / dict outputs.
        ds, dd: main dict inputs from scalar / dict outputs.
        read_s, read_d: the rows of the named outputs, from scalar / dict outputs.
    """

    ss: Tensor
    sd: Tensor
    ds: Tensor
    dd: Tensor
    read_s: Tensor
    read_d: Tensor


@dataclass(frozen=True, slots=True)
class BatchState:
    """The outputs of every active neuron for B streams, in one tensor.

    Attributes:
        tensor: 1-D, ``n_s·B + n_d·B·K`` values (see the module docstring).
        batch: B.
        capacity: K, the key columns it was laid out with.
        layout: the layout it was laid out with.
    """

    tensor: Tensor
    batch: int
    capacity: int
    layout: Layout

    def scalars(self) -> Tensor:
        """``[n_s, B]`` view."""
        n = len(self.layout.scalar_outputs) * self.batch
        return self.tensor[:n].view(len(self.layout.scalar_outputs), self.batch)

    def dicts(self) -> Tensor:
        """``[n_d, B, K]`` view."""
        n = len(self.layout.scalar_outputs) * self.batch
        return self.tensor[n:].view(len(self.layout.dict_outputs), self.batch, self.capacity)


class CompiledEngine:
    """A network compiled to index tensors. See the module docstring.

    Args:
        network: the machine (validated).
        registry: its neuron types.
        forms: tensor forms of the types (default: the built-ins).
        keys: a shared key registry (default: a new one).
        dtype: float32 (default) or float64.
        grad_mode: None (no gradient bookkeeping), ``"faithful"`` (accumulator memory
            detached, reference §5.3) or ``"full"``.
    """

    def __init__(
        self,
        network: Network,
        registry: NeuronRegistry,
        *,
        forms: FormRegistry | None = None,
        keys: KeyRegistry | None = None,
        dtype: torch.dtype = torch.float32,
        grad_mode: GradMode | None = None,
    ) -> None:
        self.network = network
        self.registry = registry
        self.forms = forms or default_forms()
        self.keys = keys or KeyRegistry()
        self.eos_column = self.keys.id(".")
        self.dtype = dtype
        self.grad_mode = grad_mode
        self.self_name = network.self_neuron(registry)
        self._emitted: VValue | None = None  # Self's delta source, emitted at the last up movement
        self._constants: dict[tuple[object, ...], Tensor] = {}
        self.install(network.matrix)

    def install(self, matrix: VValue, network: Network | None = None) -> None:
        """Lay out the network for soft matrix `matrix` (the initial W, or W after a delta).

        All or nothing: if the new matrix cannot be compiled (`CompileError`), the engine keeps
        running the previous one unchanged.

        Args:
            network: a new declaration of the network (e.g. with neurons an update brings in).
        """
        saved = dict(self.__dict__)
        try:
            self.network = dataclasses.replace(network or self.network, matrix=matrix)
            self._install(matrix)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise

    def apply_delta(self, delta: VValue, neurons: Mapping[str, str] | None = None) -> None:
        """W := W + delta now, zero links dropped; `neurons` are declared first.

        This is Self's up movement for a delta emitted at the previous up movement; between
        two messages it makes the next message run wholly on the new W (reference §2.1).
        """
        network = dataclasses.replace(
            self.network, neurons={**self.network.neurons, **(neurons or {})}
        )
        self.install(vvalue.purge_zeros(vvalue.add(self.matrix, delta)), network)

    def _install(self, matrix: VValue) -> None:
        all_links = [*links(matrix), *links(self.network.fixed)]
        self._check_self_links(all_links)
        own = [link for link in all_links if self.self_name not in (link[0], link[2])]
        self.matrix = matrix
        self.layout = build_layout(
            self.network, self.registry, self.forms, active_neurons(own, self.self_name)
        )
        self.dense = dense_matrix(self.layout, own, self.dtype)
        self._read_rows = [self.layout.input_index(f) for f in self.network.outputs.values()]
        self.blocks = self.blocks_of(self.dense)
        self._aliases = self._find_aliases(self.blocks)
        fixed = [
            link for link in links(self.network.fixed) if self.self_name not in (link[0], link[2])
        ]
        self.fixed_dense = dense_matrix(self.layout, fixed, self.dtype)
        soft = [link for link in links(matrix) if self.self_name not in (link[0], link[2])]
        self.soft_links = [link[:4] for link in soft]
        rows, cols, weights = link_indices(self.layout, soft)
        self._soft_index = (
            torch.tensor(rows, dtype=torch.long),
            torch.tensor(cols, dtype=torch.long),
        )
        self.soft_weights = torch.tensor(weights, dtype=self.dtype)
        self._scalar_sources = self.dense[:, : len(self.layout.scalar_outputs)].ne(0).any(dim=1)

    def _check_self_links(self, all_links: list[tuple[str, str, str, str, float]]) -> None:
        for to, to_input, source, from_output, _ in all_links:
            if self.self_name in (to, source) and (to, to_input, source, from_output) != (
                self.self_name,
                "accum",
                self.self_name,
                "single",
            ):
                raise CompileError(
                    f"link {to}.{to_input} ← {source}.{from_output}: on the compiled engine Self "
                    "takes deltas only through CompiledEngine.cycle(self_delta=...) "
                    "(the control path); run this network with the interpreter"
                )

    def _find_aliases(self, blocks: MatrixBlocks) -> dict[int, int]:
        """Dict input blocks that are weight-1 copies of a contiguous run of dict outputs.

        Such a block is read as a view of the state instead of being multiplied out: in the
        handcrafted machine every dict input is one (accum ← accum, norm ← accum, …).
        Returns ``{input block start: output start}``.
        """
        aliases = {}
        for group in self.layout.groups:
            if not group.form.output_kinds:
                continue  # readout inputs are numbered in their own space
            n = len(group.neurons)
            for kind, start in zip(group.form.input_kinds, group.input_starts, strict=True):
                if kind != "dict" or start >= blocks.dd.shape[0]:
                    continue
                rows, scalar_rows = blocks.dd[start : start + n], blocks.ds[start : start + n]
                ones = [torch.nonzero(row).flatten().tolist() for row in rows]
                if scalar_rows.any() or any(len(c) != 1 for c in ones):
                    continue
                first = ones[0][0]
                copies = all(
                    c[0] == first + i and row[c[0]] == 1.0
                    for i, (c, row) in enumerate(zip(ones, rows, strict=True))
                )
                if copies:
                    aliases[start] = first
        return aliases

    def blocks_of(self, dense: Tensor) -> MatrixBlocks:
        """Cut a dense W + F into the contiguous blocks a cycle multiplies by (differentiable)."""
        lay = self.layout
        n_so, n_si, n_di = len(lay.scalar_outputs), len(lay.scalar_inputs), len(lay.dict_inputs)
        rows = [r if r is not None else 0 for r in self._read_rows]
        present = torch.tensor([r is not None for r in self._read_rows], dtype=dense.dtype)
        read = dense[rows] * present.view(-1, 1)  # an inactive neuron's input reads as empty
        return MatrixBlocks(
            dense[:n_si, :n_so].contiguous(),
            dense[:n_si, n_so:].contiguous(),
            dense[n_si : n_si + n_di, :n_so].contiguous(),
            dense[n_si : n_si + n_di, n_so:].contiguous(),
            read[:, :n_so].contiguous(),
            read[:, n_so:].contiguous(),
        )

    def dense_with(self, weights: Tensor) -> Tensor:
        """W + F as a dense matrix with soft weights `weights` (``[L]``, in `soft_links` order).

        Differentiable in `weights`: pass the result as ``cycle(..., matrix=...)`` to train.
        """
        return self.fixed_dense.index_put(self._soft_index, weights, accumulate=True)

    @property
    def capacity(self) -> int:
        """K: key columns of states laid out now (a power of two ≥ the number of keys)."""
        return capacity_for(len(self.keys))

    def context(self, batch: int) -> Context:
        """What the tensor forms need for a cycle of `batch` streams."""
        detach = self.grad_mode == "faithful"
        return Context(batch, self.capacity, self.eos_column, detach, self.dtype, self._constants)

    def new_state(self, batch: int) -> BatchState:
        """The reset state of `batch` streams (every output empty)."""
        size = (
            len(self.layout.scalar_outputs) + len(self.layout.dict_outputs) * self.capacity
        ) * batch
        return BatchState(torch.zeros(size, dtype=self.dtype), batch, self.capacity, self.layout)

    def relayout(self, state: BatchState) -> BatchState:
        """`state` in the current layout and key capacity: surviving fields keep their values."""
        if state.layout is self.layout and state.capacity == self.capacity:
            return state
        new = self.new_state(state.batch)
        old_s, old_d, new_s, new_d = state.scalars(), state.dicts(), new.scalars(), new.dicts()
        with torch.no_grad():
            for i, field in enumerate(self.layout.scalar_outputs):
                j = state.layout.output_index(field)
                if j is not None:
                    new_s[i] = old_s[j]
            n_old_s = len(state.layout.scalar_outputs)
            for i, field in enumerate(self.layout.dict_outputs):
                j = state.layout.output_index(field)
                if j is not None:
                    new_d[i, :, : state.capacity] = old_d[j - n_old_s]
        return new

    def cycle(
        self,
        state: BatchState,
        feed: Tensor | None = None,
        *,
        timer_feed: TimerFeed | None = None,
        read: bool = False,
        self_delta: VValue | None = None,
        matrix: MatrixBlocks | None = None,
    ) -> tuple[BatchState, dict[str, Tensor] | None]:
        """One two-stroke cycle for all B streams.

        Args:
            state: from `new_state` or a previous cycle (re-laid out if keys grew).
            feed: ``[B, K]`` output of the input neuron this cycle; None = empty.
            timer_feed: the seed's timer-driven input instead of `feed`.
            read: also return the named outputs after this cycle, each ``[B, K]``.
            self_delta: a rank-4 delta emitted into Self's ``delta`` input at this up movement.
            matrix: blocks of a W + F to use instead of the installed one (training passes
                ``blocks_of(dense_with(weights))``).

        Returns:
            The new state, and the named outputs when `read`.
        """
        state = self.relayout(state)
        if feed is not None and feed.shape[1] != state.capacity:
            # a feed built before more keys arrived: the new columns are zeros
            feed = torch.nn.functional.pad(feed, (0, state.capacity - feed.shape[1]))
        blocks = self.blocks if matrix is None else matrix
        outputs = self.read_outputs(state, blocks) if read else None
        aliases = self._aliases if matrix is None else {}
        scalar_in = self._scalar_inputs(state, blocks)
        new_state = self._up_movement(state, blocks, aliases, scalar_in, feed, timer_feed)
        self._self_update(self_delta)
        return new_state, outputs

    # The down movement, split by kind: all scalar inputs at once (they are small), and each
    # dict input block when its type's form needs it.

    def _scalar_inputs(self, state: BatchState, blocks: MatrixBlocks) -> Tensor:
        number = state.dicts()[:, :, 0].contiguous()
        return blocks.ss @ state.scalars() + blocks.sd @ number

    def _dict_inputs(
        self, state: BatchState, blocks: MatrixBlocks, aliases: dict[int, int], start: int, n: int
    ) -> Tensor:
        xd, b, k = state.dicts(), state.batch, state.capacity
        source = aliases.get(start)
        if source is not None:
            return xd[source : source + n]
        out = (blocks.dd[start : start + n] @ xd.reshape(xd.shape[0], b * k)).view(n, b, k)
        out[:, :, 0] += blocks.ds[start : start + n] @ state.scalars()  # scalars: column 0
        return out

    def _up_movement(
        self,
        state: BatchState,
        blocks: MatrixBlocks,
        aliases: dict[int, int],
        scalar_in: Tensor,
        feed: Tensor | None,
        timer_feed: TimerFeed | None,
    ) -> BatchState:
        ctx = self.context(state.batch)
        scalar_pieces: list[Tensor] = []
        dict_pieces: list[Tensor] = []
        for group in self.layout.groups:
            if not group.form.output_kinds:
                continue  # readout-only (output neurons): inputs are computed when read
            n = len(group.neurons)
            inputs = [
                scalar_in[start : start + n]
                if kind == "scalar"
                else self._dict_inputs(state, blocks, aliases, start, n)
                for kind, start in zip(group.form.input_kinds, group.input_starts, strict=True)
            ]
            if group.form.output_kinds and group.type_name == self._input_type():
                outs = [self._input_output(group.neurons, inputs, ctx, feed, timer_feed)]
            else:
                outs = group.form.function(inputs, n, ctx)
            for kind, out in zip(group.form.output_kinds, outs, strict=True):
                (scalar_pieces if kind == "scalar" else dict_pieces).append(out.reshape(-1))
        tensor = (
            torch.cat([*scalar_pieces, *dict_pieces])
            if scalar_pieces or dict_pieces
            else state.tensor
        )
        return BatchState(tensor, state.batch, state.capacity, state.layout)

    def _input_type(self) -> str | None:
        return (
            self.network.neurons.get(self.layout.input_neuron) if self.layout.input_neuron else None
        )

    def _input_output(
        self,
        neurons: tuple[str, ...],
        inputs: list[Tensor],
        ctx: Context,
        feed: Tensor | None,
        timer_feed: TimerFeed | None,
    ) -> Tensor:
        # Only the network's own input neuron is driven; other neurons of its type stay silent.
        driven = neurons.index(str(self.layout.input_neuron))
        if timer_feed is not None:
            feed = timer_feed.emit(inputs[0][driven], ctx)
        if feed is None:
            return silent_input([], len(neurons), ctx)[0]
        if len(neurons) == 1:
            return feed.unsqueeze(0)
        out = torch.zeros(len(neurons), ctx.batch, ctx.capacity, dtype=ctx.dtype)
        out[driven] = feed
        return out

    def _self_update(self, self_delta: VValue | None) -> None:
        # Up movement t+1 adds what was emitted at t; the new W is used from t+2 (§2.1).
        arriving, self._emitted = self._emitted, self_delta
        if arriving:
            if self.self_name is None:
                raise CompileError(f"network {self.network.name!r} has no Self neuron to update")
            self.install(vvalue.purge_zeros(vvalue.add(self.matrix, arriving)))

    def read_outputs(
        self, state: BatchState, blocks: MatrixBlocks | None = None
    ) -> dict[str, Tensor]:
        """The named outputs of the cycle that *produces* `state`'s successor, each ``[B, K]``.

        Named outputs read input fields, which the down movement computes from `state`.
        """
        blocks = self.blocks if blocks is None else blocks
        xd, b, k = state.dicts(), state.batch, state.capacity
        values = (blocks.read_d @ xd.reshape(xd.shape[0], b * k)).view(-1, b, k)
        values[:, :, 0] += blocks.read_s @ state.scalars()
        return dict(zip(self.network.outputs, values, strict=True))

    def has_scalar_source(self, field: tuple[str, str]) -> bool:
        """True when an input field is fed by a scalar output (so ``":number"`` is present)."""
        row = self.layout.input_index(field)
        return bool(row is not None and self._scalar_sources[row])

    def to_vvalue(self, values: Tensor, scalar_present: bool = False) -> VValue:
        """A ``[K]`` row as a flat V-value: non-zero keys (and ``":number"`` when present)."""
        out: VValue = {}
        for column in torch.nonzero(values).flatten().tolist():
            out[self.keys.key(column)] = float(values[column])
        if scalar_present and vvalue.NUMBER not in out:
            out[vvalue.NUMBER] = 0.0
        return out

    def dense_feed(self, values: list[VValue]) -> Tensor:
        """``[B, K]`` input-neuron outputs from flat V-values (registering new keys)."""
        columns = [[(self.keys.id(k), _flat(v, k)) for k, v in value.items()] for value in values]
        feed = torch.zeros(len(values), self.capacity, dtype=self.dtype)
        for b, pairs in enumerate(columns):
            for column, x in pairs:
                feed[b, column] = x
        return feed


def _flat(value: object, key: str) -> float:
    if isinstance(value, dict):
        raise CompileError(
            f"the compiled engine takes flat V-values; key {key!r} holds a nested value "
            "(use the interpreter for nested inputs)"
        )
    return float(value)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class TimerFeed:
    """The seed's timer-driven input for B streams (reference §4.2), as tensors.

    Attributes:
        symbols: ``[B, L]`` key columns of each stream's text (padded).
        lengths: ``[B]`` text lengths.
        period: cycles per symbol (10).
    """

    symbols: Tensor
    lengths: Tensor
    period: int = 10

    @staticmethod
    def of_texts(engine: CompiledEngine, texts: list[list[str]], period: int = 10) -> TimerFeed:
        width = max((len(t) for t in texts), default=0) or 1
        symbols = torch.zeros(len(texts), width, dtype=torch.long)
        for b, text in enumerate(texts):
            for i, symbol in enumerate(text):
                symbols[b, i] = engine.keys.id(symbol)
        lengths = torch.tensor([len(t) for t in texts], dtype=torch.long)
        return TimerFeed(symbols, lengths, period)

    def emit(self, timer: Tensor, ctx: Context) -> Tensor:
        """``[B, K]`` one-hot symbols where ``t % period == 0``, ``t = max(timer, 0)``."""
        t = timer.detach().clamp(min=0)
        fires = (torch.remainder(t, self.period) == 0) & (self.lengths > 0)
        index = torch.minimum((t // self.period).long(), (self.lengths - 1).clamp(min=0))
        columns = self.symbols.gather(1, index.view(-1, 1)).view(-1)
        feed = torch.zeros(ctx.batch, ctx.capacity, dtype=ctx.dtype)
        feed[torch.arange(ctx.batch), columns] = fires.to(ctx.dtype)
        return feed


def step_message(
    engine: CompiledEngine, state: BatchState, feed: Tensor | None, self_delta: VValue | None = None
) -> tuple[BatchState, dict[str, Tensor]]:
    """One message for all B streams: `feed` on the first of ``cycles_per_message`` cycles.

    A `self_delta` is emitted at the up movement of the second-to-last cycle, so W changes at
    the last up movement: this message runs wholly on the old W and the next wholly on the new.
    """
    cycles = engine.network.cycles_per_message
    outputs: dict[str, Tensor] | None = None
    for k in range(cycles):
        emit = self_delta if k == max(cycles - 2, 0) else None
        state, outputs = engine.cycle(
            state, feed if k == 0 else None, read=k == cycles - 1, self_delta=emit
        )
    assert outputs is not None  # cycles_per_message >= 1 is validated
    return state, outputs
