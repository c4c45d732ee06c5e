"""Kafka clients built from `Settings`: connection options in one place."""

from __future__ import annotations

from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.helpers import create_ssl_context

from service.settings import Settings

Isolation = Literal["read_uncommitted", "read_committed"]


def connection_options(settings: Settings) -> dict[str, Any]:
    """``bootstrap_servers``, ``client_id`` and security options shared by every client."""
    kafka = settings.kafka
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap,
        "client_id": kafka.client_id,
        "security_protocol": kafka.security_protocol,
    }
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context()
    if kafka.security_protocol.startswith("SASL"):
        password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
        options |= {
            "sasl_mechanism": kafka.sasl_mechanism,
            "sasl_plain_username": kafka.sasl_username,
            "sasl_plain_password": password,
        }
    return options


def make_producer(settings: Settings, *, transactional_id: str | None = None) -> AIOKafkaProducer:
    """An idempotent producer (``acks=all``); transactional when `transactional_id` is given."""
    extra: dict[str, Any] = {}
    if transactional_id is not None:
        extra = {
            "transactional_id": transactional_id,
            "transaction_timeout_ms": settings.worker.transaction_timeout_ms,
        }
    return AIOKafkaProducer(
        **connection_options(settings),
        acks="all",
        enable_idempotence=True,
        linger_ms=settings.worker.linger_ms,
        **extra,
    )


def make_consumer(
    settings: Settings,
    *,
    group_id: str | None,
    isolation_level: Isolation = "read_committed",
    auto_offset_reset: Literal["earliest", "latest"] = "earliest",
) -> AIOKafkaConsumer:
    """A consumer with manual commits (`group_id` None: no group, assign partitions by hand)."""
    session_timeout_ms = settings.worker.session_timeout_ms
    return AIOKafkaConsumer(
        **connection_options(settings),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset=auto_offset_reset,
        isolation_level=isolation_level,
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=max(100, session_timeout_ms // 3),
    )


def make_admin(settings: Settings) -> AIOKafkaAdminClient:
    """An admin client (topic creation and inspection)."""
    return AIOKafkaAdminClient(**connection_options(settings))
