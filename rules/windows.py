"""Per-series ring buffers: a row per series, its last ``width`` readings in time order.

One 2-D array per field for all series keeps every detector a single vectorised numpy
call. Values are kept whatever their flag (flag abuse and false stops are judged on
flags); statistics mask the invalid ones out (``Batch.valid_window``).
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np

from offsite.rules.growth import grow_attr, next_capacity


def _rotations(width: int) -> np.ndarray:
    """Row p: the slots of a ring whose oldest is at p, oldest → newest."""
    return (np.arange(width)[:, None] + np.arange(width)[None, :]) % width


class Windows:
    def __init__(self, width: int, capacity: int = 64) -> None:
        if width < 2:
            raise ValueError("window width must be ≥ 2")
        self.width = width
        self._index: dict[Hashable, int] = {}
        self.keys: list[Hashable] = []
        self._vals = np.full((capacity, width), np.nan)
        self._flags = np.zeros((capacity, width), dtype=np.uint8)
        self._times = np.full((capacity, width), np.nan)
        self._pos = np.zeros(capacity, dtype=np.int64)  # next slot to write = oldest
        self._last_t = np.full(capacity, -np.inf)  # newest device time (epoch s)
        self._rot = _rotations(width)

    def __len__(self) -> int:
        return len(self._index)

    @property
    def capacity(self) -> int:
        return int(self._pos.shape[0])

    def row(self, key: Hashable) -> int | None:
        return self._index.get(key)

    def rows(self, keys: list[Hashable]) -> tuple[np.ndarray, list[int]]:
        """Row numbers for keys, creating rows for new series; also the new rows."""
        known = list(map(self._index.get, keys))  # the usual batch: all of them known
        if None not in known:
            return np.array(known, dtype=np.int64), []
        out = np.empty(len(keys), dtype=np.int64)
        new: list[int] = []
        missing = sum(1 for k in keys if k not in self._index)
        if len(self._index) + missing > self.capacity:  # once for all of them
            self._grow(next_capacity(len(self._index) + missing))
        for i, k in enumerate(keys):
            row = self._index.get(k)
            if row is None:
                row = len(self._index)
                self._index[k] = row
                self.keys.append(k)
                new.append(row)
            out[i] = row
        return out, new

    def _grow(self, cap: int) -> None:
        for name, fill in (
            ("_vals", np.nan),
            ("_flags", 0),
            ("_times", np.nan),
            ("_pos", 0),
            ("_last_t", -np.inf),
        ):
            grow_attr(self, name, cap, fill)

    def widen(self, width: int) -> None:
        """Keep more readings per series from now on (new rules reading further back);
        what is held stays, oldest → newest, with empty slots in front of it."""
        if width <= self.width:
            return
        rows = np.arange(self.capacity)
        vals, flags, times = self.window(rows)
        pad = width - self.width

        def wide(a: np.ndarray, fill: float | int) -> np.ndarray:
            return np.concatenate([np.full((a.shape[0], pad), fill, dtype=a.dtype), a], axis=1)

        self._vals, self._flags, self._times = (
            wide(vals, np.nan),
            wide(flags, 0),
            wide(times, np.nan),
        )
        self._pos[:] = 0
        self.width = width
        self._rot = _rotations(width)

    def window(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Values, flags and times of ``rows``, oldest → newest; empty slots at the front.

        One flat index (row start + the row's rotation, looked up, not a modulo per
        element) serves the three gathers: 2-D fancy indexing rebuilt it for each."""
        flat = self._flat(rows)
        return (
            self._vals.reshape(-1).take(flat),
            self._flags.reshape(-1).take(flat),
            self._times.reshape(-1).take(flat),
        )

    def times(self, rows: np.ndarray) -> np.ndarray:
        """The device times of ``window`` alone (the engine's look at reporting steps)."""
        return self._times.reshape(-1).take(self._flat(rows))

    def _flat(self, rows: np.ndarray) -> np.ndarray:
        """The flat index of ``rows``' windows: the rotations copied as whole rows and
        the row starts added in place (one (n, W) array, not three)."""
        flat = np.take(self._rot, self._pos[rows], axis=0)
        flat += (rows * self.width)[:, None]
        return flat

    def latest(self, rows: np.ndarray) -> np.ndarray:
        """Each row's newest value (NaN for a row never written)."""
        return self._vals[rows, (self._pos[rows] - 1) % self.width]

    def last_t(self, rows: np.ndarray) -> np.ndarray:
        return self._last_t[rows]

    def push(
        self, rows: np.ndarray, values: np.ndarray, flags: np.ndarray, times: np.ndarray
    ) -> None:
        """Append one reading per row (rows must be distinct)."""
        pos = self._pos[rows]
        self._vals[rows, pos] = values
        self._flags[rows, pos] = flags
        self._times[rows, pos] = times
        self._pos[rows] = (pos + 1) % self.width
        self._last_t[rows] = np.maximum(self._last_t[rows], times)
