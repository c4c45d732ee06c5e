"""Hypothesis strategies: V-values (free-form and of a shared shape) and texts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hypothesis import strategies as st

from dmm_engine import vvalue
from dmm_engine.vvalue import NUMBER, VValue

if TYPE_CHECKING:
    from dmm_engine import Network

keys = st.sampled_from(["a", "b", "c", "x", "y", "ζ", "."])
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


def _node(children: st.SearchStrategy[VValue]) -> st.SearchStrategy[VValue]:
    entries = st.dictionaries(keys, st.one_of(finite, children), max_size=4)
    return st.tuples(entries, st.none() | finite).map(
        lambda pair: {**pair[0], NUMBER: pair[1]} if pair[1] is not None else pair[0]
    )


vvalues = st.recursive(st.dictionaries(keys, finite, max_size=4), _node, max_leaves=20)
"""Any V-value: nested dicts, numbers at any level, scalars under ':number'."""

paths = st.lists(keys, min_size=1, max_size=3).map(tuple)
shapes = st.lists(paths, min_size=1, max_size=8).map(
    lambda ps: sorted({p for p in ps if not any(q != p and q[: len(p)] == p for q in ps)})
)
"""Prefix-free sets of leaf paths: V-values of one shape combine bilinearly."""


def of_shape(shape: list[tuple[str, ...]]) -> st.SearchStrategy[VValue]:
    """V-values whose leaves are a subset of `shape`'s paths."""
    return st.dictionaries(st.sampled_from(shape), finite, max_size=len(shape)).map(
        vvalue.unflatten
    )


texts = st.text(alphabet="abc. xy", max_size=30)
token_texts = st.lists(st.sampled_from(["the", "cat", ".", "sat", "a"]), max_size=15).map(" ".join)


# --- random DMM Lite networks -----------------------------------------------------------------

INTERNEURON_TYPES = ("accum", "norm", "dot", "compare")
_IN = {
    "accum": ("dict-2",),
    "norm": ("dict",),
    "dot": ("dict-1", "dict-2"),
    "dot-unclipped": ("dict-1", "dict-2"),
    "compare": ("dict-1", "dict-2"),
}
_OUT = {
    "accum": ("dict",),
    "norm": ("norm",),
    "dot": ("dot",),
    "dot-unclipped": ("dot",),
    "compare": ("true", "false"),
}
weights = st.floats(min_value=-1.0, max_value=1.0, allow_nan=False).filter(lambda w: abs(w) > 1e-3)


@st.composite
def lite_networks(draw: st.DrawFn) -> Network:
    """Small random networks of the DMM Lite types, recurrent links allowed.

    Fixed: timer (self-loop), input (reads the timer), const_1, eos, output; 1–6 interneurons
    with random soft links from any output (their own included, except accumulator to
    accumulator, which grows exponentially and overflows float32); accumulators carry the hard
    weight-1 memory loop. Named outputs read the output neuron and one interneuron input.
    """
    from dmm_engine import Network

    kinds = draw(st.lists(st.sampled_from(INTERNEURON_TYPES), min_size=1, max_size=6))
    neurons = {
        "timer": "timer",
        "input": "input",
        "const_1": "const_1",
        "eos": "eos",
        "output": "output",
    }
    neurons.update({f"{t}-{i}": t for i, t in enumerate(kinds)})
    # not the timer: an unbounded gain makes clipped feedback loops chaotic, and chaos turns
    # any rounding difference (summation order, float32) into an O(1) difference
    sources = [("input", "char"), ("eos", "char"), ("const_1", "const_1")]
    sources += [(name, out) for name, t in neurons.items() if t in _OUT for out in _OUT[t]]
    targets = [(name, i) for name, t in neurons.items() if t in _IN for i in _IN[t]]
    targets += [("output", "dict-1"), ("output", "dict-2")]
    matrix: dict = {}
    accum_outputs = [(n, "dict") for n, t in neurons.items() if t == "accum"]
    for to, field in targets:
        # no accumulator feeds an accumulator: that loop grows exponentially and overflows
        allowed = [s for s in sources if not (neurons[to] == "accum" and s in accum_outputs)]
        chosen = draw(st.lists(st.sampled_from(allowed), min_size=1, max_size=3, unique=True))
        for source, out in chosen:
            matrix.setdefault(to, {}).setdefault(field, {}).setdefault(source, {})[out] = draw(
                weights
            )
    fixed: dict = {
        "timer": {"timer": {"timer": {"timer": 1.0}}},
        "input": {"timer": {"timer": {"timer": 1.0}}},
    }
    for name, t in neurons.items():
        if t == "accum":
            fixed[name] = {"dict-1": {name: {"dict": 1.0}}}
    probe_neuron, probe_field = targets[0]
    return Network(
        "random",
        neurons,
        matrix,
        fixed,
        outputs={
            "left": ("output", "dict-1"),
            "right": ("output", "dict-2"),
            "probe": (probe_neuron, probe_field),
        },
        input="input",
    )


ALPHABET = "abcdefghijklmnopqrstuvwxyz .,!?"
long_texts = st.text(alphabet=ALPHABET, min_size=1, max_size=40)
"""Texts over 31 symbols: enough to grow the key registry past its first capacity of 16."""
