"""Pictures: any network as a graph (neurons, links, weights), and synthesis curves.

Drawn with matplotlib's object API (a `Figure` with no pyplot and no global backend), so
drawing never touches process-wide state. The format follows the file suffix: ``.svg`` or
``.png``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch

from dmm_engine.errors import DmmError
from dmm_engine.network import Link, Network, links

FORMATS = (".svg", ".png")
LABELLED_LINKS = 80
"""Above this many links the weights are not written on the picture (it would be unreadable)."""


def _check_path(path: Path) -> None:
    if path.suffix.lower() not in FORMATS:
        raise DmmError(f"{path}: picture format {path.suffix or '(none)'!r} is not one of svg, png")


def _back_edges(nodes: list[str], edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Edges that close a cycle in a depth-first walk (drawn right to left)."""
    children: dict[str, list[str]] = {n: [] for n in nodes}
    for source, target in sorted(edges):
        children[source].append(target)
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    back: set[tuple[str, str]] = set()
    for root in nodes:
        if root in state:
            continue
        stack = [(root, iter(children[root]))]
        state[root] = 1
        while stack:
            node, rest = stack[-1]
            child = next(rest, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                back.add((node, child))
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(children[child])))
    return back


def drawn_links(network: Network) -> tuple[list[Link], list[Link]]:
    """The soft links, and the hard links that touch the soft part (via hard links into it).

    Hard links of neurons that no soft link reaches (e.g. the memory loops of unused
    accumulators in a pruned ff3) are left out of the picture.
    """
    soft, hard = list(links(network.matrix)), list(links(network.fixed))
    shown = {n for to, _, source, _, _ in soft for n in (to, source)}
    growing = True
    while growing:
        more = {source for to, _, source, _, _ in hard if to in shown and source not in shown}
        shown |= more
        growing = bool(more)
    return soft, [link for link in hard if link[0] in shown and link[2] in shown]


def levels(network: Network) -> dict[str, int]:
    """Column of every drawn neuron: the longest path to it from a source, cycles broken."""
    soft, hard = drawn_links(network)
    nodes = sorted({n for to, _, source, _, _ in [*soft, *hard] for n in (to, source)})
    edges = {(source, to) for to, _, source, _, _ in [*soft, *hard] if source != to}
    forward = edges - _back_edges(nodes, edges)
    level = dict.fromkeys(nodes, 0)
    for _ in nodes:  # Bellman-Ford style relaxation; the graph is acyclic now
        changed = False
        for source, target in forward:
            if level[target] < level[source] + 1:
                level[target] = level[source] + 1
                changed = True
        if not changed:
            break
    return level


def _positions(level: dict[str, int]) -> dict[str, tuple[float, float]]:
    columns: dict[int, list[str]] = {}
    for name in sorted(level):
        columns.setdefault(level[name], []).append(name)
    return {
        name: (float(x), (len(names) - 1) / 2.0 - i)
        for x, names in columns.items()
        for i, name in enumerate(names)
    }


Point = tuple[float, float]


def _geometry(start: Point, end: Point, bend: float) -> tuple[Point, Point, Point]:
    """Start, end and the label point of a link drawn as an ``arc3`` curve of `bend`."""
    if start == end:  # a self loop: a small loop above the node
        x, y = start
        return (x - 0.12, y + 0.2), (x + 0.12, y + 0.2), (x, y + 0.5)
    (x0, y0), (x1, y1) = start, end
    cx, cy = (x0 + x1) / 2 + bend * (y1 - y0), (y0 + y1) / 2 - bend * (x1 - x0)
    t = 0.6  # label 60 % of the way along, so labels of links into one neuron do not coincide
    label = (
        (1 - t) ** 2 * x0 + 2 * t * (1 - t) * cx + t**2 * x1,
        (1 - t) ** 2 * y0 + 2 * t * (1 - t) * cy + t**2 * y1,
    )
    return start, end, label


