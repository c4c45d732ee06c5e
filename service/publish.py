"""Publishing model updates and reading the control history (`dmm swap`, the trainer).

`publish_update` builds, signs (``DMM_CONTROL_SIGNING_KEY``) and sends one update to
``dmm.control`` with key = model name; it is the one way updates are made, for the CLI and
for the trainer sidecar. The pure helpers read a `ControlHistory` (every update and ack on
the control topics): the next version number, the matrix a past version ran on (for a
rollback), the latest ack per worker.

Example:
    >>> network = zoo.load("duplicate-detector", default_registry())
    >>> update = asyncio.run(publish_update(settings, model=network.name, matrix=network.matrix))
    >>> update.version  # one above the highest version seen on the control topics
    2
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dmm_engine import Network, NeuronRegistry, vvalue, zoo
from dmm_engine.vvalue import VValue
from service.clients import make_consumer, make_producer
from service.control import (
    ControlAck,
    ModelUpdate,
    UpdateKind,
    build_update,
    decode_ack,
    encode_update,
    parse_update,
    peek_update,
)
from service.errors import SwapError, UpdateRejected
from service.history import read_to_end
from service.machines import model_version_of
from service.settings import Settings
from service.topics import ensure_topics


@dataclass(frozen=True, slots=True)
class ControlHistory:
    """What the control topics hold, in topic order.

    Attributes:
        updates: the updates that parse (and verify, with a signing key), in publish order.
        versions: ``(model, version)`` of every control message that names both, readable
            or not (a rejected update still uses up its version number).
        acks: every readable ack.
    """

    updates: tuple[ModelUpdate, ...]
    versions: tuple[tuple[str, int], ...]
    acks: tuple[ControlAck, ...]


async def read_history(settings: Settings) -> ControlHistory:
    """Read ``dmm.control`` and ``dmm.control.acks`` from the beginning to their end.

    The service's topics are created first if missing (``DMM_TOPICS_CREATE``).

    Raises:
        TopicError: a topic is missing and may not be created.
        BrokerUnavailableError: not read within ``DMM_KAFKA_UNAVAILABLE_TIMEOUT_S``.
    """
    timeout_s, topics = settings.kafka.unavailable_timeout_s, settings.topics
    partitions = await ensure_topics(settings)
    consumer = make_consumer(settings, group_id=None, isolation_level="read_committed")
    await consumer.start()
    try:
        control = await read_to_end(
            consumer, topics.control, partitions[topics.control], timeout_s=timeout_s
        )
        acks = await read_to_end(
            consumer, topics.control_acks, partitions[topics.control_acks], timeout_s=timeout_s
        )
    finally:
        await consumer.stop()
    updates, versions = [], []
    for record in control:
        model, version = peek_update(record.key, record.value)
        if model is not None and version is not None:
            versions.append((model, version))
        try:
            updates.append(parse_update(record.value, record.key, settings.control.key_bytes()))
        except UpdateRejected:
            continue
    decoded = [decode_ack(record.value) for record in acks]
    return ControlHistory(tuple(updates), tuple(versions), tuple(a for a in decoded if a))


def latest_version(history: ControlHistory, model: str, floor: int = 1) -> int:
    """The highest version of `model` published or acked so far, at least `floor`."""
    published = [v for m, v in history.versions if m == model]
    acked = [a.version for a in history.acks if a.model == model and a.version is not None]
    return max([floor, *published, *acked])


def latest_applied(history: ControlHistory, model: str) -> int | None:
    """The highest version of `model` some worker acked as applied, or None."""
    applied = [
        a.version
        for a in history.acks
        if a.model == model and a.status == "applied" and a.version is not None
    ]
    return max(applied, default=None)


def latest_acks(history: ControlHistory, model: str | None = None) -> dict[str, ControlAck]:
    """The last ack of each worker (of `model`, if given), by worker id."""
    return {a.worker: a for a in history.acks if model is None or a.model == model}


def matrix_at(
    history: ControlHistory, model: str, version: int, initial: Network, initial_version: int
) -> tuple[VValue, dict[str, str]]:
    """The soft matrix `model` ran on at `version`, and the neurons declared on the way there.

    `initial` (running `initial_version`) is what workers start from. A ``matrix`` update is
    its own answer; a ``delta`` adds to the matrix of its ``base_version``. Of several
    updates with one version, the first readable one counts (workers apply the first valid
    one and refuse later ones as stale).

    Raises:
        SwapError: no worker acked `version` as applied, or its chain cannot be followed.
    """
    if version == initial_version:
        return initial.matrix, {}
    applied = {a.version for a in history.acks if a.model == model and a.status == "applied"}
    if version not in applied:
        known = sorted(v for v in applied if v is not None)
        raise SwapError(
            f"version {version} of model {model!r} was never applied by a worker; "
            f"applied versions: {[initial_version, *known]}"
        )
    update = next((u for u in history.updates if (u.model, u.version) == (model, version)), None)
    if update is None:
        raise SwapError(f"version {version} of model {model!r} is not readable on dmm.control")
    if update.kind == "matrix":
        return update.change, dict(update.neurons)
    if update.base_version is None or update.base_version >= version:
        raise SwapError(f"version {version} of model {model!r}: bad base_version in its delta")
    base, neurons = matrix_at(history, model, update.base_version, initial, initial_version)
    matrix = vvalue.purge_zeros(vvalue.add(base, update.change))
    return matrix, {**neurons, **update.neurons}


async def publish_update(
    settings: Settings,
    *,
    model: str,
    matrix: VValue | None = None,
    delta: VValue | None = None,
    neurons: Mapping[str, str] | None = None,
    version: int | None = None,
    base_version: int | None = None,
    floor_version: int = 1,
) -> ModelUpdate:
    """Build, sign and send one update to ``dmm.control``; return it as sent.

    Args:
        settings: connection, topics and ``DMM_CONTROL_SIGNING_KEY`` (signs when set).
        model: the model name the workers run (the message key).
        matrix, delta: exactly one: the full new soft matrix, or what to add to W.
        neurons: neurons (name → type) the update brings in.
        version: default: one above the highest version published or acked so far.
        base_version: default: the highest version acked as applied (required for a delta,
            whose base must be the running version).
        floor_version: the version workers start with (the model file's
            ``metadata.version``, default 1), so a first update is newer than it.

    Raises:
        SwapError: not exactly one of `matrix`, `delta`.
        BrokerUnavailableError: the history could not be read.
    """
    if (matrix is None) == (delta is None):
        raise SwapError("publish_update: give exactly one of matrix=, delta=")
    if version is None or base_version is None:
        history = await read_history(settings)
        if version is None:
            version = latest_version(history, model, floor_version) + 1
        if base_version is None:
            base_version = latest_applied(history, model) or floor_version
    else:
        await ensure_topics(settings)
    kind: UpdateKind = "matrix" if matrix is not None else "delta"
    update = build_update(
        model, version, kind, matrix or delta or {}, base_version=base_version, neurons=neurons,
        key=settings.control.key_bytes(),
    )  # fmt: skip
    producer = make_producer(settings)
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.topics.control, encode_update(update), key=model.encode("utf-8")
        )
    finally:
        await producer.stop()
    return update


def _running(settings: Settings, registry: NeuronRegistry) -> tuple[Network, int]:
    """The network the workers start from (``DMM_WORKER_MODEL``) and its version."""
    network = zoo.resolve(settings.worker.model, registry)
    return network, model_version_of(network)


async def swap_to_model(
    settings: Settings, source: Network, registry: NeuronRegistry
) -> tuple[ModelUpdate, list[str]]:
    """Publish `source`'s soft matrix as the next version of the workers' model.

    The update is named after ``DMM_WORKER_MODEL``'s network and declares every neuron of
    `source` (but a Self neuron). Hard links, named outputs, the input neuron and
    ``cycles_per_message`` are not part of an update: the workers keep their own.

    Returns:
        The update as sent, and notes on what of `source` the workers will not take.
    """
    running, version = _running(settings, registry)
    neurons = {n: t for n, t in source.neurons.items() if registry.get(t).role != "self"}
    update = await publish_update(
        settings, model=running.name, matrix=source.matrix, neurons=neurons, floor_version=version
    )
    notes = [
        f"{part} of {source.name!r} differ from the workers' {running.name!r} and are not "
        "part of an update: the workers keep theirs"
        for part, differs in (
            ("the hard links", source.fixed != running.fixed),
            ("the named outputs", source.outputs != running.outputs),
            ("the input neuron", source.input != running.input),
            ("cycles_per_message", source.cycles_per_message != running.cycles_per_message),
        )
        if differs
    ]
    return update, notes


async def rollback(settings: Settings, version: int, registry: NeuronRegistry) -> ModelUpdate:
    """Republish the matrix the workers ran at `version` as the next version.

    Raises:
        SwapError: `version` was never applied (see `matrix_at`).
    """
    running, initial_version = _running(settings, registry)
    history = await read_history(settings)
    matrix, neurons = matrix_at(history, running.name, version, running, initial_version)
    return await publish_update(
        settings, model=running.name, matrix=matrix, neurons=neurons, floor_version=initial_version
    )


async def swap_status(settings: Settings, registry: NeuronRegistry) -> dict[str, ControlAck]:
    """The latest ack of every worker for ``DMM_WORKER_MODEL``'s model, by worker id."""
    running, _ = _running(settings, registry)
    return latest_acks(await read_history(settings), running.name)


def describe_ack(ack: ControlAck) -> str:
    """One line: ``worker  model  vN  status  reason-or-offsets``."""
    offsets = ",".join(f"{p}:{o}" for p, o in sorted(ack.applied_at_offsets.items()))
    detail = ack.reason or (f"at offsets {offsets}" if offsets else "")
    return f"{ack.worker}  {ack.model}  v{ack.version}  {ack.status}  {detail}".rstrip()
