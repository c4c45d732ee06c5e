"""The trainer sidecar as a Faust app: sample live input, and on the leader only, retrain.

* An agent reads the input topic in the trainer's own consumer group (``DMM_TRAINER_GROUP``,
  never the workers'), decodes each message as the worker does (`service.codec`) and keeps
  the recent symbols of each stream (`StreamSampler`); the teacher (``DMM_TRAINER_TEACHER``)
  gives the targets. With ``DMM_TRAINER_LABELS_TOPIC`` the agent reads labelled streams from
  that topic instead (`service.trainer.labels`). With two replicas, each samples the
  partitions the group gave it; the survivor of a failover samples them all.
* A one-second timer beats the liveness heartbeat and reports whether this replica is the
  leader of its group — Faust's leader election: the member that holds the one partition of
  ``<group>-__assignor-__leader``. Only the leader trains, every ``DMM_TRAINER_INTERVAL_S``,
  so there is one active trainer per model however many replicas run; when it dies, the group
  rebalances after ``DMM_TRAINER_SESSION_TIMEOUT_MS`` and a standby takes over.
* ``/metrics`` (the trainer's metrics and Faust's own sensors, prefixed
  ``dmm_trainer_faust_``), ``/healthz`` and ``/readyz`` (model loaded, partitions assigned)
  are served by `service.health.HealthServer`, as for the worker.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from dmm_engine import Network, NeuronRegistry, zoo
from service.codec import decode_input
from service.errors import BadInputError, BadLabelError, TrainerConfigError
from service.health import HealthState, serve_health
from service.machines import load_network
from service.metrics import trainer_metrics
from service.neuron_types import load_registry
from service.settings import LimitSettings, Settings
from service.topics import ensure_topics
from service.trainer.labels import LabelSampler, LabelTargets, decode_label
from service.trainer.loop import RunOutcome, TargetsOf, TrainerLoop
from service.trainer.sampler import StreamSampler
from service.trainer.tuning import TeacherTargets

logger = logging.getLogger(__name__)

TRAINER_READINESS = ("model_loaded", "partitions_assigned")
FAUST_METRICS_PREFIX = "dmm_trainer_faust"
TICK_S = 1.0
Agent = Callable[[Any], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class TrainerReport:
    """What a (bounded) trainer run did.

    Attributes:
        runs: training runs completed by this replica.
        published: candidates it published.
        last: the last run's outcome (None: no run was attempted).
        symbols: input symbols sampled.
    """

    runs: int
    published: int
    last: RunOutcome | None
    symbols: int


def check_teacher(base: Network, teacher: Network) -> None:
    """The teacher must name the same outputs as the workers' model.

    Raises:
        TrainerConfigError: naming both networks and their outputs.
    """
    if tuple(teacher.outputs) != tuple(base.outputs):
        raise TrainerConfigError(
            f"DMM_TRAINER_TEACHER {teacher.name!r} has outputs {list(teacher.outputs)} but the "
            f"workers' model {base.name!r} (DMM_WORKER_MODEL) has {list(base.outputs)}: a "
            "teacher must name the same outputs"
        )


def run_trainer(
    settings: Settings, *, max_runs: int | None = None, timeout_s: float | None = None
) -> TrainerReport:
    """Run the trainer until SIGTERM/SIGINT, `max_runs` training runs or `timeout_s` seconds.

    Blocks: Faust's worker owns the event loop while it runs.

    Raises:
        TrainerConfigError: the teacher does not fit the workers' model.
        ModelFileError: a model cannot be loaded.
        TopicError: a topic exists with the wrong partitions or configuration.
    """
    import faust  # only the trainer process loads Faust
    import torch
    from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor

    torch.set_num_threads(1)  # leaves a core for the Kafka clients of this process
    registry = load_registry(settings)
    base = load_network(settings, registry)
    sampler, targets_of = _sample_and_targets(settings, registry, base)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    labels = [settings.trainer.labels_topic] if settings.trainer.labels_topic else []
    loop.run_until_complete(ensure_topics(settings, labels))  # before Faust subscribes

    metrics_registry = CollectorRegistry()
    metrics = trainer_metrics(metrics_registry)
    health = HealthState(TRAINER_READINESS)
    health.set_flag("model_loaded")
    app = faust.App(settings.trainer.group, **faust_options(settings))
    app.monitor = PrometheusMonitor(
        metrics=FaustMetrics.create(metrics_registry, FAUST_METRICS_PREFIX)
    )
    trainer = TrainerLoop(settings, base, registry, sampler, targets_of, metrics, app.is_leader)
    schedule = _Schedule(trainer, health, app, max_runs, timeout_s)
    _add_agent(app, settings, sampler, base)
    app.timer(TICK_S, name="dmm-trainer-heartbeat")(schedule.heartbeat)
    app.task(schedule.train_forever)

    server = (
        serve_health(metrics_registry, health, settings.metrics)
        if settings.metrics.enabled
        else None
    )
    worker = faust.Worker(
        app, loop=loop, loglevel="INFO", quiet=True, redirect_stdouts=False, override_logging=False
    )
    worker.spinner = None  # it would write terminal control codes to stdout
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    finally:
        if server is not None:
            server.stop()
    return TrainerReport(trainer.runs, trainer.published, trainer.last, sampler.symbols_seen)


def _sample_and_targets(
    settings: Settings, registry: NeuronRegistry, base: Network
) -> tuple[StreamSampler | LabelSampler, TargetsOf]:
    """The sampler and the target builder of the mode: a teacher (default) or labels."""
    trainer = settings.trainer
    window, grad_mode = trainer.window_symbols, trainer.grad_mode
    if trainer.labels_topic:
        names = tuple(base.outputs)
        return (
            LabelSampler(window=window, max_streams=trainer.max_streams),
            lambda streams: LabelTargets(registry, streams, window, names, grad_mode),
        )
    teacher = zoo.resolve(trainer.teacher, registry)
    check_teacher(base, teacher)
    return (
        StreamSampler(window=window, max_streams=trainer.max_streams),
        lambda windows: TeacherTargets(teacher, registry, windows, window, grad_mode),
    )


def faust_options(settings: Settings) -> dict[str, Any]:
    """Faust app settings from `Settings`: broker, security, group timing, no web server."""
    import faust

    kafka = settings.kafka
    options: dict[str, Any] = {
        "broker": ";".join(f"kafka://{hp}" for hp in kafka.bootstrap.split(",")),
        "broker_client_id": kafka.client_id,
        "broker_session_timeout": settings.trainer.session_timeout_ms / 1000,
        "broker_heartbeat_interval": max(0.1, settings.trainer.session_timeout_ms / 3000),
        "store": "memory://",
        "web_enabled": False,  # /metrics, /healthz, /readyz come from service.health
        "topic_replication_factor": settings.topics.replication_factor,
        "topic_partitions": settings.topics.partitions,
        "consumer_auto_offset_reset": settings.trainer.start_from,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    if kafka.security_protocol != "PLAINTEXT":
        options["broker_credentials"] = _credentials(settings, faust)
    return options


def _credentials(settings: Settings, faust: Any) -> Any:
    from aiokafka.helpers import create_ssl_context

    kafka = settings.kafka
    ssl_context = create_ssl_context() if kafka.security_protocol.endswith("SSL") else None
    if kafka.security_protocol == "SSL":
        return faust.SSLCredentials(ssl_context)
    password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else ""
    return faust.SASLCredentials(
        username=kafka.sasl_username or "",
        password=password,
        mechanism=kafka.sasl_mechanism,
        ssl_context=ssl_context,
    )


def _add_agent(
    app: Any, settings: Settings, sampler: StreamSampler | LabelSampler, base: Network
) -> None:
    """The sampling agent: valid symbols of the input topic, or labels of the labels topic."""
    if isinstance(sampler, LabelSampler):
        agent, topic_name = (
            _label_agent(sampler, tuple(base.outputs)),
            settings.trainer.labels_topic,
        )
    else:
        agent, topic_name = _input_agent(sampler, settings.limits), settings.topics.input
    topic = app.topic(topic_name, key_serializer="raw", value_serializer="raw")
    app.agent(topic, name="dmm-trainer-sample")(agent)


def _input_agent(sampler: StreamSampler, limits: LimitSettings) -> Agent:
    async def sample(stream: Any) -> None:
        async for event in stream.events():
            try:
                decoded = decode_input(event.message, limits)
            except BadInputError:
                continue  # the workers dead-letter it; the trainer only samples good text
            if decoded.symbol is not None:  # {"v": ...} inputs are not text
                sampler.add(decoded.stream, decoded.symbol)

    return sample


def _label_agent(sampler: LabelSampler, names: tuple[str, ...]) -> Agent:
    async def sample(stream: Any) -> None:
        async for event in stream.events():
            try:
                sampler.add(decode_label(event.message.key, event.message.value, names))
            except BadLabelError as exc:
                sampler.ignored += 1
                logger.warning("skipped a label: %s", exc)

    return sample


class _Schedule:
    """A timer for the heartbeat and leadership (every second) and a task that trains when due.

    They are separate so the heartbeat goes on while a run trains (a run awaits a thread).
    An unexpected error in a run propagates into Faust's task and stops the trainer non-zero:
    that is a bug, and the orchestrator restarts the pod.
    """

    def __init__(
        self,
        trainer: TrainerLoop,
        health: HealthState,
        app: Any,
        max_runs: int | None,
        timeout_s: float | None,
    ) -> None:
        self.trainer = trainer
        self.health = health
        self.app = app
        self.max_runs = max_runs
        self.deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self.next_run = time.monotonic() + trainer.settings.trainer.interval_s
        self.leader = False
        self.stopping = False

    async def heartbeat(self) -> None:
        self.health.beat()
        self.health.set_flag("partitions_assigned", bool(self.app.consumer.assignment()))
        leader = bool(self.app.is_leader())
        if leader != self.leader:
            self.leader = leader
            self.trainer.metrics.active.set(int(leader))
            logger.info(
                "this replica is %s", "the active trainer" if leader else "a standby trainer"
            )
        self.trainer.metrics.streams_sampled.set(len(self.trainer.sampler))
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self._stop()

    async def train_forever(self) -> None:
        while not self.stopping:
            await asyncio.sleep(TICK_S)
            if not self.app.is_leader() or time.monotonic() < self.next_run:
                continue
            await self.trainer.run_once()
            self.next_run = time.monotonic() + self.trainer.settings.trainer.interval_s
            if self.max_runs is not None and self.trainer.runs >= self.max_runs:
                self._stop()

    def _stop(self) -> None:
        if not self.stopping:  # a bounded run ends the way SIGTERM ends it: gracefully
            self.stopping = True
            signal.raise_signal(signal.SIGTERM)
