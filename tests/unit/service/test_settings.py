"""Settings: defaults, DMM_* variables, flags over variables, errors that name the variable."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.errors import SettingsError
from service.settings import (
    Settings,
    env_name,
    environment_of,
    load_settings,
    settings_rows,
    settings_table,
)

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No DMM_* variable of the caller's shell leaks into these tests."""
    for name in list(os.environ):
        if name.startswith("DMM_"):
            monkeypatch.delenv(name)


def test_defaults_follow_the_design_topics_table() -> None:
    settings = load_settings()
    topics = settings.topics
    assert (topics.input, topics.output, topics.state) == ("dmm.input", "dmm.output", "dmm.state")
    assert (topics.control, topics.control_acks, topics.dlq) == (
        "dmm.control",
        "dmm.control.acks",
        "dmm.dlq",
    )
    assert settings.worker.guarantee == "at-least-once" and not settings.exactly_once
    assert settings.cache_dir == Path.home() / ".cache" / "dmm-stream"


def test_variables_are_read_and_flags_override_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DMM_KAFKA_BOOTSTRAP", "broker-1:9092, broker-2:9093")
    monkeypatch.setenv("DMM_WORKER_BATCH_MAX_RECORDS", "64")
    monkeypatch.setenv("DMM_WORKER_GUARANTEE", "exactly-once")
    monkeypatch.setenv("DMM_TOPICS_CONTROL_ACKS", "acks.v2")
    monkeypatch.setenv("DMM_CACHE_DIR", "/tmp/jars")

    settings = load_settings({"worker.batch_max_records": 8, "worker.linger_ms": None})

    assert settings.kafka.bootstrap == "broker-1:9092,broker-2:9093"
    assert settings.worker.batch_max_records == 8  # the flag wins
    assert settings.worker.linger_ms == 5  # a flag that was not given changes nothing
    assert settings.exactly_once
    assert settings.topics.control_acks == "acks.v2"
    assert settings.cache_dir == Path("/tmp/jars")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "DMM_WORKER_BATCH_MAX_RECORDS",
            "0",
            'DMM_WORKER_BATCH_MAX_RECORDS="0": must be an integer >= 1',
        ),
        (
            "DMM_WORKER_BATCH_MAX_RECORDS",
            "many",
            'DMM_WORKER_BATCH_MAX_RECORDS="many": must be an integer',
        ),
        ("DMM_TOPICS_PARTITIONS", "-3", 'DMM_TOPICS_PARTITIONS="-3": must be an integer >= 1'),
        (
            "DMM_WORKER_GUARANTEE",
            "twice",
            "DMM_WORKER_GUARANTEE=\"twice\": must be one of 'at-least-once' or 'exactly-once'",
        ),
        ("DMM_LIMITS_MAX_ABS_VALUE", "0", 'DMM_LIMITS_MAX_ABS_VALUE="0": must be a number > 0.0'),
        ("DMM_METRICS_PORT", "70000", 'DMM_METRICS_PORT="70000": must be an integer <= 65535'),
        ("DMM_TOPICS_CREATE", "perhaps", 'DMM_TOPICS_CREATE="perhaps": must be a boolean'),
        ("DMM_KAFKA_BOOTSTRAP", "localhost", 'DMM_KAFKA_BOOTSTRAP="localhost": must be host:port'),
        ("DMM_TOPICS_INPUT", "in put", 'DMM_TOPICS_INPUT="in put": must be 1-249 characters'),
        (
            "DMM_WORKER_GUARANTE",
            "exactly-once",
            'DMM_WORKER_GUARANTE="exactly-once": is not a setting',
        ),
    ],
)
def test_errors_name_the_variable_the_value_and_the_rule(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert message in str(caught.value)


def test_errors_name_the_flag_when_a_flag_set_the_value() -> None:
    with pytest.raises(SettingsError, match=r'--batch-max-records="0": must be an integer >= 1'):
        load_settings(
            {"worker.batch_max_records": 0}, {"worker.batch_max_records": "--batch-max-records"}
        )


def test_every_error_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DMM_WORKER_LINGER_MS", "-1")
    monkeypatch.setenv("DMM_TOPICS_PARTITIONS", "0")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "DMM_WORKER_LINGER_MS" in str(caught.value) and "DMM_TOPICS_PARTITIONS" in str(
        caught.value
    )


def test_secrets_are_masked_and_settings_are_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DMM_KAFKA_SASL_PASSWORD", "hunter2")
    settings = load_settings()
    assert "hunter2" not in settings.model_dump_json() and "hunter2" not in repr(settings)
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.sasl_password.get_secret_value() == "hunter2"
    with pytest.raises(ValidationError, match="frozen"):
        settings.worker.linger_ms = 7  # type: ignore[misc]


def test_every_setting_has_a_description_and_a_variable_name() -> None:
    rows = settings_rows()
    assert all(description for _, _, description in rows)
    names = [name for name, _, _ in rows]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"DMM_[A-Z0-9_]+", name) for name in names)
    assert env_name(("worker", "batch_max_records")) == "DMM_WORKER_BATCH_MAX_RECORDS"
    assert "DMM_KAFKA_BOOTSTRAP" in names and "DMM_CACHE_DIR" in names


