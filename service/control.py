"""The control protocol's wire format: model updates and acks, parsed at the boundary.

Update — topic ``dmm.control``, key = model name, value = a JSON object:

* ``model``: the model name (equal to the key when there is one);
* ``version``: an integer >= 1, newer than the version the workers run;
* ``base_version``: for a ``delta``, the version it applies to (required); for a ``matrix``,
  the version the publisher saw running (informational, may be null);
* exactly one of ``matrix`` (the full new soft matrix W) or ``delta`` (W := W + delta), each
  rank-4 ``W[to_neuron][to_input][from_neuron][from_output] = weight`` with finite weights;
* ``neurons``: ``{name: type}`` the update brings in (optional, default none);
* ``created_at``: ISO 8601 time of publication;
* ``signature``: hex HMAC-SHA256 of the other fields (`service.signing`); required when
  ``DMM_CONTROL_SIGNING_KEY`` is set.

Ack — topic ``dmm.control.acks``, key = worker id, value
``{"model", "version", "worker", "status": "applied"|"rejected", "reason",
"applied_at_offsets": {input partition: first offset run on the new version}}``. A rejected
update's ``reason`` starts with the rule it broke (`service.errors.RejectReason`), e.g.
``"non-finite-weight: matrix.norm.dict.accum.dict: weight nan is not finite"``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from dmm_engine.vvalue import VValue
from service.errors import UpdateRejected
from service.signing import SIGNATURE_FIELD, sign, verify

UpdateKind = Literal["matrix", "delta"]
AckStatus = Literal["applied", "rejected"]
UPDATE_FIELDS = (
    "model", "version", "base_version", "matrix", "delta", "neurons", "created_at", "signature",
)  # fmt: skip
_LEVELS = ("to_neuron", "to_input", "from_neuron", "from_output")


@dataclass(frozen=True, slots=True)
class ModelUpdate:
    """One parsed update (see the module docstring for the fields).

    Attributes:
        kind: ``"matrix"`` (full soft matrix) or ``"delta"`` (added to W).
        change: the matrix or the delta, rank-4, every weight a finite float.
    """

    model: str
    version: int
    base_version: int | None
    kind: UpdateKind
    change: VValue
    neurons: Mapping[str, str]
    created_at: str
    signature: str | None = None

    def fields(self) -> dict[str, Any]:
        """The update as its JSON object (with the signature when it has one)."""
        body: dict[str, Any] = {
            "model": self.model,
            "version": self.version,
            "base_version": self.base_version,
            self.kind: self.change,
            "neurons": dict(self.neurons),
            "created_at": self.created_at,
        }
        if self.signature is not None:
            body[SIGNATURE_FIELD] = self.signature
        return body


@dataclass(frozen=True, slots=True)
class ControlAck:
    """A worker's answer to one update.

    Attributes:
        model, version: the update's, as far as it could be read (None if not at all).
        worker: the worker id (``DMM_WORKER_ID``).
        status: ``"applied"`` or ``"rejected"``.
        reason: empty when applied on arrival; ``"<rule>: <detail>"`` when rejected.
        applied_at_offsets: input partition → the first offset that ran on the new version
            (every earlier offset ran on the old one); empty when rejected or replayed at start.
    """

    model: str | None
    version: int | None
    worker: str
    status: AckStatus
    reason: str = ""
    applied_at_offsets: Mapping[int, int] = field(default_factory=dict)


def build_update(
    model: str,
    version: int,
    kind: UpdateKind,
    change: VValue,
    *,
    base_version: int | None = None,
    neurons: Mapping[str, str] | None = None,
    created_at: str | None = None,
    key: bytes | None = None,
) -> ModelUpdate:
    """An update, signed with `key` when given; `created_at` defaults to now (UTC)."""
    created = created_at or dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    unsigned = ModelUpdate(model, version, base_version, kind, change, dict(neurons or {}), created)
    if key is None:
        return unsigned
    return ModelUpdate(
        model, version, base_version, kind, change, dict(unsigned.neurons), created,
        sign(unsigned.fields(), key),
    )  # fmt: skip


def encode_update(update: ModelUpdate) -> bytes:
    """The message value of `update` (compact JSON, UTF-8)."""
    return json.dumps(update.fields(), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def peek_update(key: bytes | None, value: bytes | None) -> tuple[str | None, int | None]:
    """Best-effort ``(model, version)`` of a control message, for acks of unreadable updates.

    The key names the model when present; the version is read only from a JSON object.
    """
    model = key.decode("utf-8", "replace") if key else None
    try:
        body = json.loads(value or b"")
    except (ValueError, RecursionError):
        return model, None
    if not isinstance(body, dict):
        return model, None
    if model is None and isinstance(body.get("model"), str):
        model = body["model"]
    version = body.get("version")
    return model, version if isinstance(version, int) and not isinstance(version, bool) else None


def parse_update(value: bytes | None, key: bytes | None, signing_key: bytes | None) -> ModelUpdate:
    """Read and authenticate one control message.

    Order: JSON object, then signature (when `signing_key` is set), then the schema and the
    weights. Neurons and fields are checked against the running network later
    (`service.swap.plan_swap`).

    Raises:
        UpdateRejected: ``malformed-json``, ``missing-signature``, ``bad-signature``,
            ``bad-schema`` or ``non-finite-weight``, naming the field or matrix path.
    """
    body = _json_object(value)
    if signing_key is not None:
        _check_signature(body, signing_key)
    return _schema(body, key)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        twice = sorted({k for k in keys if keys.count(k) > 1})
        raise UpdateRejected("malformed-json", f"duplicate key(s) {twice} in one object")
    return dict(pairs)


def _json_object(value: bytes | None) -> dict[str, Any]:
    if not value:
        raise UpdateRejected("malformed-json", "the message value is empty")
    try:
        body = json.loads(value.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError as exc:
        detail = f"not UTF-8: {exc.reason} at byte {exc.start}"
        raise UpdateRejected("malformed-json", detail) from None
    except RecursionError:
        raise UpdateRejected("malformed-json", "JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, or an integer too long to read
        raise UpdateRejected("malformed-json", f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise UpdateRejected("malformed-json", f"JSON {type(body).__name__}; expected an object")
    return body


def _check_signature(body: dict[str, Any], signing_key: bytes) -> None:
    signature = body.get(SIGNATURE_FIELD)
    if signature is None:
        raise UpdateRejected(
            "missing-signature",
            "the update has no 'signature'; this worker accepts only updates signed with "
            "DMM_CONTROL_SIGNING_KEY",
        )
    if not isinstance(signature, str) or not verify(body, signature, signing_key):
        raise UpdateRejected(
            "bad-signature",
            "'signature' is not the HMAC-SHA256 of the update under DMM_CONTROL_SIGNING_KEY",
        )


def _schema(body: dict[str, Any], key: bytes | None) -> ModelUpdate:
    unknown = sorted(set(body) - set(UPDATE_FIELDS))
    if unknown:
        raise UpdateRejected("bad-schema", f"unknown field(s) {unknown}; allowed: {UPDATE_FIELDS}")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise UpdateRejected("bad-schema", f"'model' must be a non-empty string, got {model!r}")
    if key is not None and key != model.encode("utf-8"):
        raise UpdateRejected(
            "bad-schema", f"'model' is {model!r} but the message key is {key!r}; they must match"
        )
    version = _integer(body, "version")
    base_version = None if body.get("base_version") is None else _integer(body, "base_version")
    kinds = [kind for kind in ("matrix", "delta") if kind in body]
    if len(kinds) != 1:
        detail = f"exactly one of 'matrix', 'delta' expected; got {kinds}"
        raise UpdateRejected("bad-schema", detail)
    kind: UpdateKind = "matrix" if kinds == ["matrix"] else "delta"
    if kind == "delta" and base_version is None:
        detail = "a 'delta' needs 'base_version' (the version it adds to)"
        raise UpdateRejected("bad-schema", detail)
    change = _rank4(body[kind], kind, 0)
    return ModelUpdate(
        model, version, base_version, kind, change, _neurons(body.get("neurons")),
        _created_at(body.get("created_at")), body.get(SIGNATURE_FIELD),
    )  # fmt: skip


def _integer(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UpdateRejected("bad-schema", f"{name!r} must be an integer >= 1, got {value!r}")
    return value


def _rank4(value: Any, path: str, depth: int) -> Any:
    if depth == len(_LEVELS):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UpdateRejected(
                "bad-schema", f"{path}: expected a link weight (a number), got {value!r:.60}"
            )
        try:
            weight = float(value)
        except OverflowError:
            detail = f"{path}: weight does not fit a float"
            raise UpdateRejected("non-finite-weight", detail) from None
        if not math.isfinite(weight):
            raise UpdateRejected("non-finite-weight", f"{path}: weight {weight!r} is not finite")
        return weight
    if not isinstance(value, dict):
        raise UpdateRejected(
            "bad-schema",
            f"{path}: expected an object keyed by {_LEVELS[depth]} "
            f"(W[to_neuron][to_input][from_neuron][from_output]), got {value!r:.60}",
        )
    return {str(k): _rank4(v, f"{path}.{k}", depth + 1) for k, v in value.items()}


def _neurons(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(t, str) for t in value.values()):
        detail = f"'neurons' must be an object {{name: type}}, got {value!r:.80}"
        raise UpdateRejected("bad-schema", detail)
    return dict(value)


def _created_at(value: Any) -> str:
    try:
        dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise UpdateRejected(
            "bad-schema", f"'created_at' must be an ISO 8601 time, got {value!r:.60}"
        ) from None
    return str(value)


def encode_ack(ack: ControlAck) -> bytes:
    """The ack message value (compact JSON; partitions as string keys)."""
    body = {
        "model": ack.model,
        "version": ack.version,
        "worker": ack.worker,
        "status": ack.status,
        "reason": ack.reason,
        "applied_at_offsets": {str(p): o for p, o in sorted(ack.applied_at_offsets.items())},
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode_ack(value: bytes | None) -> ControlAck | None:
    """Read an ack back; None when `value` is not one (a tolerant reader of a shared topic)."""
    try:
        body = json.loads(value or b"")
        status = body["status"]
        if status not in ("applied", "rejected"):
            return None
        offsets = {int(p): int(o) for p, o in (body.get("applied_at_offsets") or {}).items()}
        model, version = body.get("model"), body.get("version")
        return ControlAck(
            model if isinstance(model, str) else None,
            version if isinstance(version, int) and not isinstance(version, bool) else None,
            str(body["worker"]), status, str(body.get("reason") or ""), offsets,
        )  # fmt: skip
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return None
