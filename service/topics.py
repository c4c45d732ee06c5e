"""Topic creation with explicit partition counts (DESIGN.md topics table), idempotent.

Input, output, state and DLQ get ``DMM_TOPICS_PARTITIONS`` partitions, control and acks one
(updates are ordered). The state topic is compacted. Input, output and state must have the
same partition count (a stream's state lives in the partition number of its input).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from service.clients import make_admin
from service.errors import TopicError
from service.settings import Settings

logger = logging.getLogger(__name__)

TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic to create: name, partition count and topic configs."""

    name: str
    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)


def topic_specs(settings: Settings, extra: Sequence[str] = ()) -> list[TopicSpec]:
    """The service's topics, plus `extra` names with the default partition count."""
    topics, n = settings.topics, settings.topics.partitions
    specs = [
        TopicSpec(topics.input, n),
        TopicSpec(topics.output, n),
        TopicSpec(topics.state, n, {"cleanup.policy": "compact"}),
        TopicSpec(topics.control, 1),
        TopicSpec(topics.control_acks, 1),
        TopicSpec(topics.dlq, n),
    ]
    known = {spec.name for spec in specs}
    specs += [TopicSpec(name, n) for name in dict.fromkeys(extra) if name not in known]
    return specs


async def ensure_topics(settings: Settings, extra: Sequence[str] = ()) -> dict[str, int]:
    """Create the missing topics of `topic_specs` and check the existing ones.

    Returns:
        The partition count of every topic.

    Raises:
        TopicError: a topic could not be created, is missing with ``DMM_TOPICS_CREATE=false``,
            the input, output and state topics differ in partition count, or the state
            topic is not compacted.
    """
    specs = topic_specs(settings, extra)
    admin = make_admin(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if missing and not settings.topics.create:
            names = ", ".join(spec.name for spec in missing)
            raise TopicError(f"topics missing: {names}; create them or set DMM_TOPICS_CREATE=true")
        if missing:
            await _create(admin, missing, settings.topics.replication_factor)
        counts = await _partition_counts(admin, specs)
        _check_copartitioned(settings, counts)
        await _check_compacted(admin, settings.topics.state)
    finally:
        await admin.close()
    return counts


CREATE_WAIT_S = 30.0


async def _partition_counts(
    admin: AIOKafkaAdminClient, specs: Sequence[TopicSpec]
) -> dict[str, int]:
    """Partition counts, waiting until a just-created topic reports its partitions.

    Describes only topics that exist (a metadata request for an unknown topic may create it).
    """
    deadline = asyncio.get_running_loop().time() + CREATE_WAIT_S
    while True:
        described = await admin.describe_topics([spec.name for spec in specs])
        counts = {str(d["topic"]): len(d["partitions"]) for d in described}
        if all(counts.get(spec.name, 0) > 0 for spec in specs):
            return counts
        if asyncio.get_running_loop().time() > deadline:
            empty = ", ".join(s.name for s in specs if counts.get(s.name, 0) == 0)
            raise TopicError(
                f"topics still without partitions after {CREATE_WAIT_S:.0f} s: {empty}"
            )
        await asyncio.sleep(0.1)


async def _create(admin: AIOKafkaAdminClient, specs: Sequence[TopicSpec], replication: int) -> None:
    new = [NewTopic(s.name, s.partitions, replication, topic_configs=dict(s.config)) for s in specs]
    response = await admin.create_topics(new)
    for name, code, message in response.topic_errors:
        if code not in (0, TOPIC_ALREADY_EXISTS):
            raise TopicError(f"cannot create topic {name!r}: {message} (Kafka error code {code})")
        if code == 0:
            logger.info("created topic name=%s", name)


def _check_copartitioned(settings: Settings, counts: Mapping[str, int]) -> None:
    topics = settings.topics
    expected = counts[topics.input]
    for name in (topics.output, topics.state):
        if counts[name] != expected:
            raise TopicError(
                f'topic "{name}" has {counts[name]} partitions; it must have as many as the '
                f'input topic "{topics.input}" ({expected}): they are co-partitioned. '
                "Operator action: recreate it with that partition count."
            )


async def _check_compacted(admin: AIOKafkaAdminClient, name: str) -> None:
    resource = ConfigResource(ConfigResourceType.TOPIC, name, {"cleanup.policy": None})
    (response,) = await admin.describe_configs([resource])
    entries = response.resources[0][4]
    policy = next((entry[1] for entry in entries if entry[0] == "cleanup.policy"), "")
    if "compact" not in str(policy).split(","):
        raise TopicError(
            f'state topic "{name}" has cleanup.policy={policy}; it must be compact '
            f"(a changelog keeps the latest state per stream). Operator action: "
            f"kafka-configs --alter --entity-type topics --entity-name {name} "
            "--add-config cleanup.policy=compact"
        )
