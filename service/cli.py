"""The `dmm` command: thin callers that parse options, call one function, map errors to exits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from aiokafka.errors import KafkaError

from dmm_engine import DmmError, count_links, zoo
from dmm_engine.drivers import SymbolMode
from dmm_engine.engines import EngineName
from service import cli_train, embedded, kafka_local
from service.cli_train import NeuronTypes
from service.control import encode_update
from service.errors import ServiceError
from service.neuron_types import load_registry
from service.produce import produce_text
from service.publish import describe_ack, rollback, swap_status, swap_to_model
from service.settings import Settings, load_settings
from service.tail import tail as tail_topic
from service.worker import run_worker

app = typer.Typer(
    name="dmm",
    help="dataflow matrix machines on live text streams.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_BAD_INPUT = 2
EXIT_NOT_RUNNING = 1
T = TypeVar("T")

kafka_app = typer.Typer(
    name="kafka",
    help="A local single-node Kafka broker (KRaft) for tests and the demo.",
    no_args_is_help=True,
)
app.add_typer(kafka_app)


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
    engine: Annotated[
        EngineName,
        typer.Option(
            help="compiled (batched torch) or interpreter (reference). Default: compiled."
        ),
    ] = "compiled",
    neuron_types: NeuronTypes = None,
) -> None:
    """Run a machine on text with no broker: one message per character (or token)."""
    sys.stdout.reconfigure(encoding="utf-8")
    try:
        registry = load_registry(_settings(worker__neuron_types=neuron_types))
        network = zoo.resolve(model, registry)
        mode = embedded.symbol_mode_of(network, tokens)
        if input_file is None:
            # strict UTF-8 whatever the locale: bad bytes are an error, not replacement marks
            sys.stdin.reconfigure(encoding="utf-8", errors="strict")
            source = sys.stdin
        else:
            source = input_file.open(encoding="utf-8")
        with source:
            symbols = embedded.read_symbols(source, mode)
            embedded.run_text(network, registry, symbols, sys.stdout, output_format, engine)
    except OSError as exc:
        raise _fail(f"cannot read --input {input_file}: {exc.strerror or exc}") from exc
    except (DmmError, ServiceError) as exc:
        raise _fail(str(exc)) from exc


FLAGS = {
    "kafka.bootstrap": "--bootstrap",
    "topics.partitions": "--partitions",
    "topics.input": "--input-topic",
    "topics.output": "--output-topic",
    "topics.state": "--state-topic",
    "topics.dlq": "--dlq-topic",
    "topics.control": "--control-topic",
    "topics.control_acks": "--acks-topic",
    "worker.group": "--group",
    "worker.id": "--worker-id",
    "worker.model": "--model",
    "worker.guarantee": "--guarantee",
    "worker.batch_max_records": "--batch-max-records",
    "worker.linger_ms": "--linger-ms",
    "worker.fetch_timeout_ms": "--fetch-timeout-ms",
    "worker.neuron_types": "--neuron-types",
    "trainer.group": "--trainer-group",
    "trainer.teacher": "--teacher",
    "trainer.interval_s": "--interval",
    "cache_dir": "--cache-dir",
}
"""Settings a command-line flag can override: dotted field path → flag."""

Bootstrap = Annotated[
    str | None,
    typer.Option(help="Kafka bootstrap host:port. Default: DMM_KAFKA_BOOTSTRAP or 127.0.0.1:9092."),
]
Partitions = Annotated[
    int | None,
    typer.Option(help="Partitions of created topics. Default: DMM_TOPICS_PARTITIONS or 8."),
]
CacheDir = Annotated[
    Path | None,
    typer.Option(help="Jar cache. Default: DMM_CACHE_DIR or ~/.cache/dmm-stream."),
]
RunDir = Annotated[
    Path | None,
    typer.Option(help="Broker run directory. Default: <cache dir>/kafka-run."),
]


def _settings(**overrides: Any) -> Settings:
    """`Settings` from the environment, overridden by the flags given (dotted paths as kwargs)."""
    given = {path.replace("__", "."): value for path, value in overrides.items()}
    return load_settings(given, FLAGS)


@contextlib.contextmanager
def _exit_on_errors() -> Iterator[None]:
    """Our errors (and Kafka's) become one line on stderr and exit code 2."""
    try:
        yield
    except (ServiceError, DmmError, kafka_local.LocalBrokerError) as exc:
        raise _fail(" ".join(str(exc).split())) from exc
    except KafkaError as exc:
        raise _fail(f"Kafka: {' '.join(str(exc).split())}") from exc


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    with _exit_on_errors():
        return asyncio.run(coroutine)


@app.command()
def worker(
    bootstrap: Bootstrap = None,
    group: Annotated[str | None, typer.Option(help="Consumer group. Default: dmm-worker.")] = None,
    model: Annotated[
        str | None, typer.Option(help="Zoo model or model file. Default: duplicate-detector.")
    ] = None,
    guarantee: Annotated[
        str | None,
        typer.Option(help="at-least-once or exactly-once. Default: at-least-once."),
    ] = None,
    engine: Annotated[
        str | None, typer.Option(help="compiled or interpreter. Default: compiled.")
    ] = None,
    neuron_types: NeuronTypes = None,
    partitions: Partitions = None,
    batch_max_records: Annotated[
        int | None, typer.Option(help="Most input records per batch. Default: 500.")
    ] = None,
    linger_ms: Annotated[int | None, typer.Option(help="Producer linger, ms. Default: 5.")] = None,
    fetch_timeout_ms: Annotated[
        int | None, typer.Option(help="Longest wait per fetch, ms. Default: 200.")
    ] = None,
    worker_id: Annotated[
        str | None, typer.Option(help="Stable worker id. Default: the host name.")
    ] = None,
    input_topic: Annotated[str | None, typer.Option(help="Default: dmm.input.")] = None,
    output_topic: Annotated[str | None, typer.Option(help="Default: dmm.output.")] = None,
    state_topic: Annotated[str | None, typer.Option(help="Default: dmm.state.")] = None,
    dlq_topic: Annotated[str | None, typer.Option(help="Default: dmm.dlq.")] = None,
    max_messages: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many input records. Default: none.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(min=0.0, help="Stop after this many seconds. Default: none.")
    ] = None,
) -> None:
    """Run the streaming worker: dmm.input → machines → dmm.output (+ state, DLQ)."""
    settings = _run_settings(
        kafka__bootstrap=bootstrap, worker__group=group, worker__model=model,
        worker__guarantee=guarantee, worker__engine=engine, worker__neuron_types=neuron_types,
        topics__partitions=partitions,
        worker__batch_max_records=batch_max_records, worker__linger_ms=linger_ms,
        worker__fetch_timeout_ms=fetch_timeout_ms, worker__id=worker_id,
        topics__input=input_topic, topics__output=output_topic, topics__state=state_topic,
        topics__dlq=dlq_topic,
    )  # fmt: skip
    report = _run(run_worker(settings, max_messages=max_messages, timeout_s=timeout))
    typer.echo(
        f"worker: messages={report.messages} applied={report.applied} "
        f"skipped={report.skipped} dead_letters={report.dead_letters} "
        f"batches={report.batches} seconds={report.elapsed_s:.2f} "
        f"msgs_per_s={report.messages_per_s:.0f} model_version={report.model_version} "
        f"updates_applied={report.updates_applied} updates_rejected={report.updates_rejected}"
    )


