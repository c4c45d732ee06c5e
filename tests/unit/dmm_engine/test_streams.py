"""Many streams on the reference interpreter: independence, snapshots, restore."""

from __future__ import annotations

import json

import pytest

from dmm_engine import DmmError, NeuronRegistry, one_hot, vvalue, zoo
from dmm_engine.streams import InterpreterMachines


def test_streams_are_independent_and_snapshots_round_trip(registry: NeuronRegistry) -> None:
    machines = InterpreterMachines(zoo.load("duplicate-detector", registry), registry)
    for a, b in zip("aab.", "xyz.", strict=True):
        out = machines.step([("s1", one_hot(a)), ("s2", one_hot(b))])
    assert [vvalue.get_number(o["left"]) for o in out] == [1.0, 0.0]
    snap = json.loads(json.dumps(machines.snapshot("s1")))
    assert snap["cycle"] == 40
    machines.drop("s1")
    assert machines.streams() == ["s2"]
    machines.restore("s1", snap)
    (after,) = machines.step([("s1", one_hot("a"))])
    assert vvalue.get_number(after["left"]) == 2.0  # 'a' seen three times


def test_bad_batches_and_snapshots(registry: NeuronRegistry) -> None:
    machines = InterpreterMachines(zoo.load("duplicate-detector", registry), registry)
    with pytest.raises(DmmError, match="only once per batch"):
        machines.step([("s", {}), ("s", {})])
    with pytest.raises(DmmError, match="not a stream snapshot"):
        machines.restore("s", {"outputs": {}})
    assert machines.snapshot("new") == {"cycle": 0, "outputs": {}}
