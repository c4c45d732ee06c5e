"""The service's one settings object, read from ``DMM_*`` environment variables and CLI flags.

Variables are ``DMM_<GROUP>_<FIELD>`` in upper case: the group is one of ``kafka``, ``topics``,
``worker``, ``limits``, ``control``, ``metrics``, ``trainer`` and the field keeps its underscores
(``DMM_WORKER_BATCH_MAX_RECORDS``). ``DMM_CACHE_DIR`` has no group. This is the only module
that reads the environment; everything else gets a `Settings` passed in. CLI flags override
the environment (`load_settings`). ``python -m service.settings`` prints the README table.

Example:
    >>> settings = load_settings({"worker.guarantee": "exactly-once"})
    >>> settings.worker.guarantee, settings.topics.input
    ('exactly-once', 'dmm.input')
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dmm_engine.engines import EngineName
from service.errors import SettingsError

ENV_PREFIX = "DMM_"
Guarantee = Literal["at-least-once", "exactly-once"]
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_HOST_PORT = re.compile(r"^[^\s,:]+:[0-9]{1,5}$")


def _topic_name(value: str) -> str:
    if not _TOPIC_NAME.match(value) or value in (".", ".."):
        raise ValueError("must be 1-249 characters from A-Z a-z 0-9 . _ - (a Kafka topic name)")
    return value


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Group):
    """How to reach the brokers."""

    bootstrap: str = Field(
        "127.0.0.1:9092", description="Bootstrap servers, comma-separated `host:port` list."
    )
    client_id: str = Field("dmm-stream", description="Client id sent to the brokers.")
    security_protocol: SecurityProtocol = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    sasl_mechanism: SaslMechanism = Field(
        "PLAIN", description="SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512."
    )
    sasl_username: str | None = Field(None, description="SASL user name (SASL protocols only).")
    sasl_password: SecretStr | None = Field(
        None, description="SASL password (secret: masked in logs)."
    )
    unavailable_timeout_s: float = Field(
        120.0,
        gt=0.0,
        description="Seconds the worker keeps retrying while the brokers are unreachable "
        "before it exits non-zero (so the orchestrator restarts it).",
    )

    @field_validator("bootstrap")
    @classmethod
    def _bootstrap_is_host_ports(cls, value: str) -> str:
        parts = [part.strip() for part in value.split(",")]
        if not parts or not all(_HOST_PORT.match(part) for part in parts):
            raise ValueError("must be host:port or a comma-separated list of host:port")
        return ",".join(parts)


class TopicSettings(_Group):
    """Topic names (DESIGN.md topics table) and how to create them."""

    input: str = Field("dmm.input", description="Input symbols, key = stream id.")
    output: str = Field("dmm.output", description="Output records, key = stream id.")
    state: str = Field("dmm.state", description="Compacted changelog of per-stream state.")
    control: str = Field("dmm.control", description="Model updates (hot swap).")
    control_acks: str = Field("dmm.control.acks", description="Acknowledgements of updates.")
    dlq: str = Field("dmm.dlq", description="Dead letters: bad input with the reason in headers.")
    partitions: int = Field(
        8, ge=1, description="Partitions of the input, output, state and DLQ topics."
    )
    replication_factor: int = Field(1, ge=1, description="Replication factor of created topics.")
    create: bool = Field(True, description="Create missing topics at start (idempotent).")

    @field_validator("input", "output", "state", "control", "control_acks", "dlq")
    @classmethod
    def _legal_topic_name(cls, value: str) -> str:
        return _topic_name(value)


class WorkerSettings(_Group):
    """The streaming worker: consumer group, model, guarantee, batching."""

    group: str = Field("dmm-worker", min_length=1, description="Consumer group id.")
    id: str | None = Field(
        None,
        description="Stable worker id (transactional id suffix in exactly-once mode). "
        "Default: the host name (a pod name in Kubernetes).",
    )
    model: str = Field(
        "duplicate-detector", min_length=1, description="Zoo model name or model file path."
    )
    guarantee: Guarantee = Field(
        "at-least-once", description="at-least-once or exactly-once (Kafka transactions)."
    )
    engine: EngineName = Field(
        "compiled",
        description="compiled (batched torch engine) or interpreter (the slow reference).",
    )
    neuron_types: str | None = Field(
        None,
        description="Neuron types of your own, comma-separated `module:attribute`; each names "
        "a NeuronType, a list of them, or a function that registers them on the registry "
        "passed in (run them with DMM_WORKER_ENGINE=interpreter).",
    )
    engine_threads: int = Field(
        1, ge=1, description="torch threads of the compiled engine (1 leaves a core for Kafka I/O)."
    )
    batch_max_records: int = Field(500, ge=1, description="Most input records per batch.")
    linger_ms: int = Field(5, ge=0, description="Producer linger before sending a batch, ms.")
    fetch_timeout_ms: int = Field(
        200, ge=1, description="Longest wait for input records per fetch, ms."
    )
    session_timeout_ms: int = Field(
        10000,
        ge=1000,
        description="Consumer group session timeout, ms: how soon the partitions of a worker "
        "that died are given to another (the broker allows 6000 and up by default).",
    )
    transaction_timeout_ms: int = Field(
        60000, ge=1000, description="Kafka transaction timeout (exactly-once mode), ms."
    )


class LimitSettings(_Group):
    """Input limits: a message over a limit goes to the DLQ."""

    max_message_bytes: int = Field(65536, ge=1, description="Largest input value, bytes.")
    max_key_bytes: int = Field(256, ge=1, description="Largest stream id (message key), bytes.")
    max_symbol_length: int = Field(
        256, ge=1, description="Longest symbol (character or token), characters."
    )
    max_abs_value: float = Field(
        1e6, gt=0.0, description='Largest absolute number in a `{"v": V-value}` input.'
    )


class ControlSettings(_Group):
    """Hot swap: how model updates on ``dmm.control`` are authenticated and bounded."""

    signing_key: SecretStr | None = Field(
        None,
        description="HMAC-SHA256 key of model updates (secret: masked in logs). When set, "
        "workers reject unsigned or wrongly signed updates and `dmm swap` signs.",
    )
    max_abs_weight: float = Field(
        100.0, gt=0.0, description="Largest absolute link weight a swapped-in matrix may hold."
    )
    max_soft_links: int = Field(
        10000, ge=1, description="Most soft links a swapped-in matrix may hold."
    )

    @field_validator("signing_key")
    @classmethod
    def _key_not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            raise ValueError("must not be empty (unset it to accept unsigned updates)")
        return value

    def key_bytes(self) -> bytes | None:
        """The signing key as UTF-8 bytes, or None when updates are not signed."""
        return self.signing_key.get_secret_value().encode("utf-8") if self.signing_key else None


class MetricsSettings(_Group):
    """The small HTTP port of the worker and the trainer: /metrics, /healthz, /readyz."""

    enabled: bool = Field(True, description="Serve /metrics, /healthz and /readyz.")
    host: str = Field(
        "0.0.0.0",
        min_length=1,
        description="Address the metrics port binds: 0.0.0.0 in a pod, 127.0.0.1 for a "
        "machine of your own.",
    )
    port: int = Field(
        9400,
        ge=0,
        le=65535,
        description="HTTP port of /metrics, /healthz, /readyz; 0 picks a free port (logged).",
    )


class TrainerSettings(_Group):
    """The trainer sidecar: what it samples, how it fine-tunes, when it publishes."""

    group: str = Field(
        "dmm-trainer",
        min_length=1,
        description="Faust app id of the trainer: its consumer group on the input topic and "
        "the leader election among its replicas (one active trainer per group).",
    )
    teacher: str = Field(
        "duplicate-detector",
        min_length=1,
        description="Zoo model name or model file whose outputs the trainer fits (the "
        "handcrafted machine for the duplicate detector).",
    )
    labels_topic: str | None = Field(
        None,
        description="Train against labelled streams from this topic instead of the teacher: "
        'key = stream id, value `{"seq": n, "input": symbol, "outputs": {name: number}}`.',
    )
    interval_s: float = Field(
        30.0, gt=0.0, description="Seconds between two training runs of the active trainer."
    )
    window_symbols: int = Field(
        32, ge=2, description="Most recent symbols kept per sampled stream."
    )
    max_streams: int = Field(
        2000, ge=2, description="Most streams kept; the least recently seen is dropped first."
    )
    min_streams: int = Field(
        4, ge=2, description="Streams (training + held out) needed before a training run."
    )
    max_train_streams: int = Field(
        64, ge=1, description="Most streams one run trains on (the most recently seen)."
    )
    holdout_fraction: float = Field(
        0.25,
        gt=0.0,
        lt=1.0,
        description="Share of streams held out for the gate, chosen by a stable hash of the "
        "stream id.",
    )
    steps: int = Field(200, ge=1, description="Adam steps per training run.")
    learning_rate: float = Field(0.01, gt=0.0, description="Adam learning rate of a run.")
    l1: float = Field(0.0, ge=0.0, description="λ of the L1 penalty on the soft links.")
    grad_mode: Literal["faithful", "full"] = Field(
        "faithful",
        description="faithful (accumulator memory detached, as the 2022 runs) or full (BPTT).",
    )
    margin: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="Publish only a candidate whose held-out error is at most (1 − margin) × "
        "the running matrix's.",
    )
    min_gain: float = Field(
        1e-6,
        ge=0.0,
        description="... and at least this much lower (mean squared error per output value).",
    )
    session_timeout_ms: int = Field(
        10000,
        ge=1000,
        description="Consumer group session timeout of the trainer, ms: how soon a standby "
        "takes over from an active trainer that died.",
    )
    start_from: Literal["latest", "earliest"] = Field(
        "latest",
        description="Where a new trainer group starts sampling: latest (only new text) or "
        "earliest (all the text the input topic still holds).",
    )

    @field_validator("labels_topic")
    @classmethod
    def _legal_labels_topic(cls, value: str | None) -> str | None:
        return None if value is None else _topic_name(value)


class Settings(BaseSettings):
    """Every setting of the service. Build it once with `load_settings` and pass it down."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="_",
        env_nested_max_split=1,
        frozen=True,
        extra="forbid",
    )

    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    worker: WorkerSettings = WorkerSettings()
    limits: LimitSettings = LimitSettings()
    control: ControlSettings = ControlSettings()
    metrics: MetricsSettings = MetricsSettings()
    trainer: TrainerSettings = TrainerSettings()
    cache_dir: Path = Field(
        Path("~/.cache/dmm-stream"),
        description="Cache of the local broker's jars; `dmm kafka` keeps its run dir here.",
    )

    @property
    def exactly_once(self) -> bool:
        """True when the worker runs with Kafka transactions."""
        return self.worker.guarantee == "exactly-once"

    @field_validator("cache_dir")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()


