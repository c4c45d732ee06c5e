"""Topic specs: explicit partition counts, the compacted changelog, extra topics."""

from __future__ import annotations

from service.settings import load_settings
from service.topics import TopicSpec, topic_specs


def test_specs_follow_the_design_table() -> None:
    settings = load_settings({"topics.partitions": 6})
    specs = {spec.name: spec for spec in topic_specs(settings, extra=["dmm.input", "extra.t"])}
    assert specs["dmm.input"] == TopicSpec("dmm.input", 6)
    assert specs["dmm.output"].partitions == specs["dmm.dlq"].partitions == 6
    assert specs["dmm.state"] == TopicSpec("dmm.state", 6, {"cleanup.policy": "compact"})
    assert specs["dmm.control"].partitions == specs["dmm.control.acks"].partitions == 1
    assert specs["extra.t"] == TopicSpec("extra.t", 6)
    assert len(specs) == 7
