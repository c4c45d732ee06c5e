"""V-value algebra: every test vector of reference §1.2 (Clojure) and §1.3 (Julia/JAX)."""

from __future__ import annotations

import json

import pytest

from dmm_engine import VValueError, vvalue
from dmm_engine.neurons import less_or_equal, plus

# reference §1.2, jsa-aerial/DMM:test/dmm/core_test.clj
TESTMAP = {"a": 1.0, "b": 2.0, "c": {"a": 1.0, "b": 2.0, "c": {"x": 1.0, "y": 3.0}}}
TESTMASK = {"c": 7.0}
# reference §1.3, anhinga/late-2022-julia-drafts:dmm-port-from-clojure/draft-ops.jl
A = {"a": 2.0, "b": 3.0, "c": 2.5}
F = {"a": 2.0, "b": 3.0, "c": {":number": 6.0, "u": 1.0}}


def test_mult_mask_clojure_vectors() -> None:
    assert vvalue.mult_mask(TESTMAP, TESTMAP) == {
        "a": 1.0,
        "b": 4.0,
        "c": {"a": 1.0, "b": 4.0, "c": {"x": 1.0, "y": 9.0}},
    }
    assert vvalue.mult_mask(TESTMASK, TESTMAP) == {
        "c": {"a": 7.0, "b": 14.0, "c": {"x": 7.0, "y": 21.0}}
    }


def test_lin_comb_clojure_vectors() -> None:
    assert vvalue.lin_comb(TESTMASK, TESTMASK) == {":number": 49.0}
    assert vvalue.lin_comb(TESTMASK, TESTMAP) == {"a": 7.0, "b": 14.0, "c": {"x": 7.0, "y": 21.0}}
    assert vvalue.lin_comb(TESTMAP, TESTMAP) == {":number": 20.0}
    assert vvalue.lin_comb(TESTMAP, TESTMASK) == {}


def test_apply_matrix_level_1() -> None:
    w = {"x": {"a": 8.0}, "y": {"b": 10.0}, "z": {"a": 2.0, "b": 4.0}}
    assert vvalue.apply_matrix(w, {"a": 3.0, "b": 5.0}, 1) == {
        "x": {":number": 24.0},
        "y": {":number": 50.0},
        "z": {":number": 26.0},
    }
    nested = {"a": {"v": 3.0}, "b": {"v": 5.0, "w": {"v": 8.0}}}
    assert vvalue.apply_matrix(w, nested, 1) == {
        "x": {"v": 24.0},
        "y": {"v": 50.0, "w": {"v": 80.0}},
        "z": {"v": 26.0, "w": {"v": 32.0}},
    }


def test_accum_of_lin_combs() -> None:
    inputs = {
        "accum": vvalue.lin_comb(TESTMASK, TESTMAP),
        "delta": vvalue.lin_comb({"c": 1.0}, TESTMAP),
    }
    assert plus(inputs) == {"single": {"a": 8.0, "b": 16.0, "c": {"x": 8.0, "y": 24.0}}}


def test_max_norm_vectors() -> None:
    assert vvalue.max_norm({}) == 0.0
    assert vvalue.max_norm({"a": 1.0, "c": 2.0}) == 2.0
    assert vvalue.max_norm({"c": -2.0, "a": 1.0}) == 2.0


def test_less_or_equal_vectors() -> None:
    two, one = vvalue.number(2.0), vvalue.number(1.0)
    assert less_or_equal({"left": two, "right": one}) == {
        "true-channel": {":number": 0.0},
        "false-channel": {":number": 1.0},
    }
    assert less_or_equal({"left": two, "right": two}) == {
        "true-channel": {":number": 1.0},
        "false-channel": {":number": 0.0},
    }


def test_julia_lin_comb_vectors() -> None:
    assert vvalue.lin_comb(A, A) == {":number": 19.25}
    assert vvalue.lin_comb(F, F) == {":number": 50.0}
    assert vvalue.lin_comb(A, F) == {":number": 28.0, "u": 2.5}
    assert vvalue.lin_comb(F, A) == {":number": 13.0}


