"""`StreamMachines` on the compiled engine: one state tensor for every stream, one row each.

`step` gathers the rows of the streams in the batch, runs one batched message for all of them
and scatters the rows back (skipped when the batch is every stream, in row order). Rows of
dropped streams are reset and reused; the row capacity doubles as streams arrive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from dmm_engine import vvalue
from dmm_engine.compiled.engine import BatchState, CompiledEngine, step_message
from dmm_engine.errors import DmmError
from dmm_engine.network import Network
from dmm_engine.neurons import NeuronRegistry
from dmm_engine.streams import Snapshot, updated_network
from dmm_engine.vvalue import VValue


class CompiledMachines:
    """Per-stream states as rows of one `BatchState`; see the module docstring."""

    def __init__(
        self, network: Network, registry: NeuronRegistry, *, dtype: torch.dtype = torch.float32
    ) -> None:
        self.network = network
        self.engine = CompiledEngine(network, registry, dtype=dtype)
        self._rows: dict[str, int] = {}
        self._free: list[int] = []
        self._cycles: dict[str, int] = {}
        self._state = self.engine.new_state(16)

    def _row(self, stream: str) -> int:
        row = self._rows.get(stream)
        if row is None:
            if not self._free:
                self._grow()
            row = self._rows[stream] = self._free.pop()
            self._cycles[stream] = 0
        return row

    def _grow(self) -> None:
        old = self.engine.relayout(self._state)
        used = len(self._rows)
        size = max(16, 2 * old.batch) if used >= old.batch else old.batch
        if size != old.batch:
            new = self.engine.new_state(size)
            new.scalars()[:, : old.batch] = old.scalars()
            new.dicts()[:, : old.batch] = old.dicts()
            old = new
        self._state = old
        taken = set(self._rows.values())
        self._free = sorted((r for r in range(old.batch) if r not in taken), reverse=True)

    def step(self, batch: Sequence[tuple[str, VValue]]) -> list[dict[str, VValue]]:
        if len({stream for stream, _ in batch}) != len(batch):
            raise DmmError("step: a stream may appear only once per batch (one message per tick)")
        rows = [self._row(stream) for stream, _ in batch]
        feed = self.engine.dense_feed([value for _, value in batch])
        with torch.no_grad():
            self._state = self.engine.relayout(self._state)
            every = rows == list(range(self._state.batch))
            sub = self._state if every else self._gather(rows)
            sub, outputs = step_message(self.engine, sub, feed)
            self._state = sub if every else self._scatter(sub, rows)
        for stream, _ in batch:
            self._cycles[stream] += self.network.cycles_per_message
        # one .tolist() per output, then plain Python: per-element tensor reads are the
        # worker's bottleneck otherwise
        as_lists = {
            name: (values.tolist(), self.engine.has_scalar_source(self.network.outputs[name]))
            for name, values in outputs.items()
        }
        return [
            {
                name: self._row_vvalue(lists[b], present)
                for name, (lists, present) in as_lists.items()
            }
            for b in range(len(batch))
        ]

    def _row_vvalue(self, row: list[float], scalar_present: bool = False) -> VValue:
        """A ``[K]`` row (as a list) as a flat V-value; see `CompiledEngine.to_vvalue`."""
        key = self.engine.keys.key
        out: VValue = {key(column): x for column, x in enumerate(row) if x != 0.0}
        if scalar_present and vvalue.NUMBER not in out:
            out[vvalue.NUMBER] = 0.0
        return out

    def _gather(self, rows: list[int]) -> BatchState:
        index = torch.tensor(rows, dtype=torch.long)
        scalars = self._state.scalars().index_select(1, index)
        dicts = self._state.dicts().index_select(1, index)
        tensor = torch.cat([scalars.reshape(-1), dicts.reshape(-1)])
        return BatchState(tensor, len(rows), self._state.capacity, self._state.layout)

    def _scatter(self, sub: BatchState, rows: list[int]) -> BatchState:
        state = self.engine.relayout(self._state)  # a Self delta may have re-laid the engine
        sub = self.engine.relayout(sub)
        index = torch.tensor(rows, dtype=torch.long)
        state.scalars().index_copy_(1, index, sub.scalars())
        state.dicts().index_copy_(1, index, sub.dicts())
        return state

    def snapshot(self, stream: str) -> Snapshot:
        if stream not in self._rows:
            return {"cycle": 0, "outputs": {}}
        self._state = self.engine.relayout(self._state)
        row, lay = self._rows[stream], self._state.layout
        outputs: dict[str, dict[str, object]] = {}
        scalars, dicts = self._state.scalars()[:, row], self._state.dicts()[:, row]
        for (neuron, field), x in zip(lay.scalar_outputs, scalars.tolist(), strict=True):
            outputs.setdefault(neuron, {})[field] = vvalue.to_jsonable(vvalue.number(x))
        for (neuron, field), values in zip(lay.dict_outputs, dicts.tolist(), strict=True):
            outputs.setdefault(neuron, {})[field] = vvalue.to_jsonable(self._row_vvalue(values))
        return {"cycle": self._cycles[stream], "outputs": outputs}

    def restore(self, stream: str, snapshot: Snapshot) -> None:
        from dmm_engine.streams import state_of  # validates and parses the snapshot

        parsed = state_of(snapshot)
        self.drop(stream)
        row = self._row(stream)
        flat = [(n, f, v) for n, fields in parsed.outputs.items() for f, v in fields.items()]
        for _, _, value in flat:
            for key in value:
                self.engine.keys.id(key)
        self._state = self.engine.relayout(self._state)
        lay, n_s = self._state.layout, len(self._state.layout.scalar_outputs)
        for neuron, field, value in flat:
            index = lay.output_index((neuron, field))
            if index is None:
                continue  # a neuron that is not active in this network version
            if index < n_s:
                self._state.scalars()[index, row] = vvalue.get_number(value)
            else:
                self._state.dicts()[index - n_s, row] = self.engine.dense_feed([value])[0]
        self._cycles[stream] = parsed.cycle

    def drop(self, stream: str) -> None:
        row = self._rows.pop(stream, None)
        self._cycles.pop(stream, None)
        if row is not None:
            self._state = self.engine.relayout(self._state)
            self._state.scalars()[:, row] = 0.0
            self._state.dicts()[:, row] = 0.0
            self._free.append(row)

    def streams(self) -> list[str]:
        return sorted(self._rows)

    def matrix(self) -> VValue:
        return self.engine.matrix

    def apply_delta(self, delta: VValue, neurons: Mapping[str, str] | None = None) -> None:
        # validating first gives path-named errors before anything is compiled
        updated_network(self.engine.network, self.engine.registry, delta, neurons)
        self.engine.apply_delta(delta, neurons)
        self.network = self.engine.network

    def state_bytes(self) -> int:
        """Bytes of the state tensor (all rows, used or free)."""
        return self._state.tensor.numel() * self._state.tensor.element_size()