def _draw_link(axes: Axes, start: Point, end: Point, bend: float, link: Link, hard: bool) -> None:
    loop = start == end
    a, b, _ = _geometry(start, end, bend)
    weight = link[4]
    color = "0.55" if hard else ("tab:blue" if weight >= 0 else "tab:red")
    arrow = FancyArrowPatch(
        a,
        b,
        arrowstyle="-|>",
        mutation_scale=10,
        connectionstyle=f"arc3,rad={-2.0 if loop else bend}",
        color=color,
        linewidth=0.6 if hard else 0.6 + 1.6 * min(abs(weight), 2.0),
        linestyle="--" if hard else "-",
        shrinkA=2 if loop else 18,
        shrinkB=2 if loop else 18,
        alpha=0.8,
    )
    axes.add_patch(arrow)


def show(network: Network, path: str | Path, *, title: str | None = None) -> None:
    """Draw `network` to `path` (``.svg`` or ``.png``): neurons, links and their weights.

    Neurons are placed in columns by their longest path from a source; soft links are solid
    (blue positive, red negative, width ∝ |w|) and labelled ``input: weight`` when there are
    at most `LABELLED_LINKS`; hard links are dashed grey.

    Raises:
        DmmError: the suffix is not ``.svg`` or ``.png``, or the network has no links.

    Example::

        show(zoo.load("duplicate-detector", registry), "handcrafted.svg")
    """
    path = Path(path)
    _check_path(path)
    level = levels(network)
    if not level:
        raise DmmError(f"network {network.name!r} has no links to draw")
    xy = _positions(level)
    tallest = max(sum(1 for v in level.values() if v == x) for x in set(level.values()))
    figure = Figure(figsize=(min(2.4 * max(level.values()) + 3, 40), min(tallest + 2.0, 40)))
    axes = figure.add_subplot()
    soft, hard = drawn_links(network)
    pairs: dict[tuple[str, str], int] = {}
    for link, is_hard in [*((h, True) for h in hard), *((s, False) for s in soft)]:
        k = pairs[link[2], link[0]] = pairs.get((link[2], link[0]), -1) + 1
        bend = 0.08 + 0.14 * k  # parallel links between one pair fan out
        _draw_link(axes, xy[link[2]], xy[link[0]], bend, link, is_hard)
        if not is_hard and len(soft) <= LABELLED_LINKS:
            _, _, (x, y) = _geometry(xy[link[2]], xy[link[0]], bend)
            text = f"{link[1]}: {link[4]:.2f}"
            axes.text(x, y, text, fontsize=6, ha="center", va="center", color="0.15")
    for name, (x, y) in xy.items():
        label = f"{name}\n{network.neurons.get(name, '?')}"
        axes.text(x, y, label, ha="center", va="center", fontsize=8, bbox=_BOX)
    ys = [y for _, y in xy.values()]
    axes.set_xlim(-0.7, max(level.values()) + 0.7)
    axes.set_ylim(min(ys) - 0.8, max(ys) + 0.9)
    axes.axis("off")
    axes.set_title(title or f"{network.name}: {len(soft)} soft links, {len(hard)} hard shown")
    figure.savefig(path, bbox_inches="tight")


_BOX = {"boxstyle": "round", "facecolor": "lightyellow", "edgecolor": "0.3"}


def plot_curves(
    steps: Sequence[int], prereg: Sequence[float], link_counts: Sequence[int], path: str | Path
) -> None:
    """Prereg loss (log scale) and soft-link count against the Adam step, to `path`.

    Where the steps jump (the steps of undone rounds are not plotted) the loss line breaks.
    """
    path = Path(path)
    _check_path(path)
    xs: list[float] = []
    ys: list[float] = []
    for i, (step, value) in enumerate(zip(steps, prereg, strict=True)):
        if i and step != steps[i - 1] + 1:
            xs.append(float("nan"))
            ys.append(float("nan"))
        xs.append(float(step))
        ys.append(max(value, 1e-16))
    figure = Figure(figsize=(9, 6))
    top, bottom = figure.subplots(2, 1, sharex=True)
    top.semilogy(xs, ys, linewidth=0.8)
    top.set_ylabel("prereg loss (Σ squared errors)")
    top.grid(True, which="both", alpha=0.3)
    bottom.plot(steps, link_counts, color="tab:green")
    bottom.set_yscale("log")
    bottom.set_ylabel("soft links")
    bottom.set_xlabel("Adam step")
    bottom.grid(True, which="both", alpha=0.3)
    figure.savefig(path, bbox_inches="tight")
