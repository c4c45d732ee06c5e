"""Labels: training examples from a topic (``DMM_TRAINER_LABELS_TOPIC``) instead of a teacher.

A label message (key = stream id) is one step of a labelled stream, in the shape of a
``dmm.output`` record (other fields are ignored)::

    {"seq": 3, "input": "s", "outputs": {"left": 0, "right": 0}}

— the stream's ``seq``-th symbol (from 1) and the outputs the machine should give after it.
An output may be a number or a V-value whose ``":number"`` is used; an output left out has no
target at that step.

Outputs depend on the whole stream from its first symbol, so a labelled stream is trained
from its beginning: `LabelSampler` keeps the first ``window`` steps of each stream whose step
1 it saw, in order, and ignores streams it joined late and steps after a gap. The objective
compares the network's outputs with the labels at the end of each message (cycle 10·n of
the reset run), where the worker reads them, and nowhere else (NaN targets,
`dmm_engine.train.Objective`).
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from dmm_engine import DmmError, Network, NeuronRegistry, vvalue
from dmm_engine.compiled import CompiledEngine, GradMode, KeyRegistry
from dmm_engine.synthesis import unroll_for
from dmm_engine.synthesis.presets import clean_window
from dmm_engine.train import Objective
from service.errors import BadLabelError
from service.trainer.sampler import split_windows
from service.trainer.tuning import buckets

CYCLES_PER_SYMBOL = 10


@dataclass(frozen=True, slots=True)
class Step:
    """One labelled step: the symbol and the wanted outputs after it (name → number)."""

    symbol: str
    targets: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class Label:
    """A decoded label message."""

    stream: str
    seq: int
    step: Step


def decode_label(key: bytes | None, value: bytes | None, names: Sequence[str]) -> Label:
    """Parse one label message for a machine whose outputs are `names`.

    Raises:
        BadLabelError: naming what is missing or wrong.
    """
    if not key:
        raise BadLabelError("label has no key (the stream id)")
    try:
        stream = key.decode("utf-8")
    except UnicodeDecodeError:
        raise BadLabelError(f"label key {key!r} is not UTF-8 text") from None
    try:
        data = json.loads(value or b"")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadLabelError(f"label of stream {stream!r} is not UTF-8 JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadLabelError(f"label of stream {stream!r}: expected a JSON object")
    seq, symbol, outputs = data.get("seq"), data.get("input"), data.get("outputs")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise BadLabelError(f"label of stream {stream!r}: 'seq' must be an integer >= 1")
    if not isinstance(symbol, str) or not symbol:
        raise BadLabelError(f"label of stream {stream!r} seq {seq}: 'input' must be a symbol")
    if not isinstance(outputs, dict):
        raise BadLabelError(f"label of stream {stream!r} seq {seq}: 'outputs' must be an object")
    targets = {}
    for name, given in outputs.items():
        if name not in names:
            raise BadLabelError(
                f"label of stream {stream!r} seq {seq}: unknown output {name!r} "
                f"(the model's outputs: {', '.join(names)})"
            )
        try:
            number = vvalue.get_number(vvalue.from_jsonable(given, f"outputs.{name}"))
        except DmmError as exc:
            raise BadLabelError(f"label of stream {stream!r} seq {seq}: {exc}") from None
        if not math.isfinite(number):
            raise BadLabelError(
                f"label of stream {stream!r} seq {seq}: outputs.{name} is not finite"
            )
        targets[name] = number
    return Label(stream, seq, Step(symbol, targets))


class LabelSampler:
    """The first `window` labelled steps of each stream seen from its step 1.

    Args:
        window: most steps kept per stream.
        max_streams: most streams kept; the least recently updated is dropped first.
    """

    def __init__(self, *, window: int, max_streams: int) -> None:
        if window < 1 or max_streams < 1:
            raise ValueError(
                f"LabelSampler(window={window}, max_streams={max_streams}): both must be >= 1"
            )
        self.window = window
        self.max_streams = max_streams
        self._streams: OrderedDict[str, list[Step]] = OrderedDict()
        self.symbols_seen = 0
        self.ignored = 0

    def add(self, label: Label) -> None:
        """Keep `label` if it is the next step of a stream (step 1 starts the stream anew)."""
        self.symbols_seen += 1
        steps = self._streams.get(label.stream)
        if label.seq == 1:
            if steps is None and len(self._streams) >= self.max_streams:
                self._streams.popitem(last=False)
            self._streams[label.stream] = [label.step]
            self._streams.move_to_end(label.stream)
        elif steps is not None and label.seq == len(steps) + 1 and len(steps) < self.window:
            steps.append(label.step)
            self._streams.move_to_end(label.stream)
        else:  # joined late, a gap, a repeat, or beyond the window
            self.ignored += 1

    def __len__(self) -> int:
        return len(self._streams)

    def split(
        self, holdout_fraction: float, max_train: int, *, min_symbols: int = 1
    ) -> tuple[dict[str, tuple[Step, ...]], dict[str, tuple[Step, ...]]]:
        """``(training, held_out)`` labelled streams (see `service.trainer.sampler`)."""
        windows = {stream: tuple(steps) for stream, steps in self._streams.items()}
        return split_windows(windows, holdout_fraction, max_train, min_symbols)


class LabelTargets:
    """`TargetSource` of labelled streams: each cut to its bucket length from its start.

    Args:
        registry: neuron types of the networks asked about.
        streams: stream → its labelled steps from step 1.
        window_symbols: the sample window (largest bucket).
        names: the model's output names, in its order.
        grad_mode: the gradient mode of training.

    Raises:
        DmmError: no stream is long enough to train on.
    """

    def __init__(
        self,
        registry: NeuronRegistry,
        streams: Mapping[str, Sequence[Step]],
        window_symbols: int,
        names: Sequence[str],
        grad_mode: GradMode,
    ) -> None:
        self.registry = registry
        self.names = tuple(names)
        self.grad_mode: GradMode = grad_mode
        self.keys = KeyRegistry()
        grouped: dict[int, list[Sequence[Step]]] = {}
        lengths = buckets(window_symbols)
        for steps in streams.values():
            fitting = [length for length in lengths if length <= len(steps)]
            if fitting:
                grouped.setdefault(fitting[-1], []).append(steps[: fitting[-1]])
        if not grouped:
            raise DmmError("LabelTargets: no labelled stream is long enough to train on")
        self._sets = [self._set(length, group) for length, group in sorted(grouped.items())]
        self._outputs = sum(int((~torch.isnan(t)).sum()) for _, _, t in self._sets)

    def _set(
        self, length: int, group: Sequence[Sequence[Step]]
    ) -> tuple[list[list[str]], int, torch.Tensor]:
        window = clean_window("x" * length)
        targets = torch.full((len(self.names), window, len(group)), math.nan)
        texts = []
        for b, steps in enumerate(group):
            texts.append([step.symbol for step in steps])
            for i, step in enumerate(steps, start=1):
                self.keys.id(step.symbol)
                for o, name in enumerate(self.names):
                    if name in step.targets:  # read after the message's last cycle
                        targets[o, CYCLES_PER_SYMBOL * i - 1, b] = step.targets[name]
        return texts, window, targets

    def objective(self, network: Network, lam: float) -> Objective:
        if tuple(network.outputs) != self.names:
            raise DmmError(
                f"labels name the outputs {list(self.names)}; network {network.name!r} has "
                f"{list(network.outputs)}"
            )
        engine = CompiledEngine(network, self.registry, keys=self.keys, grad_mode=self.grad_mode)
        parts = [(unroll_for(engine, texts, window), t) for texts, window, t in self._sets]
        return Objective.of_parts(parts, lam)

    @property
    def outputs(self) -> int:
        return self._outputs