def load_settings(
    overrides: Mapping[str, Any] | None = None, flag_names: Mapping[str, str] | None = None
) -> Settings:
    """Settings from ``DMM_*`` variables, with `overrides` (CLI flags) taking precedence.

    Args:
        overrides: dotted field paths to values, e.g. ``{"worker.guarantee": "exactly-once"}``;
            a None value means "flag not given" and is ignored.
        flag_names: dotted field path to the CLI flag that set it, named in errors instead
            of the variable (``--batch-max-records="0": must be an integer >= 1``).

    Raises:
        SettingsError: one line per invalid value, naming the variable, the value and the
            rule, e.g. ``DMM_WORKER_BATCH_MAX_RECORDS="0": must be an integer >= 1``.
    """
    given = {path: value for path, value in (overrides or {}).items() if value is not None}
    nested: dict[str, Any] = {}
    for path, value in given.items():
        group, _, field = path.partition(".")
        if field:
            nested.setdefault(group, {})[field] = value
        else:
            nested[group] = value
    try:
        return Settings(**nested)
    except ValidationError as exc:
        flags = {path: flag for path, flag in (flag_names or {}).items() if path in given}
        lines = [_explain(error, flags) for error in exc.errors()]
        raise SettingsError("invalid settings: " + "; ".join(lines)) from None


