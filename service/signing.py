"""Signatures of model updates: HMAC-SHA256 over the canonical JSON of the signed fields.

The signed text is the update without its ``signature`` field, written as canonical JSON:
keys sorted, no spaces, UTF-8 (not ASCII-escaped), and every number that is a whole value
below 2**53 in magnitude written as an integer (``1``, ``1.0`` and ``1e0`` sign alike), any
other number as Python's shortest round-trip ``repr`` (``NaN``/``Infinity`` included, so a
hostile update can be signed and still be refused for its content). The signature is the
lowercase hex digest.

Example:
    >>> fields = {"model": "m", "version": 2, "matrix": {}}
    >>> verify(fields, sign(fields, b"key"), b"key")
    True
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Mapping
from typing import Any

SIGNATURE_FIELD = "signature"
_WHOLE_LIMIT = 2**53


def _canonical_numbers(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _canonical_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical_numbers(v) for v in value]
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value) if abs(value) < _WHOLE_LIMIT else value
    return value


def canonical_json(fields: Mapping[str, Any]) -> bytes:
    """The signed bytes of an update: every field but ``signature``, canonical JSON, UTF-8."""
    signed = {k: v for k, v in fields.items() if k != SIGNATURE_FIELD}
    text = json.dumps(
        _canonical_numbers(signed),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=True,
    )
    return text.encode("utf-8")


def sign(fields: Mapping[str, Any], key: bytes) -> str:
    """The hex HMAC-SHA256 of `fields` (its ``signature`` field, if any, is left out)."""
    return hmac.new(key, canonical_json(fields), hashlib.sha256).hexdigest()


def verify(fields: Mapping[str, Any], signature: str, key: bytes) -> bool:
    """True iff `signature` is the signature of `fields` under `key` (constant-time compare)."""
    return hmac.compare_digest(sign(fields, key).encode("ascii"), signature.encode("utf-8"))
