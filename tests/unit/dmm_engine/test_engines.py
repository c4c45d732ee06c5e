"""Engine choice: both engines behind one interface, same outputs."""

from __future__ import annotations

import pytest

from dmm_engine import DmmError, NeuronRegistry, one_hot, zoo
from dmm_engine.engines import make_machines


def test_both_engines_give_the_same_outputs(registry: NeuronRegistry) -> None:
    net = zoo.load("duplicate-detector", registry)
    compiled, interpreter = (
        make_machines(net, registry),
        make_machines(net, registry, "interpreter"),
    )
    for ch in "hello. world.":
        assert compiled.step([("s", one_hot(ch))]) == interpreter.step([("s", one_hot(ch))])


def test_unknown_engine(registry: NeuronRegistry) -> None:
    with pytest.raises(DmmError, match="engine 'gpu' is not one of compiled, interpreter"):
        make_machines(zoo.load("duplicate-detector", registry), registry, "gpu")
