"""The control wire format: updates parsed at the boundary, acks written and read back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.control import (
    ControlAck,
    build_update,
    decode_ack,
    encode_ack,
    encode_update,
    parse_update,
    peek_update,
)
from service.errors import UpdateRejected
from tests.unit.service.swap_cases import KEY, MODEL, NORM2_DELTA, message, update_fields

MODEL_KEY = MODEL.encode()


def rejected(value: bytes, key: bytes | None = MODEL_KEY, signing: bytes | None = KEY) -> str:
    with pytest.raises(UpdateRejected) as caught:
        parse_update(value, key, signing)
    return str(caught.value)


def test_a_built_update_round_trips_signed() -> None:
    update = build_update(
        MODEL, 4, "delta", NORM2_DELTA, base_version=3, neurons={"norm2": "norm"}, key=KEY
    )
    assert update.signature is not None and len(update.signature) == 64
    parsed = parse_update(encode_update(update), MODEL_KEY, KEY)
    assert parsed == update
    assert (parsed.kind, parsed.version, parsed.base_version) == ("delta", 4, 3)


def test_integer_weights_become_floats_and_a_key_is_optional() -> None:
    body = update_fields(2, matrix={"norm": {"dict": {"accum": {"dict": 1}}}}, base_version=None)
    parsed = parse_update(message(body, None), None, None)
    assert parsed.change == {"norm": {"dict": {"accum": {"dict": 1.0}}}}
    assert parsed.base_version is None and parsed.signature is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"", "malformed-json: the message value is empty"),
        (b"\xc3\x28", "malformed-json: not UTF-8"),
        (b"[1, 2]", "malformed-json: JSON list; expected an object"),
        (b'{"model": "a", "model": "b"}', "malformed-json: duplicate key(s) ['model']"),
        (b"[" * 100_000, "malformed-json: JSON nested too deeply"),
    ],
)
def test_malformed_json_is_named(value: bytes, expected: str) -> None:
    assert rejected(value).startswith(expected)


def _with(**fields: Any) -> dict[str, Any]:
    body = update_fields(2)
    for name, value in fields.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return body


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (_with(extra=1), "bad-schema: unknown field(s) ['extra']"),
        (_with(model=None), "bad-schema: 'model' must be a non-empty string, got None"),
        (_with(model="other"), "bad-schema: 'model' is 'other' but the message key is"),
        (_with(version=0), "bad-schema: 'version' must be an integer >= 1, got 0"),
        (_with(version="2"), "bad-schema: 'version' must be an integer >= 1, got '2'"),
        (_with(matrix={}), "bad-schema: exactly one of 'matrix', 'delta' expected"),
        (_with(delta=None), "bad-schema: exactly one of 'matrix', 'delta' expected; got []"),
        (_with(base_version=None), "bad-schema: a 'delta' needs 'base_version'"),
        (_with(created_at="yesterday"), "bad-schema: 'created_at' must be an ISO 8601 time"),
        (_with(neurons=["norm2"]), "bad-schema: 'neurons' must be an object {name: type}"),
        (
            _with(delta={"norm": {"dict": {"accum": 1.0}}}),
            "bad-schema: delta.norm.dict.accum: expected an object keyed by from_output",
        ),
        (
            _with(delta={"norm": {"dict": {"accum": {"dict": "1"}}}}),
            "bad-schema: delta.norm.dict.accum.dict: expected a link weight (a number), got '1'",
        ),
    ],
)
def test_schema_problems_name_the_field(body: dict[str, Any], expected: str) -> None:
    assert rejected(message(body)).startswith(expected)


def test_non_finite_weights_are_named_with_their_path() -> None:
    text = message(update_fields(2)).replace(b'"norm":2.0', b'"norm":-Infinity')
    assert rejected(text, signing=None).startswith(
        "non-finite-weight: delta.output.dict-2.norm2.norm: weight -inf is not finite"
    )
    huge = message(update_fields(2), None).replace(b'"norm":2.0', b'"norm":' + b"9" * 400)
    assert rejected(huge, signing=None).startswith("non-finite-weight: delta.output.dict-2.norm2")


def test_the_signature_is_checked_before_the_schema() -> None:
    unsigned = message(_with(extra=1), None)
    assert rejected(unsigned).startswith("missing-signature: the update has no 'signature'")
    forged = json.loads(message(update_fields(2)))
    forged["version"] = 3
    assert rejected(json.dumps(forged).encode()).startswith("bad-signature:")
    assert rejected(message(update_fields(2) | {"signature": 7}, None)).startswith("bad-signature")


def test_peek_reads_what_it_can_for_the_ack() -> None:
    assert peek_update(MODEL_KEY, b"nonsense") == (MODEL, None)
    assert peek_update(None, b'{"model": "m", "version": 5}') == ("m", 5)
    assert peek_update(None, b'{"model": 1, "version": true}') == (None, None)
    assert peek_update(b"k", b'{"model": "m", "version": 5}') == ("k", 5)


def test_acks_round_trip_and_a_foreign_message_reads_as_none() -> None:
    ack = ControlAck(MODEL, 3, "worker-1", "applied", "", {1: 40, 0: 12})
    encoded = encode_ack(ack)
    assert json.loads(encoded) == {
        "model": MODEL,
        "version": 3,
        "worker": "worker-1",
        "status": "applied",
        "reason": "",
        "applied_at_offsets": {"0": 12, "1": 40},
    }
    assert decode_ack(encoded) == ack
    rejection = ControlAck(None, None, "w", "rejected", "malformed-json: not JSON")
    assert decode_ack(encode_ack(rejection)) == rejection
    for junk in (b"", b"{}", b'{"status": "maybe", "worker": "w"}', b"[1]", None):
        assert decode_ack(junk) is None
