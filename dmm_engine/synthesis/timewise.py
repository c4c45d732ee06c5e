"""Time-parallel evaluation of layered networks: all cycles of a window at once.

In a network whose only recurrences are the clock (``timer → timer``) and each accumulator's
weight-1 memory loop (``accum.dict-1 ← accum.dict``, a hard link), a neuron's input at cycle t
depends only on the outputs at cycle t−1 of neurons on strictly lower *levels* (level 0: the
clock and the input neuron; level n: 1 + the highest level of its sources). So the whole time
series of one level follows from the series of the levels below it in a few batched tensor
operations, with time folded into the batch: a window of T cycles costs one pass over the
levels instead of T cycles of the step engine. An accumulator's series is a cumulative sum
over time of its ``dict-2`` input (reference §3.1 ``sum_dicts`` with the memory loop).

Layout: outputs are numbered level by level (scalar and dict outputs separately), so the
state after level n is the concatenation of the series of levels 0..n, and each level reads
it through four small matrices (scalar/dict input rows × scalar/dict output columns of the
levels below). All matrices are views of one flat buffer written by a single ``index_put``
of the soft weights, which keeps the backward pass short.

Gradient modes match the step engine's (reference §5.3): ``"faithful"`` gives an accumulator's
output at cycle t a gradient only through its cycle-t ``dict-2`` term (the value is the full
cumulative sum), ``"full"`` differentiates through the cumulative sum. The ff3 family of
`dmm_engine.synthesis.build` always qualifies; the handcrafted machine does not (its memory
loop is a soft link), so it runs on the step engine (`dmm_engine.train.StepUnroll`).

Numbers agree with the step engine to float rounding (sums are taken in a different order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from dmm_engine.compiled import CompiledEngine, TimerFeed
from dmm_engine.compiled.forms import Context, Kind
from dmm_engine.compiled.layout import Group
from dmm_engine.errors import CompileError
from dmm_engine.network import links

ACCUMULATOR = "accum"
TIMER = "timer"
_NEEDS = (
    "time-parallel evaluation needs every accumulator's dict-1 and every timer's input to be "
    "its own hard weight-1 memory loop and the input neuron to read a timer; use the step "
    "engine (dmm_engine.train.StepUnroll) for other networks"
)
Field = tuple[str, str]


@dataclass(frozen=True, slots=True)
class _Piece:
    """The neurons of one type on one level, and the rows of the level their inputs take."""

    group: Group
    members: tuple[str, ...]
    inputs: tuple[tuple[Kind, int, int] | None, ...]  # per input field: (kind, start, stop)

    @property
    def size(self) -> int:
        return len(self.members)


@dataclass(frozen=True, slots=True)
class _Level:
    pieces: tuple[_Piece, ...]
    matrices: tuple[int, int, int, int]  # ids of the ss, sd, ds, dd matrices

    @property
    def row_sizes(self) -> tuple[list[int], list[int]]:
        """Rows per input field, in order: scalar fields, dict fields."""
        sizes: tuple[list[int], list[int]] = ([], [])
        for piece in self.pieces:
            for s in piece.inputs:
                if s is not None:
                    sizes[s[0] == "dict"].append(s[2] - s[1])
        return sizes


@dataclass(slots=True)
class _Numbering:
    """Output columns and input rows of the level-ordered matrices, and the matrix shapes."""

    columns: dict[Field, tuple[Kind, int]] = field(default_factory=dict)
    rows: dict[Field, tuple[int, Kind, int]] = field(default_factory=dict)  # matrix id per kind
    counts: dict[Kind, int] = field(default_factory=lambda: {"scalar": 0, "dict": 0})
    shapes: list[tuple[int, int]] = field(default_factory=list)

    def column(self, neuron: str, name: str, kind: Kind) -> None:
        self.columns[neuron, name] = (kind, self.counts[kind])
        self.counts[kind] += 1

    def matrix(self, rows: int, columns: int) -> int:
        self.shapes.append((rows, columns))
        return len(self.shapes) - 1


class TimeParallelUnroll:
    """Named outputs of a layered network over a window, all cycles at once (differentiable).

    Args:
        engine: the compiled network (its layout, keys, soft-link order and `grad_mode`).
        texts: one symbol sequence per stream (B of them), fed by the seed's timer-driven
            input (reference §4.2).
        window: T, the cycles per evaluation, starting from the reset state.

    Raises:
        CompileError: naming the link that makes the network unsuitable (a recurrence other
            than the clock and hard weight-1 accumulator memory loops).

    Example::

        unroll = TimeParallelUnroll(engine, [list("test string.")], 140)
        y = unroll.outputs(engine.soft_weights)  # [n_outputs, 140, 1]
    """

    def __init__(self, engine: CompiledEngine, texts: Sequence[Sequence[str]], window: int) -> None:
        if window < 1:
            raise CompileError(f"window={window}: must be at least 1 cycle")
        self.engine = engine
        self.texts = tuple(tuple(t) for t in texts)
        self.window = window
        self.detached_prefix = 0
        self.batch = len(texts)
        self.names = tuple(engine.network.outputs)
        self._check_recurrences()
        feed = TimerFeed.of_texts(engine, [list(t) for t in texts])
        self.capacity = engine.capacity  # after the texts' symbols got their key columns
        numbering = _Numbering()
        self._scalars0, self._dicts0 = self._clock_and_input(feed, numbering)
        self._levels = self._plan(self._neuron_levels(), numbering)
        readout = numbering.matrix(len(self.names), numbering.counts["scalar"])
        readout_d = numbering.matrix(len(self.names), numbering.counts["dict"])
        self._readout = (readout, readout_d)
        for r, (neuron, name) in enumerate(engine.network.outputs.values()):
            numbering.rows[neuron, name] = (readout, "scalar", r)
        self._shapes = tuple(numbering.shapes)
        self._soft_positions, self._constant = self._entries(numbering)

    # --- checks and levels ------------------------------------------------------------------

    def _type(self, neuron: str) -> str:
        return self.engine.network.neurons[neuron]

    def _all_links(self) -> list[tuple[str, str, str, str, float]]:
        return [*links(self.engine.network.fixed), *links(self.engine.matrix)]

    def _check_recurrences(self) -> None:
        net, soft = self.engine.network, set(self.engine.soft_links)
        looped: set[str] = set()
        for to, to_input, source, from_output, weight in self._all_links():
            link = (to, to_input, source, from_output)
            if self._type(to) == ACCUMULATOR and to_input == "dict-1":
                expected: tuple[str, ...] | None = (to, to_input, to, "dict")
            elif self._type(to) == TIMER:
                expected = (to, to_input, to, "timer")
            elif to == self.engine.layout.input_neuron and self._type(source) == TIMER:
                expected = (to, to_input, source, "timer")
            elif to == self.engine.layout.input_neuron:
                expected = None
            else:
                continue
            if link != expected or weight != 1.0 or link in soft:
                raise CompileError(
                    f"network {net.name!r}: link {to}.{to_input} ← {source}.{from_output} "
                    f"(weight {weight}{', soft' if link in soft else ''}): {_NEEDS}"
                )
            looped.add(to)
        for group in self.engine.layout.groups:
            for neuron in group.neurons:
                if group.type_name in (ACCUMULATOR, TIMER) and neuron not in looped:
                    raise CompileError(
                        f"network {net.name!r}: {group.type_name} {neuron!r} has no memory loop "
                        f"(hard weight-1 link from its own output): {_NEEDS}"
                    )

    def _neuron_levels(self) -> dict[str, int]:
        """Level of every active neuron; the clock and the driven input are level 0."""
        sources: dict[str, set[str]] = {}
        for to, to_input, source, _, _ in self._all_links():
            if not (self._type(to) == ACCUMULATOR and to_input == "dict-1"):
                sources.setdefault(to, set()).add(source)
        layout = self.engine.layout
        base = {n for g in layout.groups for n in g.neurons if g.type_name == TIMER}
        base.add(str(layout.input_neuron))
        levels = dict.fromkeys(base, 0)
        pending = [n for g in layout.groups for n in g.neurons if n not in base]
        while pending:
            ready = [n for n in pending if sources.get(n, set()) <= levels.keys()]
            if not ready:
                raise CompileError(
                    f"network {self.engine.network.name!r}: neurons {sorted(pending)[:6]} lie "
                    f"on a cycle of links: {_NEEDS}"
                )
            for n in ready:
                levels[n] = 1 + max((levels[s] for s in sources.get(n, ())), default=0)
            pending = [n for n in pending if n not in levels]
        return levels

    # --- planning ---------------------------------------------------------------------------

    def _plan(self, levels: dict[str, int], numbering: _Numbering) -> list[_Level]:
        plan = []
        blocks: tuple[tuple[Kind, Kind], ...] = (
            ("scalar", "scalar"),
            ("scalar", "dict"),
            ("dict", "scalar"),
            ("dict", "dict"),
        )
        for level in range(1, max(levels.values(), default=0) + 1):
            below = dict(numbering.counts)  # columns of the levels below this one
            first = len(numbering.shapes)
            ids = (first, first + 1, first + 2, first + 3)
            rows: dict[Kind, int] = {"scalar": 0, "dict": 0}
            pieces = []
            for group in self.engine.layout.groups:
                members = tuple(n for n in group.neurons if levels.get(n) == level)
                if members and group.form.output_kinds:
                    pieces.append(self._piece(group, members, rows, ids, numbering))
            for row_kind, column_kind in blocks:
                numbering.matrix(rows[row_kind], below[column_kind])
            for piece in pieces:  # this level's outputs: columns for the levels above
                spec = self.engine.registry.get(piece.group.type_name)
                for name, kind in zip(spec.outputs, piece.group.form.output_kinds, strict=True):
                    for neuron in piece.members:
                        numbering.column(neuron, name, kind)
            plan.append(_Level(tuple(pieces), ids))
        return plan

    def _piece(
        self,
        group: Group,
        members: tuple[str, ...],
        rows: dict[Kind, int],
        ids: tuple[int, int, int, int],
        numbering: _Numbering,
    ) -> _Piece:
        inputs: list[tuple[Kind, int, int] | None] = []
        names = self.engine.registry.get(group.type_name).inputs
        for j, (name, kind) in enumerate(zip(names, group.form.input_kinds, strict=True)):
            if group.type_name == ACCUMULATOR and j == 0:
                inputs.append(None)  # the memory loop: a cumulative sum, not an input
                continue
            start = rows[kind]
            for neuron in members:
                matrix = ids[0] if kind == "scalar" else ids[2]
                numbering.rows[neuron, name] = (matrix, kind, rows[kind])
                rows[kind] += 1
            inputs.append((kind, start, rows[kind]))
        return _Piece(group, members, tuple(inputs))

    def _entries(self, numbering: _Numbering) -> tuple[Tensor, Tensor]:
        """Flat positions of the soft weights, and the flat constant of the hard links."""
        offsets = [0]
        for rows, columns in self._shapes:
            offsets.append(offsets[-1] + rows * columns)
        constant = torch.zeros(offsets[-1], dtype=self.engine.dtype)

        def position(link: tuple[str, str, str, str]) -> int | None:
            to, to_input, source, from_output = link
            if (to, to_input) not in numbering.rows:
                return None  # a clock or memory input: not a matrix row (checked above)
            matrix, _, row = numbering.rows[to, to_input]
            kind, column = numbering.columns[source, from_output]
            matrix += kind == "dict"  # the sd / dd matrix sits right after ss / ds
            return offsets[matrix] + row * self._shapes[matrix][1] + column

        for to, to_input, source, from_output, weight in links(self.engine.network.fixed):
            where = position((to, to_input, source, from_output))
            if where is not None:
                constant[where] += weight
        positions = [position(link) for link in self.engine.soft_links]
        if any(p is None for p in positions):  # excluded by _check_recurrences
            raise CompileError(f"network {self.engine.network.name!r}: a soft link has no row")
        return torch.tensor(positions, dtype=torch.long), constant

    def _clock_and_input(self, feed: TimerFeed, numbering: _Numbering) -> tuple[Tensor, Tensor]:
        """Level 0: what cycles 1..T read from the clock and the input neuron (output t−1)."""
        lay, t_count, b, k = self.engine.layout, self.window, self.batch, self.capacity
        dtype = self.engine.dtype
        timers = [n for g in lay.groups if g.type_name == TIMER for n in g.neurons]
        for neuron in timers:
            numbering.column(neuron, "timer", "scalar")
        before = torch.arange(t_count, dtype=dtype).view(1, -1, 1)  # cycle t reads timer t−1
        scalars = before.expand(len(timers), t_count, b).reshape(len(timers), t_count * b)
        dicts = torch.zeros(1, t_count, b, k, dtype=dtype)
        if lay.input_neuron is not None:
            numbering.column(lay.input_neuron, "char", "dict")
            ctx = Context(b, k, self.engine.eos_column, False, dtype)
            # the input neuron reads timer t−1 at cycle t; its output reaches cycle t+1
            for t in range(1, t_count):
                clock = torch.full((b,), float(t - 1), dtype=dtype)
                dicts[0, t] = feed.emit(clock, ctx)
        else:
            dicts = dicts[:0]
        return scalars.contiguous(), dicts.reshape(-1, t_count * b, k)

    # --- evaluation -------------------------------------------------------------------------

    def outputs(self, weights: Tensor) -> Tensor:
        """The ``":number"`` of each named output at cycles 1..T.

        Args:
            weights: ``[L]`` soft weights in `engine.soft_links` order; gradients flow to it.

        Returns:
            ``[n_outputs, T, B]``, in the order of `names`.
        """
        flat = self._constant.index_put((self._soft_positions,), weights, accumulate=True)
        sizes = [rows * columns for rows, columns in self._shapes]
        pieces = torch.split(flat, sizes)
        matrices = [m.view(shape) for m, shape in zip(pieces, self._shapes, strict=True)]
        scalars, dicts = self._scalars0, self._dicts0
        numbers = dicts[..., 0]
        for level in self._levels:
            scalars, dicts, numbers = self._advance(level, matrices, scalars, dicts, numbers)
        read_s, read_d = (matrices[i] for i in self._readout)
        read: Tensor = read_s @ scalars + read_d @ numbers
        return read.view(len(self.names), self.window, self.batch)

    def _advance(
        self,
        level: _Level,
        matrices: list[Tensor],
        scalars: Tensor,
        dicts: Tensor,
        numbers: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One level's series from the levels below, appended (shifted one cycle) to the state.

        Shapes: scalars ``[n_s, T·B]``, dicts ``[n_d, T·B, K]``, numbers = dicts' column 0.
        """
        tb, k = self.window * self.batch, self.capacity
        ss, sd, ds, dd = (matrices[i] for i in level.matrices)
        scalar_in = ss @ scalars + sd @ numbers
        dict_in = (dd @ dicts.reshape(dicts.shape[0], tb * k)).view(-1, tb, k)
        dict_in = dict_in + torch.nn.functional.pad((ds @ scalars).unsqueeze(-1), (0, k - 1))
        ctx = self.engine.context(tb)
        ctx = Context(tb, k, ctx.eos_column, ctx.detach_memory, ctx.dtype)
        # one split per kind (rows are numbered piece by piece, field by field, in order)
        split = {
            "scalar": iter(torch.split(scalar_in, level.row_sizes[0])),
            "dict": iter(torch.split(dict_in, level.row_sizes[1])),
        }
        new: dict[Kind, list[Tensor]] = {"scalar": [], "dict": []}
        for piece in level.pieces:
            inputs = [None if s is None else next(split[s[0]]) for s in piece.inputs]
            outs = self._apply(piece, inputs, ctx)
            for kind, out in zip(piece.group.form.output_kinds, outs, strict=True):
                new[kind].append(out)
        if new["scalar"]:
            scalars = torch.cat([scalars, self._shift(torch.cat(new["scalar"]))])
        if new["dict"]:
            fresh = self._shift(torch.cat(new["dict"]))
            dicts = torch.cat([dicts, fresh])
            numbers = torch.cat([numbers, fresh[..., 0]])
        return scalars, dicts, numbers

    def _shift(self, series: Tensor) -> Tensor:
        """Outputs at cycles 1..T (``[n, T·B, ...]``) → what cycles 1..T read: output t−1."""
        b = self.batch
        return torch.cat([torch.zeros_like(series[:, :b]), series[:, :-b]], dim=1)

    def _apply(self, piece: _Piece, inputs: list[Tensor | None], ctx: Context) -> list[Tensor]:
        if piece.group.type_name == ACCUMULATOR:
            fresh = inputs[1]
            assert fresh is not None  # planned: dict-2 is always read
            series = fresh.view(piece.size, self.window, self.batch, self.capacity)
            total = series.cumsum(dim=1)
            if ctx.detach_memory:
                # value: the cumulative sum; gradient: only through this cycle's dict-2 term
                total = total.detach() + (series - series.detach())
            return [total.view(piece.size, -1, self.capacity)]
        return piece.group.form.function([x for x in inputs if x is not None], piece.size, ctx)