@app.command()
def trainer(
    bootstrap: Bootstrap = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="The model the workers run. Default: DMM_WORKER_MODEL or duplicate-detector."
        ),
    ] = None,
    teacher: Annotated[
        str | None,
        typer.Option(help="Zoo model or model file to fit. Default: duplicate-detector."),
    ] = None,
    trainer_group: Annotated[
        str | None, typer.Option(help="Faust app id and consumer group. Default: dmm-trainer.")
    ] = None,
    interval: Annotated[
        float | None, typer.Option(min=0.001, help="Seconds between runs. Default: 30.")
    ] = None,
    max_runs: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many training runs. Default: none.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(min=0.0, help="Stop after this many seconds. Default: none.")
    ] = None,
) -> None:
    """Run the trainer sidecar: sample dmm.input, fine-tune, publish a better matrix.

    Only the leader of its group trains (one active trainer per model); the others stand by.
    """
    settings = _run_settings(
        kafka__bootstrap=bootstrap, worker__model=model, trainer__teacher=teacher,
        trainer__group=trainer_group, trainer__interval_s=interval,
    )  # fmt: skip
    from service.trainer import run_trainer  # Faust is loaded by this command only

    with _exit_on_errors():
        report = run_trainer(settings, max_runs=max_runs, timeout_s=timeout)
    last = report.last
    typer.echo(
        f"trainer: runs={report.runs} published={report.published} symbols={report.symbols}"
        + (f" last={last.outcome}: {last.detail}" if last else "")
    )