def test_every_variable_in_the_table_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # each documented name really reaches its field (catches a table/parser mismatch)
    values = {"DMM_WORKER_ID": "w-7", "DMM_KAFKA_SASL_USERNAME": "u", "DMM_TOPICS_DLQ": "dead"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert (settings.worker.id, settings.kafka.sasl_username, settings.topics.dlq) == (
        "w-7",
        "u",
        "dead",
    )


def test_readme_settings_table_is_generated_from_the_descriptions() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    begin, end = "<!-- settings-table:begin -->\n", "<!-- settings-table:end -->"
    assert begin in readme and end in readme, "README.md lacks the settings table markers"
    table = readme.split(begin, 1)[1].split(end, 1)[0]
    assert table == settings_table(), "regenerate it: python -m service.settings"


def test_only_settings_reads_the_environment() -> None:
    # kafka_local hands os.environ to the broker process it spawns; it reads no setting from it
    allowed = {"settings.py", "kafka_local.py"}
    readers = [
        path.name
        for path in (ROOT / "service").rglob("*.py")
        if path.name not in allowed
        and re.search(r"os\.environ|os\.getenv|getenv\(", path.read_text(encoding="utf-8"))
    ]
    assert readers == []


def test_the_signing_key_is_a_masked_secret_and_may_not_be_empty(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().control.key_bytes() is None
    monkeypatch.setenv("DMM_CONTROL_SIGNING_KEY", "s3cret-ключ")
    monkeypatch.setenv("DMM_CONTROL_MAX_SOFT_LINKS", "64")
    settings = load_settings()
    assert settings.control.key_bytes() == "s3cret-ключ".encode()
    assert settings.control.max_soft_links == 64
    assert "s3cret" not in settings.model_dump_json() and "s3cret" not in repr(settings)
    monkeypatch.setenv("DMM_CONTROL_SIGNING_KEY", "")
    with pytest.raises(SettingsError, match=r'DMM_CONTROL_SIGNING_KEY="": must not be empty'):
        load_settings()


def test_environment_of_rebuilds_the_same_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(
        {
            "worker.guarantee": "exactly-once",
            "metrics.port": 0,
            "topics.create": False,
            "control.signing_key": "s3cret",
            "trainer.labels_topic": "dmm.labels",
        }
    )
    variables = environment_of(settings)
    assert variables["DMM_CONTROL_SIGNING_KEY"] == "s3cret"  # a child process must verify too
    assert variables["DMM_TOPICS_CREATE"] == "false"
    assert "DMM_WORKER_ID" not in variables  # unset: the child applies its own default
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert load_settings() == settings
