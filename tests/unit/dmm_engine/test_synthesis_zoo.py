"""The synthesized machines shipped in `dmm_engine/zoo/synthesized/` do what their reports say.

Issue 5 "must show": the default `dmm synth` machine has ≤ 20 soft links and prereg ≤ 2e-3 on
"test string." (140), "tets string." (140) and "teest string." (150); the "general" machine's
max per-element error against the handcrafted machine is ≤ 0.1 on held-out strings with a
character up to 8 times.
"""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources
from pathlib import Path

from dmm_engine import NeuronRegistry, count_links, load_model, zoo
from dmm_engine.synthesis import evaluate
from dmm_engine.synthesis.presets import GENERAL_HOLDOUT, GENERAL_SETS

FOLDER = Path(str(resources.files("dmm_engine.zoo").joinpath("synthesized")))


def test_the_default_synthesized_machine(registry: NeuronRegistry) -> None:
    model = load_model(FOLDER / "synthesized.json", registry)
    teacher = zoo.load("duplicate-detector", registry)
    assert count_links(model.matrix) <= 20
    for text, window in [("test string.", 140), ("tets string.", 140), ("teest string.", 150)]:
        assert evaluate(model, teacher, registry, text, window).prereg <= 2e-3, text
    report = json.loads((FOLDER / "synthesized-report.json").read_text())
    assert report["soft_links"] == count_links(model.matrix)
    assert report["training_sets"] == [{"texts": ["test string."], "window": 140}]


def test_the_general_machine_counts_to_8(registry: NeuronRegistry) -> None:
    model = load_model(FOLDER / "synthesized-general.json", registry)
    teacher = zoo.load("duplicate-detector", registry)
    training = set(GENERAL_SETS[0].texts)
    assert max(max(Counter(t).values()) for t, _ in GENERAL_HOLDOUT) == 8
    for text, window in GENERAL_HOLDOUT:
        assert text not in training
        report = evaluate(model, teacher, registry, text, window)
        assert report.max_element_error <= 0.1**2, (text, window)  # |error| ≤ 0.1