def _run_settings(**overrides: Any) -> Settings:
    with _exit_on_errors():
        return _settings(**overrides)


@app.command()
def produce(
    key: Annotated[str, typer.Option(help="Message key: the stream id.")],
    topic: Annotated[
        str | None, typer.Option(help="Topic. Default: the input topic (DMM_TOPICS_INPUT).")
    ] = None,
    tokens: Annotated[
        bool, typer.Option("--tokens", help="One message per whitespace token, not per character.")
    ] = False,
    rate: Annotated[
        float | None, typer.Option(min=0.001, help="Messages per second. Default: no limit.")
    ] = None,
    input_file: Annotated[
        Path | None, typer.Option("--input", "-i", help="Text file to read. Default: stdin.")
    ] = None,
    bootstrap: Bootstrap = None,
    partitions: Partitions = None,
) -> None:
    """Send text to a topic, one message per character (or token), keyed by --key."""
    settings = _run_settings(kafka__bootstrap=bootstrap, topics__partitions=partitions)
    target = topic or settings.topics.input
    try:
        source = input_file.open(encoding="utf-8") if input_file else sys.stdin
    except OSError as exc:
        raise _fail(f"cannot read --input {input_file}: {exc.strerror or exc}") from exc
    if input_file is None:
        sys.stdin.reconfigure(encoding="utf-8", errors="strict")
    mode: SymbolMode = "tokens" if tokens else "chars"
    with source:
        sent = _run(produce_text(settings, source, topic=target, key=key, mode=mode, rate=rate))
    typer.echo(f"produced {sent} messages to {target} key={key}", err=True)


@app.command()
def tail(
    topic: Annotated[
        str | None, typer.Option(help="Topic. Default: the output topic (DMM_TOPICS_OUTPUT).")
    ] = None,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the oldest message, not new ones.")
    ] = False,
    raw: Annotated[bool, typer.Option("--raw", help="Print message values as they are.")] = False,
    max_messages: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many messages. Default: none.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(min=0.0, help="Stop after this many seconds. Default: none.")
    ] = None,
    bootstrap: Bootstrap = None,
) -> None:
    """Print a topic's messages as they arrive: outputs and dead letters pretty-printed."""
    settings = _run_settings(kafka__bootstrap=bootstrap)
    sys.stdout.reconfigure(encoding="utf-8")
    _run(
        tail_topic(
            settings, topic or settings.topics.output, sys.stdout,
            from_beginning=from_beginning, raw=raw, max_messages=max_messages, timeout_s=timeout,
        )
    )  # fmt: skip


@app.command()
def swap(
    model: Annotated[
        str | None,
        typer.Option(help="Publish this zoo model's or model file's matrix as the next version."),
    ] = None,
    rollback_to: Annotated[
        int | None,
        typer.Option(
            "--rollback", min=1, help="Republish the matrix of this version as the next version."
        ),
    ] = None,
    status: Annotated[
        bool, typer.Option("--status", help="Show the latest ack of every worker.")
    ] = False,
    worker_model: Annotated[
        str | None,
        typer.Option(
            help="The model the workers run (names the updates; its matrix is the first "
            "version). Default: DMM_WORKER_MODEL or duplicate-detector."
        ),
    ] = None,
    bootstrap: Bootstrap = None,
    control_topic: Annotated[str | None, typer.Option(help="Default: dmm.control.")] = None,
    acks_topic: Annotated[str | None, typer.Option(help="Default: dmm.control.acks.")] = None,
) -> None:
    """Hot-swap the workers' matrix through Self: publish a new version, roll back, or show acks.

    The update is signed when DMM_CONTROL_SIGNING_KEY is set; it is printed as sent.
    """
    if sum((model is not None, rollback_to is not None, status)) != 1:
        raise _fail("give exactly one of --model FILE, --rollback VERSION, --status")
    settings = _run_settings(
        kafka__bootstrap=bootstrap, worker__model=worker_model, topics__control=control_topic,
        topics__control_acks=acks_topic,
    )  # fmt: skip
    with _exit_on_errors():
        registry = load_registry(settings)
    if model is not None:
        with _exit_on_errors():
            source = zoo.resolve(model, registry)
        update, notes = _run(swap_to_model(settings, source, registry))
        for note in notes:
            typer.echo(f"dmm: note: {note}", err=True)
    elif rollback_to is not None:
        update = _run(rollback(settings, rollback_to, registry))
    else:
        acks = _run(swap_status(settings, registry))
        for ack in acks.values():
            typer.echo(describe_ack(ack))
        if not acks:
            typer.echo(f"no acks on {settings.topics.control_acks} yet", err=True)
        return
    sys.stdout.reconfigure(encoding="utf-8")
    typer.echo(encode_update(update).decode("utf-8"))
    signed = "signed" if update.signature else "unsigned"
    typer.echo(
        f"published {update.model} v{update.version} ({update.kind}, "
        f"{count_links(update.change)} links, {signed}) to {settings.topics.control}",
        err=True,
    )