def env_name(path: tuple[str | int, ...]) -> str:
    """The variable of a field path: ``("worker", "linger_ms")`` → ``DMM_WORKER_LINGER_MS``."""
    return ENV_PREFIX + "_".join(str(part) for part in path).upper()


def _explain(error: Any, flags: Mapping[str, str]) -> str:
    path = tuple(error["loc"])
    name = flags.get(".".join(str(p) for p in path), env_name(path))
    shown = error.get("input")
    value = f'="{shown}"' if isinstance(shown, (str, int, float)) else ""
    return f"{name}{value}: {_rule(error)}"


def _rule(error: Any) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    limit = next(iter(ctx.values()), None)
    noun = "an integer" if isinstance(limit, int) else "a number"
    bounds = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<="}
    if kind in bounds:
        return f"must be {noun} {bounds[kind]} {limit}"
    rules = {
        "int_parsing": "must be an integer",
        "int_from_float": "must be an integer",
        "float_parsing": "must be a number",
        "bool_parsing": "must be a boolean (true/false, 1/0, yes/no, on/off)",
        "literal_error": f"must be one of {ctx.get('expected', '')}",
        "extra_forbidden": "is not a setting (see the settings table in README.md)",
        "string_too_short": "must not be empty",
    }
    if kind in rules:
        return rules[kind]
    message = str(error["msg"]).removeprefix("Value error, ")
    return message[:1].lower() + message[1:]


