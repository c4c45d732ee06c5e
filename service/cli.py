"""The `dmm` command: thin callers that parse options, call one function, map errors to exits."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from dmm_engine import DmmError, default_registry, zoo
from service import embedded
from service.errors import ServiceError

app = typer.Typer(
    name="dmm",
    help="dataflow matrix machines on live text streams.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_BAD_INPUT = 2


@app.callback()
def _group() -> None:
    """dataflow matrix machines on live text streams."""


def _fail(message: str) -> typer.Exit:
    typer.echo(f"dmm: error: {message}", err=True)
    return typer.Exit(EXIT_BAD_INPUT)


@app.command()
def run(
    input_file: Annotated[
        Path | None, typer.Option("--input", "-i", help="Text file to read. Default: stdin.")
    ] = None,
    model: Annotated[
        str, typer.Option(help="Zoo model name or model file. Default: duplicate-detector.")
    ] = "duplicate-detector",
    tokens: Annotated[
        bool, typer.Option("--tokens", help="One message per whitespace token, not per character.")
    ] = False,
    output_format: Annotated[
        embedded.OutputFormat,
        typer.Option("--format", help="json (one line per message) or table."),
    ] = "json",
) -> None:
    """Run a machine on text with no broker: one message per character (or token)."""
    registry = default_registry()
    sys.stdout.reconfigure(encoding="utf-8")
    try:
        network = zoo.resolve(model, registry)
        mode = embedded.symbol_mode_of(network, tokens)
        if input_file is None:
            # strict UTF-8 whatever the locale: bad bytes are an error, not replacement marks
            sys.stdin.reconfigure(encoding="utf-8", errors="strict")
            source = sys.stdin
        else:
            source = input_file.open(encoding="utf-8")
        with source:
            embedded.run_text(
                network, registry, embedded.read_symbols(source, mode), sys.stdout, output_format
            )
    except OSError as exc:
        raise _fail(f"cannot read --input {input_file}: {exc.strerror or exc}") from exc
    except (DmmError, ServiceError) as exc:
        raise _fail(str(exc)) from exc


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app()


if __name__ == "__main__":
    main()
