"""Labels instead of a teacher: decoding, streams kept from their first step, the objective."""

from __future__ import annotations

import json

import pytest

from dmm_engine import default_registry, one_hot, run_messages, vvalue, zoo
from service.demo.run import degraded_network
from service.errors import BadLabelError
from service.trainer.labels import Label, LabelSampler, LabelTargets, Step, decode_label
from service.trainer.tuning import TuningConfig, fine_tune, mean_error

NAMES = ("left", "right")
TEXTS = {
    "s1": "the test string.",
    "s2": "a tets of dots.",
    "s3": "ants in the sand.",
    "s4": "test string.",
    "s5": "at a bat.",
    "s6": "dots and ants.",
}


def labelled(text: str) -> list[Step]:
    """The handcrafted machine's outputs after each symbol of `text`, as labelled steps."""
    registry = default_registry()
    teacher = zoo.load("duplicate-detector", registry)
    outputs = run_messages(teacher, registry, [one_hot(c) for c in text])
    return [
        Step(c, {n: vvalue.get_number(o[n]) for n in NAMES})
        for c, o in zip(text, outputs, strict=True)
    ]


def test_a_label_is_an_output_record_shaped_step() -> None:
    value = json.dumps({"seq": 2, "input": "e", "outputs": {"left": 1, "right": {":number": 0}}})
    label = decode_label(b"s1", value.encode(), NAMES)
    assert label == Label("s1", 2, Step("e", {"left": 1.0, "right": 0.0}))
    partial = decode_label(b"s1", b'{"seq": 1, "input": "t", "outputs": {"left": 0}}', NAMES)
    assert partial.step.targets == {"left": 0.0}  # no target for "right" at this step


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (None, b'{"seq": 1, "input": "t", "outputs": {}}', "no key"),
        (b"s", b"not json", "not UTF-8 JSON"),
        (b"s", b"[1]", "expected a JSON object"),
        (b"s", b'{"seq": 0, "input": "t", "outputs": {}}', "'seq' must be an integer >= 1"),
        (b"s", b'{"seq": 1, "input": "", "outputs": {}}', "'input' must be a symbol"),
        (b"s", b'{"seq": 1, "input": "t", "outputs": []}', "'outputs' must be an object"),
        (b"s", b'{"seq": 1, "input": "t", "outputs": {"up": 1}}', "unknown output 'up'"),
        (b"s", b'{"seq": 1, "input": "t", "outputs": {"left": "x"}}', "outputs.left"),
    ],
)
def test_bad_labels_are_named(key: bytes | None, value: bytes, message: str) -> None:
    with pytest.raises(BadLabelError, match="label") as error:
        decode_label(key, value, NAMES)
    assert message in str(error.value)


def test_streams_are_kept_from_their_first_step_in_order() -> None:
    sampler = LabelSampler(window=3, max_streams=10)
    steps = labelled("abcd")
    for seq in (2, 1, 2, 2, 4, 3, 4, 5):  # joined late, then a repeat, a gap, the rest
        sampler.add(Label("s", seq, steps[min(seq, 4) - 1]))
    training, held_out = sampler.split(0.0001, 10)
    window = (training | held_out)["s"]
    assert [step.symbol for step in window] == ["a", "b", "c"]  # 4 is beyond the window
    assert sampler.ignored == 5 and sampler.symbols_seen == 8


def test_labels_of_the_teacher_train_like_the_teacher() -> None:
    registry = default_registry()
    streams = {s: labelled(t) for s, t in TEXTS.items()}
    training = LabelTargets(registry, dict(list(streams.items())[:4]), 32, NAMES, "faithful")
    held_out = LabelTargets(registry, dict(list(streams.items())[4:]), 32, NAMES, "faithful")
    teacher_like = zoo.load("synthesized-general", registry)
    assert mean_error(held_out, teacher_like) < 1e-4  # the zoo machine fits the labels
    # lengths 16, 15, 17, 12 are cut to buckets 16, 8, 16, 8; two outputs per kept step
    assert training.outputs == 2 * (16 + 8 + 16 + 8)

    result = fine_tune(degraded_network(), training, held_out, TuningConfig(steps=60))

    assert result.holdout_after < result.holdout_before / 10, result
    assert result.verdict.publish


def test_labels_and_network_must_name_the_same_outputs() -> None:
    registry = default_registry()
    targets = LabelTargets(registry, {"s": labelled("abcd")}, 8, ("left",), "faithful")
    with pytest.raises(Exception, match=r"labels name the outputs \['left'\]"):
        targets.objective(zoo.load("synthesized-general", registry), 0.0)