def environment_of(settings: Settings) -> dict[str, str]:
    """The ``DMM_*`` variables that rebuild `settings` in a child process (secrets in clear).

    The inverse of `load_settings` for the commands that start other ``dmm`` processes
    (`dmm demo`, tests, benchmarks); unset fields are left out, so their defaults apply.
    """
    variables = {}
    for group in Settings.model_fields:
        value = getattr(settings, group)
        if isinstance(value, BaseModel):
            fields = {(group, name): getattr(value, name) for name in type(value).model_fields}
        else:
            fields = {(group,): value}
        for path, field_value in fields.items():
            if field_value is None:
                continue
            if isinstance(field_value, SecretStr):
                field_value = field_value.get_secret_value()
            shown = str(field_value).lower() if isinstance(field_value, bool) else str(field_value)
            variables[env_name(path)] = shown
    return variables


def child_environment(settings: Settings) -> dict[str, str]:
    """This process's environment without its ``DMM_*`` variables, plus `settings`'.

    What a ``dmm`` child process (the demo's worker and trainer) is started with, so that it
    sees exactly `settings` and the rest of the environment (PATH, HOME, …) as it is.
    """
    inherited = {
        name: value for name, value in os.environ.items() if not name.startswith(ENV_PREFIX)
    }
    return inherited | environment_of(settings)


def settings_rows() -> list[tuple[str, str, str]]:
    """``(variable, default, description)`` for every setting, in declaration order."""
    rows = []
    for group, info in Settings.model_fields.items():
        model = info.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            for field, sub in model.model_fields.items():
                rows.append((env_name((group, field)), _default(sub.default), sub.description))
        else:
            rows.append((env_name((group,)), _default(info.default), info.description))
    return [(name, default, description or "") for name, default, description in rows]


def _default(value: object) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def settings_table() -> str:
    """The README's settings table (Markdown), generated from the field descriptions."""
    lines = ["| variable | default | description |", "|---|---|---|"]
    lines += [f"| `{name}` | `{default}` | {text} |" for name, default, text in settings_rows()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(settings_table(), end="")
