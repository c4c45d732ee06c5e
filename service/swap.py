"""Hot swap's pure core: check an update against the running machines, turn it into a delta
for Self, apply it all or nothing, and say so in an ack. No I/O, no ``await``.

A full ``matrix`` becomes ``delta = matrix − W`` (W = `StreamMachines.matrix`, Self's
output), so both kinds reach the network the same way: through Self's ``delta`` input
(reference §2.1). Checks, in order, each failing with the `RejectReason` it names:
``stale-version`` / ``wrong-base-version``; declared neurons (``unknown-neuron-type``,
``neuron-type-change``); every link of the update (``unknown-neuron``, ``unknown-field``,
``type-incorrect-link`` — a link must go from an output field into an input field and may not
touch Self, whose row is this control path); the matrix after the update
(``weight-too-large`` against ``DMM_CONTROL_MAX_ABS_WEIGHT``, ``too-many-links`` against
``DMM_CONTROL_MAX_SOFT_LINKS``); finally `dmm_engine.validate` on the resulting network and
the engine's own all-or-nothing `apply_delta` (``invalid-network``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from dmm_engine import DmmError, Network, NetworkValidationError, NeuronRegistry, validate, vvalue
from dmm_engine.network import count_links, links
from dmm_engine.streams import StreamMachines
from dmm_engine.vvalue import VValue
from service.control import ControlAck, ModelUpdate, parse_update, peek_update
from service.errors import RejectReason, UpdateRejected
from service.settings import ControlSettings

MAX_LISTED_PROBLEMS = 5


@dataclass(frozen=True, slots=True)
class SwapPlan:
    """A checked update, ready for `StreamMachines.apply_delta`.

    Attributes:
        version: the version the machines run after it.
        delta: what Self adds to W (rank-4).
        neurons: the neurons it declares that the network does not have yet (name → type).
    """

    version: int
    delta: VValue
    neurons: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class SwapRules:
    """What a worker checks updates against, besides its machines.

    Attributes:
        model: the model name this worker runs; updates for other models are ignored.
        worker: this worker's id, written in its acks.
        registry: the neuron types an update may declare.
        control: signing key and limits (``DMM_CONTROL_*``).
    """

    model: str
    worker: str
    registry: NeuronRegistry
    control: ControlSettings


def plan_swap(
    update: ModelUpdate,
    network: Network,
    matrix: VValue,
    running_version: int,
    registry: NeuronRegistry,
    limits: ControlSettings,
) -> SwapPlan:
    """Check `update` against the running `network` (soft matrix `matrix`, `running_version`).

    Raises:
        UpdateRejected: the first rule broken, listing up to five problems with their paths.
    """
    if update.version <= running_version:
        raise UpdateRejected(
            "stale-version",
            f"version {update.version} is not newer than the running version {running_version}",
        )
    if update.kind == "delta" and update.base_version != running_version:
        raise UpdateRejected(
            "wrong-base-version",
            f"the delta applies to version {update.base_version} but version "
            f"{running_version} is running; publish a full 'matrix' or a delta on it",
        )
    declared = _declared_neurons(update.neurons, network, registry)
    neurons = {**network.neurons, **declared}
    _check_links(update, neurons, registry, network.self_neuron(registry))
    delta = update.change
    if update.kind == "matrix":
        delta = vvalue.add(update.change, vvalue.scale(-1.0, matrix))
    after = vvalue.purge_zeros(vvalue.add(matrix, delta))
    _check_bounds(after, limits)
    try:
        validate(dataclasses.replace(network, neurons=neurons, matrix=after), registry)
    except NetworkValidationError as exc:
        raise _rejection([("invalid-network", p) for p in exc.problems]) from None
    return SwapPlan(update.version, delta, declared)


def _declared_neurons(
    declared: Mapping[str, str], network: Network, registry: NeuronRegistry
) -> dict[str, str]:
    problems: list[tuple[RejectReason, str]] = []
    new = {}
    for name, type_name in declared.items():
        running = network.neurons.get(name)
        if type_name not in registry:
            known = ", ".join(registry)
            problems.append(
                ("unknown-neuron-type", f"neurons.{name}: unknown neuron type {type_name!r} "
                 f"(known: {known})")
            )  # fmt: skip
        elif running is not None and running != type_name:
            problems.append(
                ("neuron-type-change", f"neurons.{name}: neuron {name!r} has type {running} in "
                 f"the running network; an update cannot make it {type_name}")
            )  # fmt: skip
        elif running is None:
            new[name] = type_name
    if problems:
        raise _rejection(problems)
    return new


def _check_links(
    update: ModelUpdate, neurons: Mapping[str, str], registry: NeuronRegistry, self_name: str | None
) -> None:
    problems: list[tuple[RejectReason, str]] = []
    for to, to_input, source, from_output, _ in links(update.change):
        path = f"{update.kind}.{to}.{to_input}.{source}.{from_output}"
        missing = [n for n in (to, source) if n not in neurons]
        if missing:
            problems.append(
                ("unknown-neuron", f"{path}: no neuron {missing[0]!r} in the running network or "
                 "the update's 'neurons'")
            )  # fmt: skip
        elif self_name in (to, source):
            problems.append(
                ("type-incorrect-link", f"{path}: a link may not touch the Self neuron "
                 f"{self_name!r}: its row is the control path")
            )  # fmt: skip
        else:
            problems += _field_problems(path, to, to_input, "input", neurons[to], registry)
            source_type = neurons[source]
            problems += _field_problems(path, source, from_output, "output", source_type, registry)
    if problems:
        raise _rejection(problems)


def _field_problems(
    path: str, neuron: str, field: str, side: str, type_name: str, registry: NeuronRegistry
) -> list[tuple[RejectReason, str]]:
    kind = registry.get(type_name)
    wanted, other = (kind.inputs, kind.outputs) if side == "input" else (kind.outputs, kind.inputs)
    if field in wanted:
        return []
    listing = f"{side}s: {', '.join(wanted) or 'none'}"
    if field in other:
        where = "into an input" if side == "input" else "from an output"
        return [
            ("type-incorrect-link", f"{path}: {field!r} is not an {side} of neuron {neuron!r} "
             f"(type {type_name}); a link goes {where} ({listing})")
        ]  # fmt: skip
    return [("unknown-field", f"{path}: neuron {neuron!r} (type {type_name}) has no {side} "
             f"{field!r} ({listing})")]  # fmt: skip


def _check_bounds(after: VValue, limits: ControlSettings) -> None:
    for to, to_input, source, from_output, weight in links(after):
        if not abs(weight) <= limits.max_abs_weight:  # also catches an overflow to inf
            raise UpdateRejected(
                "weight-too-large",
                f"W.{to}.{to_input}.{source}.{from_output} would be {weight:g}; the largest "
                f"allowed magnitude is {limits.max_abs_weight:g} (DMM_CONTROL_MAX_ABS_WEIGHT)",
            )
    count = count_links(after)
    if count > limits.max_soft_links:
        raise UpdateRejected(
            "too-many-links",
            f"the matrix after the update has {count} soft links; the limit is "
            f"{limits.max_soft_links} (DMM_CONTROL_MAX_SOFT_LINKS)",
        )


def _rejection(problems: list[tuple[RejectReason, str]]) -> UpdateRejected:
    shown = "; ".join(text for _, text in problems[:MAX_LISTED_PROBLEMS])
    more = len(problems) - MAX_LISTED_PROBLEMS
    return UpdateRejected(problems[0][0], shown + (f"; and {more} more" if more > 0 else ""))


def apply_plan(machines: StreamMachines, plan: SwapPlan) -> None:
    """Feed `plan` into Self: from the next message of every stream on, W := W + delta.

    Raises:
        UpdateRejected: ``invalid-network`` when the engine refuses it (nothing changed).
    """
    try:
        machines.apply_delta(plan.delta, plan.neurons)
    except DmmError as exc:
        raise UpdateRejected("invalid-network", f"the engine refused the update: {exc}") from exc


def handle_update(
    key: bytes | None,
    value: bytes | None,
    machines: StreamMachines,
    running_version: int,
    rules: SwapRules,
    offsets: Mapping[int, int],
) -> ControlAck | None:
    """Parse, check and apply one control message; the ack to send (None: another model's).

    Args:
        key, value: the control message.
        machines: the running machines (changed only when the update is applied).
        running_version: the version they run now.
        rules: model name, worker id, registry and ``DMM_CONTROL_*`` settings.
        offsets: the message boundary: input partition → next offset to process.

    Returns:
        An ``applied`` ack (the new version is ``ack.version``), a ``rejected`` one whose
        reason names the rule, or None for an update addressed to another model.
    """
    model, version = peek_update(key, value)
    if model is not None and model != rules.model:
        return None
    try:
        update = parse_update(value, key, rules.control.key_bytes())
        if update.model != rules.model:
            return None
        plan = plan_swap(
            update, machines.network, machines.matrix(), running_version, rules.registry,
            rules.control,
        )  # fmt: skip
        apply_plan(machines, plan)
    except UpdateRejected as exc:
        return ControlAck(model, version, rules.worker, "rejected", str(exc))
    return ControlAck(update.model, update.version, rules.worker, "applied", "", dict(offsets))
