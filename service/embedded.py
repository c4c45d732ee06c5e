"""`dmm run`: a machine on a text, no broker — one JSON line (or table row) per message."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Literal, TextIO

from dmm_engine import Network, NeuronRegistry, one_hot, split_symbols, vvalue
from dmm_engine.drivers import SymbolMode
from dmm_engine.engines import make_machines
from service.errors import InputTextError

OutputFormat = Literal["json", "table"]


def read_symbols(lines: Iterable[str], mode: SymbolMode) -> Iterator[str]:
    """Symbols as the text arrives, line by line (so piping a live source streams)."""
    try:
        for line in lines:
            yield from split_symbols(line, mode)
    except UnicodeDecodeError as exc:
        raise InputTextError(f"input is not valid UTF-8: {exc}") from exc


def symbol_mode_of(network: Network, tokens: bool) -> SymbolMode:
    """Tokens when asked for, or when the model's metadata says its symbols are tokens."""
    return "tokens" if tokens or network.metadata.get("symbols") == "tokens" else "chars"


def run_text(
    network: Network,
    registry: NeuronRegistry,
    symbols: Iterable[str],
    out: TextIO,
    output_format: OutputFormat = "json",
    engine: str = "compiled",
) -> int:
    """Run `network` on `symbols`, one message each; write one record per message to `out`.

    Args:
        engine: ``compiled`` (default) or ``interpreter``; both give the same numbers.

    Returns:
        The number of messages processed.
    """
    machines = make_machines(network, registry, engine)
    names = list(network.outputs)
    if output_format == "table":
        out.write("  ".join([f"{'seq':>5}", f"{'input':<8}", *(f"{n:>8}" for n in names)]) + "\n")
    seq = 0
    for seq, symbol in enumerate(symbols, start=1):
        (outputs,) = machines.step([("stdin", one_hot(symbol))])
        out.write(_format(seq, symbol, outputs, names, output_format) + "\n")
        out.flush()
    return seq


def _format(
    seq: int, symbol: str, outputs: dict[str, vvalue.VValue], names: list[str], fmt: OutputFormat
) -> str:
    if fmt == "json":
        record = {
            "seq": seq,
            "input": symbol,
            "outputs": {n: vvalue.to_jsonable(outputs[n]) for n in names},
        }
        return json.dumps(record, ensure_ascii=False)
    cells = [_cell(outputs[n]) for n in names]
    return "  ".join([f"{seq:>5}", f"{json.dumps(symbol, ensure_ascii=False):<8}", *cells])


def _cell(value: vvalue.VValue) -> str:
    data = vvalue.to_jsonable(value)
    if isinstance(data, (int, float)):
        return f"{data:>8.4g}"
    return f"{json.dumps(data):>8}"
