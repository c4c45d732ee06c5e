"""V-values: nested dictionaries with numeric leaves, and their algebra (reference §1).

A V-value is a ``dict[str, float | VValue]``. The scalar component of a node sits under the
reserved key ``":number"``; a missing key means zero. ``{":number": 3.5, "foo": {"bar": 7}}``
is ``3.5·(ε) + 7·(foo bar)``.

Semantics follow the DMM Lite / Julia port (reference §1.3–1.4), which the 2022 experiments
use: zeros are **kept** (``add(a, scale(-1, a))`` leaves explicit ``0.0`` leaves); use
`purge_zeros` for the Clojure behaviour. Mixed number/dict cases (reference §1.3 table):

* sum: number + dict → the dict with the number added under ``":number"``;
* mask product / lin-comb: a mask number scales a whole value subtree, a mask dict against a
  value number gives nothing, and only keys present on both sides survive.

All functions are pure: they never modify their arguments.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TypeAlias, Union

from dmm_engine.errors import VValueError

NUMBER = ":number"

VValue: TypeAlias = dict[str, Union[float, "VValue"]]
Leaf: TypeAlias = float | VValue


def number(x: float) -> VValue:
    """The scalar V-value ``{":number": x}``."""
    return {NUMBER: float(x)}


def get_number(v: Mapping[str, Leaf] | None) -> float:
    """The scalar component of `v` (``v[":number"]``), 0.0 when absent (reference `N(x)`)."""
    if not v:
        return 0.0
    x = v.get(NUMBER, 0.0)
    return float(x) if not isinstance(x, dict) else get_number(x)


def _as_dict(x: Leaf) -> VValue:
    return x if isinstance(x, dict) else {NUMBER: float(x)}


def _add_leaf(a: Leaf, b: Leaf) -> Leaf:
    if isinstance(a, dict) or isinstance(b, dict):
        return add(_as_dict(a), _as_dict(b))
    return float(a) + float(b)


def add(a: VValue, b: VValue) -> VValue:
    """The sum ``a + b``; keys on one side are copied, number + dict adds under ``":number"``."""
    out: VValue = dict(a)
    for key, value in b.items():
        out[key] = _add_leaf(out[key], value) if key in out else _copy_leaf(value)
    return out


def _copy_leaf(x: Leaf) -> Leaf:
    return {k: _copy_leaf(v) for k, v in x.items()} if isinstance(x, dict) else float(x)


def scale(c: float, v: VValue) -> VValue:
    """``c · v``: every numeric leaf multiplied by `c` (zeros kept, no special cases)."""
    return {k: scale(c, x) if isinstance(x, dict) else c * float(x) for k, x in v.items()}


def linear_combination(terms: Iterable[tuple[float, VValue]]) -> VValue:
    """``Σ cᵢ·vᵢ`` over ``(cᵢ, vᵢ)`` pairs; the empty sum is ``{}``.

    This is the down movement's inner loop (reference §2.2 ``add_term_to_dict!``).
    """
    out: VValue = {}
    for c, v in terms:
        _accumulate(out, c, v)
    return out


def _accumulate(out: VValue, c: float, v: VValue) -> None:
    """``out += c·v`` in place; `out` is owned by the caller (never an argument of ours)."""
    for key, x in v.items():
        have = out.get(key)
        if isinstance(x, dict):
            if not isinstance(have, dict):
                out[key] = {} if have is None else {NUMBER: have}
            _accumulate(out[key], c, x)  # type: ignore[arg-type]
        elif isinstance(have, dict):
            have[NUMBER] = float(have.get(NUMBER, 0.0)) + c * float(x)  # type: ignore[arg-type]
        else:
            out[key] = (0.0 if have is None else have) + c * float(x)


def _masked(
    mask: VValue, v: VValue, recurse: Callable[[VValue, VValue], Leaf]
) -> Iterator[tuple[str, Leaf]]:
    """Per key present on both sides: mask ⊙ value (reference §1.3 table, mixed cases).

    dict ⊙ dict recurses with `recurse`; a mask number scales a value subtree; a mask dict
    against a value number gives nothing.
    """
    for key, m in mask.items():
        if key not in v:
            continue
        x = v[key]
        if isinstance(m, dict):
            if isinstance(x, dict):
                yield key, recurse(m, x)
        elif isinstance(x, dict):
            yield key, scale(m, x)
        else:
            yield key, float(m) * float(x)


def mult_mask(mask: VValue, v: VValue) -> VValue:
    """Generalised element-wise product, traversing the mask (``rec-map-mult-mask``)."""
    return dict(_masked(mask, v, mult_mask))


def lin_comb(mask: VValue, v: VValue) -> VValue:
    """Like `mult_mask`, but the per-key results are summed into one V-value (``rec-map-lin-comb``).

    With compatible shapes this is the dot product (``{":number": a·b}``); with a mask row over
    neuron outputs it is the linear combination the down movement computes.
    """
    out: VValue = {}
    for _, term in _masked(mask, v, lin_comb):
        out = add(out, _as_dict(term))
    return out


def apply_matrix(w: VValue, v: VValue, level: int) -> VValue:
    """``apply-matrix``: `lin_comb` at `level` 0, else map over the keys of `w` with ``level-1``."""
    if level == 0:
        return lin_comb(w, v)
    return {k: apply_matrix(_as_dict(row), v, level - 1) for k, row in w.items()}


def max_norm(v: VValue) -> float:
    """The largest absolute value of any numeric leaf; 0.0 for ``{}``."""
    return max((abs(x) for _, x in leaves(v)), default=0.0)


def leaves(v: VValue, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], float]]:
    """Every ``(path, number)`` leaf of `v`, depth first, in key order."""
    for key, x in v.items():
        if isinstance(x, dict):
            yield from leaves(x, (*prefix, key))
        else:
            yield (*prefix, key), float(x)


def dot(a: VValue, b: VValue) -> float:
    """Σ over the leaf paths of `a` of ``a[path]·b[path]`` (a missing path in `b` is zero)."""
    flat_b = flatten(b)
    return sum(x * flat_b.get(path, 0.0) for path, x in leaves(a))


def flatten(v: VValue) -> dict[tuple[str, ...], float]:
    """``{path: number}`` for every leaf; a leaf and ``{":number": x}`` keep distinct paths."""
    return dict(leaves(v))


def unflatten(flat: Mapping[tuple[str, ...], float]) -> VValue:
    """Inverse of `flatten`; raises `VValueError` when one path is a prefix of another."""
    out: VValue = {}
    for path, x in flat.items():
        if not path:
            raise VValueError("unflatten: the empty path has no key; use (':number',) for a scalar")
        node = out
        for depth, key in enumerate(path[:-1]):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                where = ".".join(path[: depth + 1])
                raise VValueError(f"unflatten: path {where!r} is both a number and a prefix")
            node = child
        if isinstance(node.get(path[-1]), dict):
            raise VValueError(f"unflatten: path {'.'.join(path)!r} is both a number and a prefix")
        node[path[-1]] = float(x)
    return out


def purge_zeros(v: VValue) -> VValue:
    """Drop zero leaves and empty sub-dicts (the Clojure ``rec-map-sum`` behaviour)."""
    out: VValue = {}
    for key, x in v.items():
        if isinstance(x, dict):
            sub = purge_zeros(x)
            if sub:
                out[key] = sub
        elif x != 0.0:
            out[key] = float(x)
    return out


def less_or_equal(left: VValue, right: VValue) -> bool:
    """True iff every leaf of ``right − left`` is ≥ 0 (``rec-map-<=``)."""
    return all(x >= 0.0 for _, x in leaves(add(right, scale(-1.0, left))))


def normalize(v: VValue) -> VValue:
    """Canonical form: every nested dict whose only key is ``":number"`` becomes a plain number."""
    out: VValue = {}
    for key, x in v.items():
        if isinstance(x, dict):
            sub = normalize(x)
            out[key] = (
                sub[NUMBER] if set(sub) == {NUMBER} and not isinstance(sub[NUMBER], dict) else sub
            )
        else:
            out[key] = float(x)
    return out


def to_jsonable(v: VValue) -> object:
    """`normalize`d `v` as plain JSON data; a V-value that is only ``{":number": x}`` becomes ``x``.

    Integral floats are written as integers (``1.0`` → ``1``) so outputs read naturally.
    """
    norm = normalize(v)
    scalar = norm.get(NUMBER)
    if len(norm) == 1 and isinstance(scalar, float):
        return _json_number(scalar)
    return _jsonable_dict(norm)


def _jsonable_dict(v: VValue) -> dict[str, object]:
    return {
        k: _jsonable_dict(x) if isinstance(x, dict) else _json_number(x)
        for k, x in sorted(v.items())
    }


def _json_number(x: float) -> float | int:
    if not math.isfinite(x):
        raise VValueError(f"{x!r} is not finite: JSON has no NaN or Infinity")
    return int(x) if x.is_integer() and abs(x) < 2**53 else x


def to_json(v: VValue) -> str:
    """Canonical JSON text of `v`: sorted keys, no spaces, ``{":number": x}`` written as ``x``."""
    return json.dumps(to_jsonable(v), sort_keys=True, separators=(",", ":"), allow_nan=False)


def from_jsonable(data: object, path: str = "$") -> VValue:
    """Read JSON data back into a V-value; a plain number ``x`` becomes ``{":number": x}``.

    Raises:
        VValueError: naming the path of the first value that is not a number or an object.
    """
    if isinstance(data, bool) or not isinstance(data, (int, float, dict)):
        raise VValueError(f"{path}: expected a number or an object of V-values, got {data!r}")
    if not isinstance(data, dict):
        return number(_finite(float(data), path))
    return _dict_from_jsonable(data, path)


def _dict_from_jsonable(data: dict[object, object], path: str) -> VValue:
    out: VValue = {}
    for key, x in data.items():
        where = f"{path}.{key}"
        if isinstance(x, dict) and key == NUMBER:
            raise VValueError(
                f"{where}: the reserved key {NUMBER!r} must hold a number, not an object"
            )
        if isinstance(x, dict):
            out[str(key)] = _dict_from_jsonable(x, where)
        elif isinstance(x, (int, float)) and not isinstance(x, bool):
            out[str(key)] = _finite(float(x), where)
        else:
            raise VValueError(f"{where}: expected a number or an object, got {x!r}")
    return out


def _finite(x: float, path: str) -> float:
    if not math.isfinite(x):
        raise VValueError(f"{path}: {x!r} is not a finite number")
    return x


def from_json(text: str) -> VValue:
    """Parse canonical (or any) JSON text into a V-value; see `from_jsonable`."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise VValueError(f"not JSON: {exc}") from exc
    return from_jsonable(data)
