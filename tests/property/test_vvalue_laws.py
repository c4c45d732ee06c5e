"""Property tests: vector-space laws, bilinearity of lin-comb, canonical JSON round trip."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dmm_engine import vvalue
from tests.helpers import assert_vvalues_close
from tests.strategies import finite, of_shape, shapes, vvalues

small = st.floats(min_value=-100, max_value=100, allow_nan=False)


@given(vvalues, vvalues)
def test_addition_commutes(a: vvalue.VValue, b: vvalue.VValue) -> None:
    assert_vvalues_close(vvalue.add(a, b), vvalue.add(b, a))


@given(vvalues, vvalues, vvalues)
def test_addition_associates(a: vvalue.VValue, b: vvalue.VValue, c: vvalue.VValue) -> None:
    assert_vvalues_close(vvalue.add(vvalue.add(a, b), c), vvalue.add(a, vvalue.add(b, c)), 1e-6)


@given(vvalues)
def test_missing_means_zero(a: vvalue.VValue) -> None:
    assert vvalue.add(a, {}) == a
    assert vvalue.add({}, a) == a
    assert_vvalues_close(vvalue.add(a, vvalue.scale(-1.0, a)), {})


@given(vvalues, small, small)
def test_scaling_distributes(a: vvalue.VValue, x: float, y: float) -> None:
    assert_vvalues_close(
        vvalue.scale(x + y, a), vvalue.add(vvalue.scale(x, a), vvalue.scale(y, a)), 1e-6
    )
    assert_vvalues_close(vvalue.scale(x * y, a), vvalue.scale(x, vvalue.scale(y, a)), 1e-6)


@given(st.lists(st.tuples(small, vvalues), max_size=5))
def test_linear_combination_is_a_sum_of_scaled_terms(
    terms: list[tuple[float, vvalue.VValue]],
) -> None:
    expected: vvalue.VValue = {}
    for c, v in terms:
        expected = vvalue.add(expected, vvalue.scale(c, v))
    assert_vvalues_close(vvalue.linear_combination(terms), expected, 1e-6)


@given(st.data(), shapes, small, small)
def test_lin_comb_is_bilinear(
    data: st.DataObject, shape: list[tuple[str, ...]], x: float, y: float
) -> None:
    m1, m2, v1, v2 = (data.draw(of_shape(shape)) for _ in range(4))
    left = vvalue.lin_comb(vvalue.add(vvalue.scale(x, m1), vvalue.scale(y, m2)), v1)
    right = vvalue.add(
        vvalue.scale(x, vvalue.lin_comb(m1, v1)), vvalue.scale(y, vvalue.lin_comb(m2, v1))
    )
    assert_vvalues_close(left, right, 1e-6)
    left = vvalue.lin_comb(m1, vvalue.add(vvalue.scale(x, v1), vvalue.scale(y, v2)))
    right = vvalue.add(
        vvalue.scale(x, vvalue.lin_comb(m1, v1)), vvalue.scale(y, vvalue.lin_comb(m1, v2))
    )
    assert_vvalues_close(left, right, 1e-6)


@given(st.data(), shapes)
def test_lin_comb_of_same_shape_is_the_dot_product(
    data: st.DataObject, shape: list[tuple[str, ...]]
) -> None:
    a, b = data.draw(of_shape(shape)), data.draw(of_shape(shape))
    assert abs(vvalue.get_number(vvalue.lin_comb(a, b)) - vvalue.dot(a, b)) <= 1e-6 * max(
        1.0, sum(abs(x) for _, x in vvalue.leaves(a)) * max(1.0, vvalue.max_norm(b))
    )


@given(vvalues)
def test_canonical_json_round_trips(a: vvalue.VValue) -> None:
    text = vvalue.to_json(a)
    back = vvalue.from_json(text)
    assert back == vvalue.normalize(a) or (vvalue.normalize(a) == {} and back == {})
    assert vvalue.to_json(back) == text


@given(vvalues)
def test_flatten_round_trips(a: vvalue.VValue) -> None:
    assert vvalue.unflatten(vvalue.flatten(a)) == _without_empty(a)


def _without_empty(v: vvalue.VValue) -> vvalue.VValue:
    out: vvalue.VValue = {}
    for k, x in v.items():
        if isinstance(x, dict):
            sub = _without_empty(x)
            if sub:
                out[k] = sub
        else:
            out[k] = x
    return out


@given(vvalues, finite)
def test_max_norm_scales(a: vvalue.VValue, c: float) -> None:
    assert abs(vvalue.max_norm(vvalue.scale(c, a)) - abs(c) * vvalue.max_norm(a)) <= 1e-6 * max(
        1.0, abs(c) * vvalue.max_norm(a)
    )
