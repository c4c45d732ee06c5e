"""Exceptions raised by `service`: one root, small named subclasses."""

from __future__ import annotations

from typing import ClassVar, Literal


class ServiceError(Exception):
    """Root of every error raised by `service`."""

    retriable: ClassVar[bool] = False


class InputTextError(ServiceError):
    """Text given to a command cannot be read (missing file, invalid UTF-8)."""


class SettingsError(ServiceError):
    """A ``DMM_*`` variable or CLI flag has an invalid value; the message names each one."""


class TopicError(ServiceError):
    """A topic exists with the wrong partition count or configuration.

    Operator action: fix or recreate the topic (the message says what it must be).
    """


class BrokerUnavailableError(ServiceError):
    """The brokers could not be reached for longer than ``DMM_KAFKA_UNAVAILABLE_TIMEOUT_S``."""

    retriable = True


class StateRestoreError(ServiceError):
    """The state changelog could not be read back (unreachable, or a record is corrupt).

    Operator action for a corrupt record: delete its key from the state topic (a tombstone);
    that stream then restarts from the reset state.
    """


class MetricsPortError(ServiceError):
    """The HTTP port of /metrics, /healthz and /readyz cannot be bound.

    Operator action: free the port, or choose another with ``DMM_METRICS_HOST`` and
    ``DMM_METRICS_PORT`` (0 picks a free one; ``DMM_METRICS_ENABLED=false`` serves none).
    """


class BadInputError(ServiceError):
    """An input message cannot be processed; it goes to the DLQ labelled with `reason`."""

    reason: ClassVar[str] = "bad-input"


class MissingKeyError(BadInputError):
    """The message has no key (the stream id)."""

    reason = "missing-key"


class BadKeyError(BadInputError):
    """The key is not UTF-8 text or is longer than ``DMM_LIMITS_MAX_KEY_BYTES``."""

    reason = "bad-key"


class EmptyMessageError(BadInputError):
    """The value is empty (zero bytes or a tombstone)."""

    reason = "empty"


class OversizedMessageError(BadInputError):
    """The value is longer than ``DMM_LIMITS_MAX_MESSAGE_BYTES``."""

    reason = "oversized"


class InvalidUtf8Error(BadInputError):
    """The value is not valid UTF-8."""

    reason = "invalid-utf8"


class InvalidJsonError(BadInputError):
    """The value starts with ``{`` but is not a JSON object."""

    reason = "invalid-json"


class UnknownFieldError(BadInputError):
    """A JSON input has a field other than ``char``, ``token`` or ``v``."""

    reason = "unknown-field"


class BadValueError(BadInputError):
    """A symbol or V-value breaks a rule (wrong type, too long, whitespace in a token, ...)."""

    reason = "bad-value"


BAD_INPUT_ERRORS: tuple[type[BadInputError], ...] = (
    MissingKeyError,
    BadKeyError,
    EmptyMessageError,
    OversizedMessageError,
    InvalidUtf8Error,
    InvalidJsonError,
    UnknownFieldError,
    BadValueError,
)
"""Every class of bad input, in the order the codec checks for them."""


RejectReason = Literal[
    "malformed-json",
    "bad-schema",
    "missing-signature",
    "bad-signature",
    "unknown-neuron-type",
    "neuron-type-change",
    "unknown-neuron",
    "unknown-field",
    "type-incorrect-link",
    "non-finite-weight",
    "weight-too-large",
    "too-many-links",
    "stale-version",
    "wrong-base-version",
    "invalid-network",
]
"""Why a model update was rejected: the first word of its ack's ``reason``."""


class UpdateRejected(ServiceError):
    """A model update on ``dmm.control`` breaks a rule; the worker acks it as rejected.

    Attributes:
        reason: the rule it broke (`RejectReason`).
        detail: what exactly, naming the field or matrix path.
    """

    def __init__(self, reason: RejectReason, detail: str) -> None:
        self.reason: RejectReason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class SwapError(ServiceError):
    """`dmm swap` cannot do what was asked (e.g. the version to roll back to is unknown)."""


class TrainerConfigError(ServiceError):
    """The trainer's settings do not fit together (e.g. a teacher with other outputs)."""


class NeuronTypesError(ServiceError):
    """``DMM_WORKER_NEURON_TYPES`` names something that is not a neuron type or a registrar."""


class BadLabelError(ServiceError):
    """A message on ``DMM_TRAINER_LABELS_TOPIC`` is not a label; the trainer skips it."""
