"""The key registry: every V-value key (character, token, ``":number"``) gets a column index.

Index 0 is always ``":number"``, the scalar component. The registry only grows, so an index
never changes meaning; tensors are laid out with a capacity that doubles as keys arrive
(amortised growth, no recompilation per key).
"""

from __future__ import annotations

from collections.abc import Iterable

from dmm_engine.vvalue import NUMBER


class KeyRegistry:
    """Key string ↔ column index; ``":number"`` is column 0."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._index: dict[str, int] = {NUMBER: 0}
        self._keys: list[str] = [NUMBER]
        for key in keys:
            self.id(key)

    def id(self, key: str) -> int:
        """The column of `key`, registering it if new."""
        found = self._index.get(key)
        if found is None:
            found = self._index[key] = len(self._keys)
            self._keys.append(key)
        return found

    def get(self, key: str) -> int | None:
        """The column of `key`, or None if it was never registered."""
        return self._index.get(key)

    def key(self, index: int) -> str:
        """The key at column `index`."""
        return self._keys[index]

    def __len__(self) -> int:
        return len(self._keys)


def capacity_for(count: int, minimum: int = 16) -> int:
    """The smallest power of two ≥ max(count, minimum): the column capacity for `count` keys."""
    capacity = minimum
    while capacity < count:
        capacity *= 2
    return capacity