def test_add_number_to_dict_goes_under_number() -> None:
    left = {"a": 2.0, "c": {"u": 1.0}}
    assert vvalue.add(left, {"c": 6.0}) == {"a": 2.0, "c": {":number": 6.0, "u": 1.0}}
    assert vvalue.add({"c": 6.0}, left) == {"c": {":number": 6.0, "u": 1.0}, "a": 2.0}


def test_zeros_are_kept_as_in_dmm_lite_and_purged_on_request() -> None:
    a = {"a": 1.0, "b": {"c": 2.0}}
    diff = vvalue.add(a, vvalue.scale(-1.0, a))
    assert diff == {"a": 0.0, "b": {"c": 0.0}}
    assert vvalue.purge_zeros(diff) == {}


def test_mult_mask_mixed_cases() -> None:
    # a mask dict against a value number gives nothing; a mask number scales a value subtree
    assert vvalue.mult_mask({"k": {"z": 1.0}}, {"k": 3.0}) == {}
    assert vvalue.mult_mask({"k": 2.0}, {"k": {"z": 3.0}}) == {"k": {"z": 6.0}}


def test_linear_combination_and_dot() -> None:
    terms = [(2.0, {"a": 1.0, "n": {"x": 1.0}}), (-1.0, {"a": 3.0, "n": 4.0})]
    assert vvalue.linear_combination(terms) == {"a": -1.0, "n": {"x": 2.0, ":number": -4.0}}
    assert vvalue.linear_combination([]) == {}
    assert vvalue.dot({"a": 2.0, "b": {"c": 3.0}}, {"a": 5.0, "b": {"c": 2.0, "d": 9.0}}) == 16.0


def test_flatten_unflatten_and_their_errors() -> None:
    v = {"a": 1.0, "b": {"c": 2.0, ":number": 3.0}}
    flat = vvalue.flatten(v)
    assert flat == {("a",): 1.0, ("b", "c"): 2.0, ("b", ":number"): 3.0}
    assert vvalue.unflatten(flat) == v
    with pytest.raises(VValueError, match="both a number and a prefix"):
        vvalue.unflatten({("a",): 1.0, ("a", "b"): 2.0})
    with pytest.raises(VValueError, match="both a number and a prefix"):
        vvalue.unflatten({("a", "b"): 1.0, ("a",): 2.0})
    with pytest.raises(VValueError, match="empty path"):
        vvalue.unflatten({(): 1.0})


def test_canonical_json_writes_scalars_as_plain_numbers() -> None:
    assert vvalue.to_json({":number": 3.0}) == "3"
    assert vvalue.to_json({":number": 0.25}) == "0.25"
    assert vvalue.to_json({"b": {":number": 6.0}, "a": 1.5}) == '{"a":1.5,"b":6}'
    assert vvalue.to_json({"c": {":number": 6.0, "u": 1.0}}) == '{"c":{":number":6,"u":1}}'
    assert vvalue.from_json("3") == {":number": 3.0}
    assert vvalue.from_json('{"a":1.5,"b":6}') == {"a": 1.5, "b": 6.0}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('"x"', r"\$: expected a number or an object"),
        ('{"a": [1]}', r"\$\.a: expected a number or an object"),
        ('{"a": {"b": true}}', r"\$\.a\.b: expected a number or an object"),
        ('{"a": {":number": {"x": 1}}}', r"\$\.a\.:number: the reserved key"),
        ("{", "not JSON"),
        ('{"a": NaN}', r"\$\.a: nan is not a finite number"),
    ],
)
def test_from_json_errors_name_the_path(text: str, message: str) -> None:
    with pytest.raises(VValueError, match=message):
        vvalue.from_json(text)


def test_to_json_rejects_non_finite() -> None:
    with pytest.raises(VValueError, match="not finite"):
        vvalue.to_json({"a": float("inf")})


def test_get_number_reads_scalars() -> None:
    assert vvalue.get_number(None) == 0.0
    assert vvalue.get_number({"a": 1.0}) == 0.0
    assert vvalue.get_number({":number": 2.5}) == 2.5
    assert json.loads(vvalue.to_json(vvalue.number(-1.0))) == -1
