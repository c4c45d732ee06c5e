"""Model updates for the hot-swap tests: a valid delta, and one hostile update per rule.

Shared by the unit tests (`test_swap.py`) and the broker tests (`tests/integration/test_swap_flow.py`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from dmm_engine import default_registry, zoo
from service.errors import RejectReason
from service.signing import sign

MODEL = "duplicate-detector"
KEY = b"test-signing-key"
MAX_SOFT_LINKS = 40
"""``DMM_CONTROL_MAX_SOFT_LINKS`` of the tests (the detector has 11 soft links)."""
CREATED_AT = "2024-05-01T12:00:00.000+00:00"

# right := 2·(max-norm of the counts), through a new neuron, instead of min(count of '.', 4)
NORM2_DELTA: dict[str, Any] = {
    "norm2": {"dict": {"accum": {"dict": 1.0}}},
    "output": {"dict-2": {"dot": {"dot": -1.0}, "norm2": {"norm": 2.0}}},
}
NORM2_NEURONS = {"norm2": "norm"}


def update_fields(version: int, **fields: Any) -> dict[str, Any]:
    """An update's JSON object (unsigned): a delta on `version` − 1 unless `fields` say else."""
    body: dict[str, Any] = {
        "model": MODEL,
        "version": version,
        "base_version": version - 1,
        "created_at": CREATED_AT,
    }
    if "matrix" not in fields and "delta" not in fields:
        body |= {"delta": NORM2_DELTA, "neurons": NORM2_NEURONS}
    return {"neurons": {}, **body, **fields}


def message(body: dict[str, Any], key: bytes | None = KEY) -> bytes:
    """The message value of `body`, signed with `key` (NaN and Infinity written as such)."""
    if key is not None:
        body = {**body, "signature": sign(body, key)}
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def every_link(weight: float) -> dict[str, Any]:
    """A matrix linking every output field of the detector to every input field (99 links)."""
    registry = default_registry()
    network = zoo.load(MODEL, registry)
    types = {n: registry.get(t) for n, t in network.neurons.items()}
    return {
        to: {i: {src: dict.fromkeys(s.outputs, weight) for src, s in types.items() if s.outputs}
             for i in t.inputs}
        for to, t in types.items()
        if t.inputs
    }  # fmt: skip


@dataclass(frozen=True, slots=True)
class HostileCase:
    """An update a worker running `running` must refuse with `reason`; `detail` is in the ack."""

    name: str
    value: bytes
    reason: RejectReason
    detail: str


def hostile_cases(running: int = 1) -> list[HostileCase]:
    """One hostile update per rule, each otherwise well-formed and signed with `KEY`."""
    v = running + 1
    edge = {"norm": {"dict": {"accum": {"dict": math.nan}}}}
    cases = [
        ("nan", update_fields(v, delta=edge), "non-finite-weight", "weight nan is not finite"),
        (
            "inf",
            update_fields(v, delta={"norm": {"dict": {"accum": {"dict": math.inf}}}}),
            "non-finite-weight",
            "weight inf is not finite",
        ),
        (
            "unknown-neuron",
            update_fields(v, delta={"ghost": {"dict": {"accum": {"dict": 1.0}}}}),
            "unknown-neuron",
            "delta.ghost.dict.accum.dict: no neuron 'ghost'",
        ),
        (
            "unknown-neuron-type",
            update_fields(
                v, neurons={"n2": "nonsense"}, delta={"n2": {"x": {"accum": {"dict": 1}}}}
            ),
            "unknown-neuron-type",
            "neurons.n2: unknown neuron type 'nonsense'",
        ),
        (
            "unknown-field",
            update_fields(v, delta={"norm": {"dict-9": {"accum": {"dict": 1.0}}}}),
            "unknown-field",
            "neuron 'norm' (type norm) has no input 'dict-9'",
        ),
        (
            "type-incorrect-link",
            update_fields(v, delta={"norm": {"dict": {"accum": {"dict-1": 1.0}}}}),
            "type-incorrect-link",
            "'dict-1' is not an output of neuron 'accum'",
        ),
        (
            "too-many-links",
            update_fields(v, matrix=every_link(0.001)),
            "too-many-links",
            f"has 99 soft links; the limit is {MAX_SOFT_LINKS}",
        ),
        (
            "weight-too-large",
            update_fields(v, delta={"norm": {"dict": {"accum": {"dict": 1e6}}}}),
            "weight-too-large",
            "W.norm.dict.accum.dict would be 1e+06",
        ),
        (
            "stale-version",
            update_fields(
                running, base_version=running, matrix=zoo.load(MODEL, default_registry()).matrix
            ),
            "stale-version",
            f"version {running} is not newer",
        ),
        (
            "wrong-base-version",
            update_fields(v, base_version=running + 5),
            "wrong-base-version",
            f"applies to version {running + 5} but version {running} is running",
        ),
    ]
    signed = [HostileCase(n, message(b), r, d) for n, b, r, d in cases]  # type: ignore[arg-type]
    return [
        *signed,
        HostileCase("missing-signature", message(update_fields(v), None), "missing-signature",
                    "has no 'signature'"),
        HostileCase("bad-signature", message(update_fields(v), b"another key"), "bad-signature",
                    "is not the HMAC-SHA256"),
        HostileCase("malformed-json", b'{"model": "duplicate-detector", "version": ', "malformed-json",
                    "not JSON"),
    ]  # fmt: skip
