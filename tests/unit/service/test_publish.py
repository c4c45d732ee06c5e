"""The publisher's pure helpers: next version, rollback matrices, latest ack per worker."""

from __future__ import annotations

import pytest

from dmm_engine import NeuronRegistry, vvalue, zoo
from service.control import ControlAck, ModelUpdate, build_update
from service.errors import SwapError
from service.publish import (
    ControlHistory,
    describe_ack,
    latest_acks,
    latest_applied,
    latest_version,
    matrix_at,
)
from tests.unit.service.swap_cases import MODEL, NORM2_DELTA, NORM2_NEURONS

SMALL = {"norm": {"dict": {"accum": {"dict": 0.5}}}}


def history(updates: list[ModelUpdate], acks: list[ControlAck]) -> ControlHistory:
    versions = tuple((u.model, u.version) for u in updates)
    return ControlHistory(tuple(updates), (*versions, (MODEL, 9), ("other", 50)), tuple(acks))


def applied(version: int, worker: str = "w1", model: str = MODEL) -> ControlAck:
    return ControlAck(model, version, worker, "applied", "", {0: version * 10})


def test_the_next_version_counts_unreadable_and_foreign_models_apart() -> None:
    h = history([build_update(MODEL, 2, "matrix", SMALL)], [applied(2)])
    assert latest_version(h, MODEL) == 9  # a version 9 was sent, readable or not
    assert latest_version(h, "other") == 50
    assert latest_version(h, "new-model") == 1 and latest_version(h, "new-model", floor=7) == 7
    assert latest_applied(h, MODEL) == 2 and latest_applied(h, "other") is None


def test_rollback_follows_the_delta_chain_to_a_full_matrix_or_the_start(
    registry: NeuronRegistry,
) -> None:
    initial = zoo.load(MODEL, registry)
    updates = [
        build_update(MODEL, 2, "delta", NORM2_DELTA, base_version=1, neurons=NORM2_NEURONS),
        build_update(MODEL, 3, "delta", SMALL, base_version=2),
        build_update(MODEL, 3, "matrix", {}),  # a later duplicate of version 3: not the one
        build_update(MODEL, 4, "matrix", SMALL),
    ]
    h = history(updates, [applied(2), applied(3), applied(4, "w2")])

    assert matrix_at(h, MODEL, 1, initial, 1) == (initial.matrix, {})
    at_2 = vvalue.purge_zeros(vvalue.add(initial.matrix, NORM2_DELTA))
    assert matrix_at(h, MODEL, 2, initial, 1) == (at_2, NORM2_NEURONS)
    at_3 = vvalue.purge_zeros(vvalue.add(at_2, SMALL))
    assert at_3["norm"]["dict"]["accum"]["dict"] == 1.5
    assert matrix_at(h, MODEL, 3, initial, 1) == (at_3, NORM2_NEURONS)
    assert matrix_at(h, MODEL, 4, initial, 1) == (SMALL, {})
    with pytest.raises(SwapError, match=r"version 9 .* never applied by a worker; applied "
                       r"versions: \[1, 2, 3, 4\]"):  # fmt: skip
        matrix_at(h, MODEL, 9, initial, 1)


def test_status_is_the_last_ack_of_each_worker() -> None:
    rejected = ControlAck(MODEL, 5, "w1", "rejected", "stale-version: version 5 is not newer")
    h = history([], [applied(2), applied(2, "w2"), rejected, applied(3, "w3", "other")])
    assert latest_acks(h, MODEL) == {"w1": rejected, "w2": applied(2, "w2")}
    assert set(latest_acks(h)) == {"w1", "w2", "w3"}
    assert describe_ack(applied(2)) == f"w1  {MODEL}  v2  applied  at offsets 0:20"
    assert describe_ack(rejected).endswith("v5  rejected  stale-version: version 5 is not newer")
