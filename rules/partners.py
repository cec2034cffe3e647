"""Partner channels: which of a device's channels each series is judged beside, and
their values and windows in a round.

A rule reads a partner in a *role* (the device's O2, its flow, a concentration) or as
the *load* of its ``context`` partners (the geometric mean of up to ``CONTEXT_MAX`` of
them, see ``detectors.base.against_load``). Partners are the same device's channels of
the same kind, linked when a series is first seen or its device's entry changes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from offsite.rules.config import FLOW_CODES, O2_CODE
from offsite.rules.detectors import Batch, Partner
from offsite.rules.detectors.base import FLAG_N
from offsite.rules.growth import grow_rows
from offsite.rules.windows import Windows

SeriesKey = tuple[str, str, str]  # (mn, pollutant, kind)
CONTEXT_MAX = 3  # context partners a series is judged against, at most
ROLES = ("o2", "conc", "flow")


def selects(sel: tuple[str, ...], code: str, limited: bool) -> bool:
    """Whether a channel (its code; whether it has a limit) is one of a ``context``
    selector's partners."""
    for p in sel:
        if p == code or (p == "@flow" and code in FLOW_CODES):
            return True
        if p == "@concentration" and limited and code not in FLOW_CODES:
            return True
        if p == "@limited" and limited:
            return True
    return False


