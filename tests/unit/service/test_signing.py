"""Signatures: canonical JSON, HMAC-SHA256, tampering and odd signatures."""

from __future__ import annotations

import hashlib
import hmac
import json
import math

from service.signing import canonical_json, sign, verify

KEY = b"k3y"


def test_canonical_json_sorts_keys_drops_spaces_and_the_signature_and_keeps_unicode() -> None:
    fields = {"version": 2, "model": "dé", "matrix": {"b": {"x": 1.0}, "a": 0.5}, "signature": "x"}
    assert (
        canonical_json(fields)
        == '{"matrix":{"a":0.5,"b":{"x":1}},"model":"dé","version":2}'.encode()
    )


def test_whole_numbers_sign_alike_whatever_their_spelling() -> None:
    as_int = json.loads('{"w": 1, "big": 100000000000000000000}')
    as_float = json.loads('{"w": 1.0, "big": 1e20}')
    assert sign(as_int | {"big": 3}, KEY) == sign(as_float | {"big": 3}, KEY)
    assert canonical_json({"w": 1e0}) == b'{"w":1}'


def test_the_signature_is_the_hex_hmac_sha256_of_the_canonical_json() -> None:
    fields = {"model": "m", "version": 3}
    expected = hmac.new(KEY, b'{"model":"m","version":3}', hashlib.sha256).hexdigest()
    assert sign(fields, KEY) == expected
    assert verify(fields | {"signature": expected}, expected, KEY)


def test_tampering_another_key_or_an_odd_signature_fails() -> None:
    fields = {"model": "m", "version": 3, "delta": {"a": {"b": {"c": {"d": 1.0}}}}}
    signature = sign(fields, KEY)
    assert not verify(fields | {"version": 4}, signature, KEY)
    assert not verify(fields, signature, b"other")
    assert not verify(fields, signature.upper(), KEY)
    assert not verify(fields, "é" * 64, KEY)
    assert not verify(fields, "", KEY)


def test_non_finite_numbers_can_be_signed_so_content_checks_can_name_them() -> None:
    fields = {"w": math.nan, "v": math.inf}
    assert canonical_json(fields) == b'{"v":Infinity,"w":NaN}'
    assert verify(fields, sign(fields, KEY), KEY)
