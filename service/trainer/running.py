"""Which matrix the workers run now, read off the control history (pure).

The trainer fine-tunes what the workers run: the highest version some worker acknowledged as
applied, rebuilt with `service.publish.matrix_at` from ``DMM_WORKER_MODEL``'s network (the
version every worker starts from). A version that was published but that no worker has
acknowledged yet (applied or rejected) is *pending*: the trainer waits for it rather than
train on a matrix that is about to be replaced.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from dmm_engine import Network, vvalue
from dmm_engine.vvalue import VValue
from service.machines import model_version_of
from service.publish import ControlHistory, latest_applied, latest_version, matrix_at


@dataclass(frozen=True, slots=True)
class RunningModel:
    """The network the workers run (without Self) and its version."""

    network: Network
    version: int


def running_model(history: ControlHistory, base: Network) -> RunningModel:
    """The highest version acked as applied, else `base` at its own version.

    Raises:
        SwapError: the applied version's chain of updates cannot be followed.
    """
    initial = model_version_of(base)
    applied = latest_applied(history, base.name)
    if applied is None or applied <= initial:
        return RunningModel(base, initial)
    matrix, neurons = matrix_at(history, base.name, applied, base, initial)
    network = dataclasses.replace(base, matrix=matrix, neurons={**base.neurons, **neurons})
    return RunningModel(network, applied)


def pending_versions(history: ControlHistory, model: str, running: int) -> list[int]:
    """Versions of `model` above `running` that were published but that no worker acked."""
    acked = {a.version for a in history.acks if a.model == model}
    return sorted({v for m, v in history.versions if m == model and v > running} - acked)


def next_version(history: ControlHistory, base: Network) -> int:
    """One above every version of the model published or acked so far."""
    return latest_version(history, base.name, model_version_of(base)) + 1


def delta_between(before: VValue, after: VValue) -> VValue:
    """``after − before`` with zero links dropped: what Self adds to go from one to the other."""
    return vvalue.purge_zeros(vvalue.add(after, vvalue.scale(-1.0, before)))