class Partners:
    """Each series' partner rows (-1: none) by role and by ``context`` selector, over
    the engine's ``windows``; grown with them."""

    def __init__(self, windows: Windows) -> None:
        self.windows = windows
        cap = windows.capacity
        self.role: dict[str, np.ndarray] = {r: np.full(cap, -1, dtype=np.int64) for r in ROLES}
        # context partners (a detector's ``context`` selectors) → up to CONTEXT_MAX
        # partner rows per series, -1 where none
        self.ctx: dict[tuple[str, ...], np.ndarray] = {}

    def grow(self, cap: int) -> None:
        for role in list(self.role):
            self.role[role] = grow_rows(self.role.pop(role), cap, -1)
        for sel in list(self.ctx):
            self.ctx[sel] = grow_rows(self.ctx.pop(sel), cap, -1)

    def add_context(self, sel: tuple[str, ...]) -> bool:
        """Make room for a selector's partners; True if it is new (link again)."""
        if not sel or sel in self.ctx:
            return False
        self.ctx[sel] = np.full((self.windows.capacity, CONTEXT_MAX), -1, np.int64)
        return True

    def link(
        self,
        devices: Iterable[Sequence[int]],
        key_of: Callable[[int], SeriesKey],
        limit: np.ndarray,
    ) -> None:
        """Point each series of these devices (each its rows) at its partner channels of
        the same kind; ``limit`` per row, NaN where the channel has none."""
        for rows in devices:
            by_code: dict[tuple[str, str], int] = {}
            for row in rows:
                _, pollutant, kind = key_of(row)
                by_code[(pollutant, kind)] = row
            # per kind, the device's channels by code: the partners every row of the
            # kind picks from (worked out once a device, not once a row)
            kinds: dict[str, list[tuple[str, int]]] = defaultdict(list)
            for (c, k), r in sorted(by_code.items()):
                kinds[k].append((c, r))
            picks: dict[tuple[str, tuple[str, ...]], list[int]] = {}
            for row in rows:
                _, pollutant, kind = key_of(row)
                chans = kinds[kind]
                self.role["o2"][row] = by_code.get((O2_CODE, kind), -1)
                # the volumetric flow (a00000, w00000) before the velocity (a01011), by
                # code: not whichever the device happened to send first
                flows = [r for c, r in chans if c in FLOW_CODES]
                self.role["flow"][row] = flows[0] if flows else -1
                concs = [r for c, r in chans if c not in FLOW_CODES and np.isfinite(limit[r])]
                self.role["conc"][row] = concs[0] if concs else -1
                for sel, table in self.ctx.items():
                    pick = picks.get((kind, sel))
                    if pick is None:
                        pick = picks[(kind, sel)] = [
                            r for c, r in chans if selects(sel, c, bool(np.isfinite(limit[r])))
                        ]
                    mine = [r for r in pick if r != row][:CONTEXT_MAX]
                    table[row] = -1
                    table[row, : len(mine)] = mine

    def roles(
        self, rows: np.ndarray, roles: tuple[str, ...], where: np.ndarray, full: Batch
    ) -> dict[str, Partner]:
        """Each row's partner channel in these roles (its value now, its valid window).
        A device's channels share their partner (its O2, its flow): each partner is
        worked out once and gathered for the rows it is the partner of."""
        out = {}
        for role in roles:
            prow, inv = np.unique(self.role[role][rows], return_inverse=True)
            have = prow >= 0
            safe = np.where(have, prow, 0)
            pos = where[safe]
            x = np.where(have, self._now(safe, pos, full), np.nan)
            vals, flags = self._window_of(safe, pos, full)
            win = np.where(have[:, None] & (flags == FLAG_N), vals, np.nan)
            inv = inv.reshape(-1)
            out[role] = Partner(x[inv], np.take(win, inv, axis=0))
        return out

    def _now(self, prow: np.ndarray, pos: np.ndarray, full: Batch) -> np.ndarray:
        """The value now of series ``prow``: its reading in the round (``pos`` ≥ 0, its
        index there; NaN if flagged), else its latest."""
        inr = pos >= 0
        ip = np.maximum(pos, 0)
        now = np.where(inr, full.x[ip], self.windows.latest(prow))
        return np.where(inr & (full.flag[ip] != FLAG_N), np.nan, now)

    def _window_of(
        self, prow: np.ndarray, pos: np.ndarray, full: Batch
    ) -> tuple[np.ndarray, np.ndarray]:
        """The windows of series ``prow``: taken from the round's own batch where the
        series is in it (``pos`` ≥ 0, its index there), from the ring buffers if not."""
        inr = pos >= 0
        if inr.all():
            return np.take(full.window, pos, axis=0), np.take(full.wflag, pos, axis=0)
        vals = np.empty((prow.shape[0], full.window.shape[1]))
        flags = np.empty((prow.shape[0], full.window.shape[1]), dtype=np.uint8)
        vals[inr], flags[inr] = full.window[pos[inr]], full.wflag[pos[inr]]
        out = ~inr
        v, f, _ = self.windows.window(prow[out])
        vals[out], flags[out] = v, f
        return vals, flags

    def load(
        self, rows: np.ndarray, sel: tuple[str, ...], where: np.ndarray, full: Batch
    ) -> Partner:
        """The load of each row's context partners: ``x`` the geometric mean of their
        values now; ``window`` the load over the window *relative to now* (the mean of
        each partner's value then over its value now): no logarithm on the windows.
        NaN where a partner is missing, invalid or not positive, and everywhere for a
        series without partners.

        A partner's share (its log now, its window over now) is the same whoever it is
        the partner of, so it is worked out once per partner (``_load_sources``) and
        gathered for each of the up to ``CONTEXT_MAX`` partners of a row: a round
        otherwise divided every partner's window again for each of its channels."""
        p, inv = self.load_shared(rows, sel, where, full)
        if inv is None:
            return p
        return Partner(p.x[inv], np.take(p.window, inv, axis=0))

    def load_shared(
        self, rows: np.ndarray, sel: tuple[str, ...], where: np.ndarray, full: Batch
    ) -> tuple[Partner, np.ndarray | None]:
        """``load`` once per distinct set of partners, and each row's index into it
        (None: one per row, in order). Gathering a rule's rows straight from it copies
        the windows once, not twice (into every row, then into the rule's rows)."""
        table = self.ctx[sel][rows]
        cols = int((table >= 0).sum(axis=1).max(initial=0))
        table = table[:, :cols]  # columns fill from the left: none after the first empty
        # channels with the same partners (most of a device's) share one load
        base = self.windows.capacity + 1
        if cols > 0 and base**cols < 2**62:
            code = np.zeros(rows.shape[0], dtype=np.int64)
            for k in range(cols):
                code = code * base + (table[:, k] + 1)
            _, first, inv = np.unique(code, return_index=True, return_inverse=True)
            if first.shape[0] < rows.shape[0]:
                return Partner(*self._load_of(table[first], where, full)), inv.reshape(-1)
        return Partner(*self._load_of(table, where, full)), None

    def _load_of(
        self, table: np.ndarray, where: np.ndarray, full: Batch
    ) -> tuple[np.ndarray, np.ndarray]:
        """``load`` for rows whose partners are ``table`` (series rows, -1 for none)."""
        n, w = table.shape[0], full.window.shape[1]
        logx = np.zeros(n)
        rel = np.zeros((n, w))
        cnt = (table >= 0).sum(axis=1)
        if table.shape[1]:
            at, src_log, src_rel = self._load_sources(table, where, full)
            part = np.empty_like(rel)  # one buffer for every column's gather
            for k in range(table.shape[1]):
                # the zero row stands for "no partner here": adds exactly 0.0
                logx += src_log[at[:, k]]
                rel += np.take(src_rel, at[:, k], axis=0, out=part)  # whole rows, no [ ]
        with np.errstate(invalid="ignore", divide="ignore"):
            x = np.where(cnt > 0, np.exp(logx / np.maximum(cnt, 1)), np.nan)
            rel /= np.maximum(cnt, 1)[:, None]  # in place: a round's largest arrays
        rel[cnt == 0] = np.nan
        return x, rel

    def _load_sources(
        self, table: np.ndarray, where: np.ndarray, full: Batch
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each distinct partner in ``table`` (series rows, -1 for none) as a source of
        load: ``log`` of its value now and its window over its value now (NaN where the
        value is invalid or not positive); a last row of zeros; and ``at``, ``table``'s
        entries as indices into them (the zero row for -1). A partner in the round is
        read from the round's batch (its reading now, its window before it); one that
        is not, from the ring buffers (its latest value, its window)."""
        have = table >= 0
        # the distinct partners, by marking them on the engine's rows (no sort)
        mark = np.zeros(self.windows.capacity, dtype=bool)
        mark[table[have]] = True
        prows = np.flatnonzero(mark)
        index = np.empty(self.windows.capacity, dtype=np.int64)
        index[prows] = np.arange(prows.shape[0])
        inv = np.where(have, index[np.where(have, table, 0)], prows.shape[0])
        pos = where[prows]
        now = self._now(prows, pos, full)
        now = np.where(now > 0, now, np.nan)
        vals, flags = self._window_of(prows, pos, full)
        m = prows.shape[0]
        src_log = np.zeros(m + 1)
        src_rel = np.zeros((m + 1, vals.shape[1]))
        with np.errstate(invalid="ignore", divide="ignore"):
            vals = np.where((flags == FLAG_N) & (vals > 0), vals, np.nan)
            src_log[:m] = np.log(now)
            src_rel[:m] = vals / now[:, None]
        return inv, src_log, src_rel
