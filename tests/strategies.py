"""Hypothesis strategies: V-values (free-form and of a shared shape) and texts."""

from __future__ import annotations

from hypothesis import strategies as st

from dmm_engine import vvalue
from dmm_engine.vvalue import NUMBER, VValue

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
