"""Per-series ring buffers: a row per series, the last ``width`` values in arrival order.

One 2-D array for all series keeps every detector a single vectorised numpy call.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np


class Windows:
    def __init__(self, width: int, capacity: int = 64) -> None:
        if width < 2:
            raise ValueError("window width must be ≥ 2")
        self.width = width
        self._index: dict[Hashable, int] = {}
        self._vals = np.full((capacity, width), np.nan)
        self._pos = np.zeros(capacity, dtype=np.int64)  # next slot to write = oldest
        self._count = np.zeros(capacity, dtype=np.int64)
        self._last_t = np.full(capacity, -np.inf)  # newest device time (epoch s)

    def __len__(self) -> int:
        return len(self._index)

    def rows(self, keys: list[Hashable]) -> np.ndarray:
        """Row numbers for keys, creating rows for new series."""
        out = np.empty(len(keys), dtype=np.int64)
        for i, k in enumerate(keys):
            row = self._index.get(k)
            if row is None:
                row = len(self._index)
                if row >= len(self._pos):
                    self._grow()
                self._index[k] = row
            out[i] = row
        return out

    def _grow(self) -> None:
        cap = len(self._pos) * 2
        vals = np.full((cap, self.width), np.nan)
        vals[: len(self._vals)] = self._vals
        self._vals = vals
        self._pos = np.concatenate([self._pos, np.zeros(cap - len(self._pos), dtype=np.int64)])
        self._count = np.concatenate([self._count, np.zeros(cap - len(self._count),
                                                             dtype=np.int64)])
        self._last_t = np.concatenate([self._last_t, np.full(cap - len(self._last_t), -np.inf)])

    def window(self, rows: np.ndarray) -> np.ndarray:
        """Values of ``rows`` ordered oldest → newest; unfilled slots are NaN at the front."""
        idx = (self._pos[rows, None] + np.arange(self.width)) % self.width
        return self._vals[rows[:, None], idx]

    def last_t(self, rows: np.ndarray) -> np.ndarray:
        return self._last_t[rows]

    def push(self, rows: np.ndarray, values: np.ndarray, times: np.ndarray) -> None:
        """Append one value per row (rows must be distinct)."""
        self._vals[rows, self._pos[rows]] = values
        self._pos[rows] = (self._pos[rows] + 1) % self.width
        self._count[rows] += 1
        self._last_t[rows] = np.maximum(self._last_t[rows], times)
