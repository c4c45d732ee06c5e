"""The trainable "feedforward with locally recurrent elements" architecture (reference §5.1).

`ff3` builds the 2022 run's network: fixed neurons timer, input, const_1, eos, output; and
``n_layers`` layers of ``n_per_layer`` copies of each interneuron type (``<type>-<layer>-<k>``).
Every input of layer L is softly linked to every output of the initial layer and of layers
< L (skip connections); the output neuron sees everything. With the defaults there are 1486
soft links and 12 hard ones (timer→timer, timer→input, and each accumulator's ``dict-1`` self
loop). The ``compare-free`` variant (reference §5.9) uses 6 layers of {accum, norm, dot}: 942.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dmm_engine.network import Link, Network
from dmm_engine.vvalue import VValue

FF3_TYPES = ("accum", "norm", "compare", "dot")
COMPARE_FREE_TYPES = ("accum", "norm", "dot")
FIXED_NEURONS = {
    "timer": "timer",
    "input": "input",
    "const_1": "const_1",
    "eos": "eos",
    "output": "output",
}
_OUTPUTS = {"accum": ("dict",), "norm": ("norm",), "dot": ("dot",), "compare": ("true", "false")}
_INPUTS = {
    "accum": ("dict-2",),
    "norm": ("dict",),
    "dot": ("dict-1", "dict-2"),
    "compare": ("dict-1", "dict-2"),
}
_ORDER = ("accum", "norm", "dot", "compare")  # the seed's field order within a layer


def _interneurons(n_layers: int, n_per_layer: int, types: Sequence[str]) -> dict[str, str]:
    return {
        f"{t}-{layer}-{k}": t
        for layer in range(1, n_layers + 1)
        for k in range(1, n_per_layer + 1)
        for t in types
    }


def ff3_soft_links(
    n_layers: int = 5, n_per_layer: int = 2, types: Sequence[str] = FF3_TYPES
) -> list[tuple[str, str, str, str]]:
    """The soft link template ``(to, to_input, from, from_output)`` in the seed's loop order."""
    kinds = [t for t in _ORDER if t in types]
    sources = [("input", "char"), ("eos", "char"), ("const_1", "const_1")]
    template = []
    for layer in range(1, n_layers + 2):
        if layer <= n_layers:
            targets = [
                (f"{t}-{layer}-{k}", i)
                for k in range(1, n_per_layer + 1)
                for t in kinds
                for i in _INPUTS[t]
            ]
        else:
            targets = [("output", "dict-1"), ("output", "dict-2")]
        template += [(to, ti, src, so) for to, ti in targets for src, so in sources]
        sources += [
            (f"{t}-{layer}-{k}", o)
            for k in range(1, n_per_layer + 1)
            for t in kinds
            for o in _OUTPUTS[t]
        ]
    return template


def _hard_links(neurons: dict[str, str]) -> VValue:
    fixed: VValue = {
        "timer": {"timer": {"timer": {"timer": 1.0}}},
        "input": {"timer": {"timer": {"timer": 1.0}}},
    }
    for name, type_name in neurons.items():
        if type_name == "accum":
            fixed[name] = {"dict-1": {name: {"dict": 1.0}}}
    return fixed


def matrix_from_links(links: Sequence[Link]) -> VValue:
    """A rank-4 matrix from ``(to, to_input, from, from_output, weight)`` links (additive)."""
    rows: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for to, to_input, source, from_output, weight in links:
        outs = rows.setdefault(to, {}).setdefault(to_input, {}).setdefault(source, {})
        outs[from_output] = outs.get(from_output, 0.0) + weight
    matrix: VValue = rows  # type: ignore[assignment]  # dict invariance: same data, wider type
    return matrix


def ff3(
    matrix: VValue | None = None,
    *,
    n_layers: int = 5,
    n_per_layer: int = 2,
    types: Sequence[str] = FF3_TYPES,
    name: str = "ff3",
) -> Network:
    """The trainable network with soft matrix `matrix` (default: every template link at 0.0)."""
    neurons = {**FIXED_NEURONS, **_interneurons(n_layers, n_per_layer, types)}
    if matrix is None:
        matrix = matrix_from_links(
            [(*link, 0.0) for link in ff3_soft_links(n_layers, n_per_layer, types)]
        )
    return Network(
        name=name,
        neurons=neurons,
        matrix=matrix,
        fixed=_hard_links(neurons),
        outputs={"left": ("output", "dict-1"), "right": ("output", "dict-2")},
        input="input",
        cycles_per_message=10,
        metadata={
            "architecture": name,
            "n_layers": n_layers,
            "n_per_layer": n_per_layer,
            "types": list(types),
        },
    )


def random_matrix(
    seed: int,
    *,
    scale: float = 0.01,
    n_layers: int = 5,
    n_per_layer: int = 2,
    types: Sequence[str] = FF3_TYPES,
) -> VValue:
    """A soft matrix over the full template with weights ``scale · N(0, 1)``, in loop order.

    The seed used ``0.01·randn`` from Julia's ``Random.seed!(123)``, whose stream Python
    cannot reproduce (reference §5.1): use ``zoo.matrix("ff3-initial")`` for the seed's exact
    start, this for other architectures (e.g. compare-free) or other starts.
    """
    template = ff3_soft_links(n_layers, n_per_layer, types)
    generator = torch.Generator().manual_seed(seed)
    values = (scale * torch.randn(len(template), generator=generator, dtype=torch.float64)).tolist()
    return matrix_from_links([(*link, w) for link, w in zip(template, values, strict=True)])
