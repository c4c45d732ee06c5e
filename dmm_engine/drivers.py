"""Input drivers: how symbols reach a network's input neuron.

* `TimerDrivenText` — the seed's driver (reference §4.2): the input neuron reads the timer and
  emits symbol i at cycle 10(i−1)+1; after the text ends the last symbol is re-emitted every
  10 cycles (hence "test string..." in a 140-cycle window).
* `MessageFeed` / `run_messages` — the service's driver: a message's symbol on the first of the
  network's ``cycles_per_message`` cycles and nothing on the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from dmm_engine import interpreter, vvalue
from dmm_engine.errors import DmmError
from dmm_engine.network import Network
from dmm_engine.neurons import Fields, NeuronRegistry
from dmm_engine.vvalue import VValue

SymbolMode = Literal["chars", "tokens"]
INPUT_FIELD = "char"
"""The output field of the built-in ``input`` type."""


def one_hot(symbol: str) -> VValue:
    """``{symbol: 1.0}``: how a character or token enters a machine."""
    return {symbol: 1.0}


def split_symbols(text: str, mode: SymbolMode) -> list[str]:
    """Characters of `text` (every one, spaces and newlines included) or whitespace tokens."""
    if mode == "chars":
        return list(text)
    if mode == "tokens":
        return text.split()
    raise DmmError(f"symbol mode {mode!r} is not one of 'chars', 'tokens'")


@dataclass(frozen=True, slots=True)
class TimerDrivenText:
    """The seed's timer-driven input: symbol ``min(t // period + 1, n)`` when ``t % period == 0``.

    ``t = max(N(timer), 0)`` is the timer value the input neuron receives (reference §3.1).
    """

    symbols: Sequence[str]
    period: int = 10

    def emit(self, cycle: int, inputs: Mapping[str, VValue]) -> Fields:
        t = max(vvalue.get_number(inputs.get("timer")), 0.0)
        if not self.symbols or t % self.period != 0:
            return {INPUT_FIELD: {}}
        i = min(int(t // self.period), len(self.symbols) - 1)
        return {INPUT_FIELD: one_hot(self.symbols[i])}


@dataclass(frozen=True, slots=True)
class MessageFeed:
    """Emits `value` on the cycle numbered `first_cycle` and nothing on any other cycle."""

    value: VValue
    first_cycle: int

    def emit(self, cycle: int, inputs: Mapping[str, VValue]) -> Fields:
        return {INPUT_FIELD: self.value if cycle == self.first_cycle else {}}


def step_message(
    network: Network, registry: NeuronRegistry, state: interpreter.State, value: VValue
) -> interpreter.State:
    """Run the `cycles_per_message` cycles of one message whose input V-value is `value`."""
    feed = MessageFeed(value, state.cycle + 1)
    for _ in range(network.cycles_per_message):
        state = interpreter.cycle(network, registry, state, feed)
    return state


def run_messages(
    network: Network, registry: NeuronRegistry, values: Iterable[VValue]
) -> Iterator[dict[str, VValue]]:
    """From the reset state, the named outputs after each message of `values`."""
    state = interpreter.initial_state(network, registry)
    for value in values:
        state = step_message(network, registry, state, value)
        yield interpreter.read_outputs(network, state)


def run_timer_driven(
    network: Network, registry: NeuronRegistry, symbols: Sequence[str], cycles: int
) -> list[dict[str, VValue]]:
    """The named outputs after each of `cycles` cycles with the seed's timer-driven input."""
    driver = TimerDrivenText(symbols)
    state = interpreter.initial_state(network, registry)
    trace = []
    for _ in range(cycles):
        state = interpreter.cycle(network, registry, state, driver)
        trace.append(interpreter.read_outputs(network, state))
    return trace