@app.command()
def demo(
    channels: Annotated[
        int, typer.Option(min=1, max=16, help="Chat channels typing. Default: 4.")
    ] = 4,
    chars_per_s: Annotated[
        float,
        typer.Option(min=0.5, max=200.0, help="Characters per second per channel. Default: 12."),
    ] = 12.0,
    after_swap: Annotated[
        float, typer.Option(min=0.0, help="Seconds to keep streaming after the swap. Default: 12.")
    ] = 12.0,
    max_seconds: Annotated[
        float, typer.Option(min=10.0, help="Longest streaming time, seconds. Default: 120.")
    ] = 120.0,
    run_dir: Annotated[
        Path | None, typer.Option(help="Where broker data and logs go. Default: a temp dir.")
    ] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the run directory (logs) afterwards.")
    ] = False,
    cache_dir: CacheDir = None,
) -> None:
    """The streaming demo: broker, worker, trainer, live text, a hot swap, a summary.

    Everything it starts is stopped at the end, or on Ctrl-C.
    """
    from rich.console import Console

    from service.demo import DemoOptions, describe, run_demo

    logging.getLogger("service").setLevel(logging.WARNING)  # the view is the demo's output
    settings = _run_settings(cache_dir=cache_dir)
    options = DemoOptions(
        channels=channels, chars_per_s=chars_per_s, after_swap_s=after_swap,
        max_s=max_seconds, swap_deadline_s=min(60.0, max_seconds / 2), run_dir=run_dir,
        keep=keep,
    )  # fmt: skip
    console = Console()
    try:
        with _exit_on_errors():
            summary = run_demo(settings, options, console)
    except KeyboardInterrupt:
        typer.echo("dmm demo: interrupted; every process it started is stopped", err=True)
        raise typer.Exit(130) from None
    for line in describe(summary):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if summary.interrupted:
        raise typer.Exit(130)
    if not summary.ok:
        raise _fail("the demo ended without a completed hot swap (see the lines above)")


def _run_dir(run_dir: Path | None, settings: Settings) -> Path:
    return run_dir.expanduser() if run_dir else settings.cache_dir / "kafka-run"


@kafka_app.command("start")
def kafka_start(run_dir: RunDir = None, cache_dir: CacheDir = None) -> None:
    """Start the local broker (or find it running); the last line is bootstrap=HOST:PORT."""
    settings = _run_settings(cache_dir=cache_dir)
    with _exit_on_errors():
        info = kafka_local.start(_run_dir(run_dir, settings), settings.cache_dir)
    typer.echo(f"pid={info.pid}\nrun_dir={info.run_dir}\nlog={info.log_file}")
    typer.echo(f"bootstrap={info.bootstrap}")


@kafka_app.command("stop")
def kafka_stop(run_dir: RunDir = None, cache_dir: CacheDir = None) -> None:
    """Stop the local broker (its data is kept for the next start)."""
    settings = _run_settings(cache_dir=cache_dir)
    with _exit_on_errors():
        stopped = kafka_local.stop(_run_dir(run_dir, settings))
    typer.echo("stopped" if stopped else "not running")


@kafka_app.command("status")
def kafka_status(run_dir: RunDir = None, cache_dir: CacheDir = None) -> None:
    """Print bootstrap=HOST:PORT of the running local broker; exit 1 if none runs."""
    settings = _run_settings(cache_dir=cache_dir)
    with _exit_on_errors():
        info = kafka_local.status(_run_dir(run_dir, settings))
    if info is None:
        typer.echo("not running")
        raise typer.Exit(EXIT_NOT_RUNNING)
    typer.echo(f"pid={info.pid}\nrun_dir={info.run_dir}\nbootstrap={info.bootstrap}")


app.command("synth")(cli_train.synth_command)
app.command("eval")(cli_train.eval_command)
app.command("show")(cli_train.show_command)


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)  # its INFO is per-rebalance chatter
    app()


if __name__ == "__main__":
    main()
