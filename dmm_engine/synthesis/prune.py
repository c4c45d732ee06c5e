"""Pruning: choose the soft links to cut, and rebuild a network without them (reference §5.6).

A pruned link is *deleted* from the soft matrix (§9.9): it no longer exists, is not
regularised and cannot regrow; hard links are never pruned. After a cut the engine is rebuilt
from the smaller network, so neurons left without links drop out of the computation.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from dmm_engine import vvalue
from dmm_engine.compiled import CompiledEngine
from dmm_engine.errors import DmmError
from dmm_engine.network import Network, links
from dmm_engine.neurons import NeuronRegistry
from dmm_engine.synthesis.build import matrix_from_links
from dmm_engine.vvalue import VValue

SoftLink = tuple[str, str, str, str]
"""``(to, to_input, from, from_output)``."""


def soft_matrix(links: list[SoftLink], weights: Tensor) -> VValue:
    """The rank-4 soft matrix with `weights` (``[L]``) on `links` (float values)."""
    if len(links) != weights.numel():
        raise DmmError(f"soft_matrix: {len(links)} links but {weights.numel()} weights")
    values = weights.detach().double().tolist()
    return matrix_from_links([(*link, float(w)) for link, w in zip(links, values, strict=True)])


def with_weights(network: Network, links: list[SoftLink], weights: Tensor) -> Network:
    """`network` whose soft matrix is exactly `links` with `weights`."""
    return dataclasses.replace(network, matrix=soft_matrix(links, weights))


def keep_largest(weights: Tensor, cut: int) -> Tensor:
    """``[L]`` bool: True for all but the `cut` links of smallest |w| (ties: lower index kept).

    Raises:
        DmmError: `cut` is negative or more than the number of links.
    """
    if not 0 <= cut <= weights.numel():
        raise DmmError(f"keep_largest: cut={cut} must be within 0..{weights.numel()}")
    order = torch.argsort(weights.detach().abs(), stable=True)
    keep = torch.ones(weights.numel(), dtype=torch.bool)
    keep[order[:cut]] = False
    return keep


def keep_at_least(weights: Tensor, cutoff: float) -> Tensor:
    """``[L]`` bool: True where ``|w| >= cutoff`` (the seed's ``sparsecopy(M, lim)``)."""
    return weights.detach().abs() >= cutoff


def cut_links(
    network: Network, engine: CompiledEngine, weights: Tensor, keep: Tensor
) -> tuple[Network, Tensor]:
    """The network holding only the kept soft links, and the indices of those links.

    Args:
        network: the network `engine` was compiled from.
        engine: gives the soft-link order of `weights`.
        weights: ``[L]`` current weights.
        keep: ``[L]`` bool mask.

    Returns:
        The new network and ``[L']`` long indices into the old links (for trimming moments).
    """
    if keep.shape != weights.shape:
        raise DmmError(
            f"cut_links: mask {tuple(keep.shape)} does not match weights {tuple(weights.shape)}"
        )
    index = torch.nonzero(keep).flatten()
    kept = [engine.soft_links[i] for i in index.tolist()]
    return with_weights(network, kept, weights[index]), index


def reorder(old: list[SoftLink], new: list[SoftLink]) -> Tensor:
    """``[len(new)]`` long: the position in `old` of each link of `new`.

    Raises:
        DmmError: a link of `new` is not in `old`.
    """
    position = {link: i for i, link in enumerate(old)}
    missing = [link for link in new if link not in position]
    if missing:
        raise DmmError(f"reorder: links {missing[:3]} are not among the old links")
    return torch.tensor([position[link] for link in new], dtype=torch.long)


def _silent_neurons(network: Network, registry: NeuronRegistry) -> set[str]:
    """Neurons whose outputs are zero at every cycle, whatever the input text.

    A neuron is silent when its type maps empty inputs to zero outputs (not an input neuron)
    and every link into it comes from a silent neuron (its own memory loop included): the
    greatest such set, found by removing counter-examples until none is left.
    """
    silent = set()
    for name, type_name in network.neurons.items():
        neuron_type = registry.get(type_name)
        outputs = neuron_type.function({})
        quiet = all(x == 0.0 for value in outputs.values() for _, x in vvalue.leaves(value))
        if quiet and neuron_type.role == "plain":
            silent.add(name)
    incoming = [
        (to, source) for to, _, source, _, _ in [*links(network.matrix), *links(network.fixed)]
    ]
    changed = True
    while changed:
        loud = {to for to, source in incoming if to in silent and source not in silent}
        silent -= loud
        changed = bool(loud)
    return silent


def _useful_neurons(network: Network) -> set[str]:
    """Neurons with a path of links to a neuron that a named output reads."""
    useful = {neuron for neuron, _ in network.outputs.values()}
    edges = [
        (to, source) for to, _, source, _, _ in [*links(network.matrix), *links(network.fixed)]
    ]
    changed = True
    while changed:
        more = {source for to, source in edges if to in useful and source not in useful}
        useful |= more
        changed = bool(more)
    return useful


def inert_links(network: Network, registry: NeuronRegistry) -> set[SoftLink]:
    """Soft links that cannot change any named output, so cutting them changes nothing.

    A link is inert when its source is silent (always zero, see `_silent_neurons`) or its
    target reaches no named output. Dense training leaves many (e.g. links into neurons
    whose own outgoing links were all cut); they count as links until removed.
    """
    silent, useful = _silent_neurons(network, registry), _useful_neurons(network)
    return {
        (to, to_input, source, from_output)
        for to, to_input, source, from_output, _ in links(network.matrix)
        if source in silent or to not in useful
    }
