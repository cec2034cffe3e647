"""The alert lifecycle, as a pure state machine and a planner.

States::

    open ──acknowledge──▶ acknowledged ──assign──▶ assigned (re-assignable)
      │                      │                        │
      ├──────resolve─────────┴────────────────────────┼──▶ resolved  (a person, with a note)
      └──────clear (condition absent long enough)─────┴──▶ cleared   (the engine)
    resolved / cleared ──reopen──▶ open   (a person, or the condition returning)

One *active* (open, acknowledged or assigned) alert per (rule, device, pollutant):
repeats update it (last seen, count, worst value, severity only upward). When the
condition returns soon after the alert was resolved or cleared, the same alert reopens
(store.alerts decides "soon", in device time); later, a new alert opens. A rule's
cooldown drops new occurrences for a while after a clear. Time here is device time,
except for the offline rule, whose findings carry the wall clock the engine was given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from offsite.rules.errors import InvalidTransition
from offsite.rules.findings import SEVERITY_RANK, Finding, seen_key

AlertKey = tuple[str, str, str]  # (rule, mn, pollutant)


class AlertState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    ASSIGNED = "assigned"
    RESOLVED = "resolved"
    CLEARED = "cleared"


# The one definition of "active": the states in which an alert still asks for attention
# (and of which there is at most one per key). SQL takes it as ACTIVE_STATES_SQL, the
# literal list the partial unique index ``alerts_one_active`` was created with (a literal,
# not a parameter: ON CONFLICT must match the index's predicate as written).
ACTIVE_STATES = frozenset({AlertState.OPEN, AlertState.ACKNOWLEDGED, AlertState.ASSIGNED})
ACTIVE_STATES_SQL = ", ".join(f"'{s.value}'" for s in AlertState if s in ACTIVE_STATES)
_ALLOWED: dict[AlertState, frozenset[AlertState]] = {
    AlertState.OPEN: frozenset(
        {AlertState.ACKNOWLEDGED, AlertState.ASSIGNED, AlertState.RESOLVED, AlertState.CLEARED}
    ),
    AlertState.ACKNOWLEDGED: frozenset(
        {AlertState.ASSIGNED, AlertState.RESOLVED, AlertState.CLEARED}
    ),
    AlertState.ASSIGNED: frozenset({AlertState.ASSIGNED, AlertState.RESOLVED, AlertState.CLEARED}),
    AlertState.RESOLVED: frozenset({AlertState.OPEN}),
    AlertState.CLEARED: frozenset({AlertState.OPEN}),
}


def transition(current: AlertState | str, target: AlertState | str) -> AlertState:
    """Check a person's or the engine's action; raise InvalidTransition if not allowed."""
    cur, tgt = AlertState(current), AlertState(target)
    if tgt not in _ALLOWED[cur]:
        raise InvalidTransition(f"an alert that is {cur.value} cannot become {tgt.value}")
    return tgt


@dataclass(frozen=True, slots=True)
class AlertUpsert:
    """All findings of one key in one evaluation, folded together."""

    rule: str
    mn: str
    pollutant: str
    severity: str
    first_seen: datetime
    last_seen: datetime
    count: int
    worst_value: float | None
    limit: float | None
    message: str
    detail: Mapping[str, Any] = field(default_factory=dict)  # the trigger's evidence and rule
    suppressed: str | None = None

    @property
    def key(self) -> AlertKey:
        return (self.rule, self.mn, self.pollutant)


@dataclass(slots=True)
class Plan:
    """What to write. ``closed`` comes first, in order: episodes that began *and* ended
    within this evaluation (an upsert, or None for an alert already active, then its
    clear), so one big batch leaves the same history as the live stream did."""

    upserts: list[AlertUpsert] = field(default_factory=list)
    clears: list[AlertKey] = field(default_factory=list)
    closed: list[tuple[AlertUpsert | None, AlertKey]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.upserts or self.clears or self.closed)


def fold(findings: Iterable[Finding]) -> list[AlertUpsert]:
    """Fold findings per key: count, first/last seen, worst value, highest severity."""
    acc: dict[AlertKey, AlertUpsert] = {}
    for f in findings:
        prev = acc.get(f.key)
        if prev is None:
            acc[f.key] = AlertUpsert(
                f.rule,
                f.mn,
                f.pollutant,
                f.severity,
                f.ts,
                f.ts,
                1,
                f.value,
                f.limit,
                f.message,
                f.detail,
                f.suppressed,
            )
            continue
        worse = f.value is not None and (prev.worst_value is None or f.value > prev.worst_value)
        acc[f.key] = AlertUpsert(
            f.rule,
            f.mn,
            f.pollutant,
            max(prev.severity, f.severity, key=SEVERITY_RANK.__getitem__),
            min(prev.first_seen, f.ts),
            max(prev.last_seen, f.ts),
            prev.count + 1,
            f.value if worse else prev.worst_value,
            f.limit if f.limit is not None else prev.limit,
            f.message if worse or f.ts >= prev.last_seen else prev.message,
            prev.detail,
            prev.suppressed,
        )
    return list(acc.values())


def _gone(last: datetime, f: Finding, wait: timedelta) -> bool:
    """Whether a condition last seen at ``last`` was gone for ``wait`` before ``f``: by
    the valid readings between them where the rule judges only those (a calibration or
    a stop in between shows nothing), by the time between them otherwise."""
    if f.judged_before is not None:
        return f.judged_before - last >= wait
    return f.ts - last >= wait


class AlertBook:
    """The engine's memory of which keys have an active alert and when last seen.

    The database is the truth (a person may resolve an alert at any time); the book
    only decides what to ask of it, and is rebuilt from it at start.
    """

    def __init__(
        self,
        clear_after: Mapping[str, timedelta],
        default_clear_after: timedelta = timedelta(minutes=5),
        cooldown: Mapping[str, timedelta] | None = None,
        intervals: Mapping[str, float] | None = None,
        clear_intervals: float = 3.0,
        clear_readings: Mapping[str, int] | None = None,
        valid_only: Iterable[str] = (),
    ) -> None:
        self.clear_after = dict(clear_after)
        self.default_clear_after = default_clear_after
        self.cooldown = {k: v for k, v in (cooldown or {}).items() if v > timedelta(0)}
        # device → reporting interval, s: clear_after and cooldowns are at least
        # ``clear_intervals`` of the device's intervals, so a condition seen on every
        # reading of a slow series stays one episode
        # (a live mapping: the engine's view follows the interval devices are seen at)
        self.intervals: Mapping[str, float] = intervals if intervals is not None else {}
        self.clear_intervals = clear_intervals
        # rule → its own floor in intervals, where a rule sets one (``clear_readings``)
        self.clear_readings = dict(clear_readings or {})
        # rules that judge valid readings only (``RuleEngine.valid_only``): gone when
        # valid readings say so, not while a channel reports calibrations or a stop
        self.valid_only = frozenset(valid_only)
        self.active: dict[AlertKey, datetime] = {}
        self.cleared: dict[AlertKey, datetime] = {}  # key → last seen when it cleared

    def load(self, active: Iterable[tuple[AlertKey, datetime]]) -> None:
        self.active = dict(active)

    def plan(
        self,
        findings: Iterable[Finding],
        seen: Mapping[tuple[str, str], datetime],
        judged: Mapping[tuple[str, str], datetime] | None = None,
    ) -> Plan:
        """Decide upserts and clears.

        ``seen`` maps (mn, pollutant) — and (mn, '') for the device — to the newest
        time evaluated in this round; ``judged`` the same over valid readings, what the
        ``valid_only`` rules go by (``seen`` when not given). A key whose last finding
        (this round's or an earlier one's) is ``clear_after`` older than that is cleared
        — also when it fired earlier in the same round, so a backfill delivered in one
        batch ends with the same alert states as the live stream did.
        """
        closed: list[tuple[AlertUpsert | None, AlertKey]] = []
        by_key: dict[AlertKey, list[Finding]] = {}
        for f in findings:
            by_key.setdefault(f.key, []).append(f)
        upserts: list[AlertUpsert] = []
        for key, fs in by_key.items():
            # a gap of clear_after between findings is a clear in the live stream (a rule
            # that clears at once, like offline when the device reports, is cleared by
            # what ``seen`` says, not by gaps)
            wait = self._wait(key)
            split = wait > timedelta(0)
            fs.sort(key=lambda f: f.ts)
            episodes: list[list[Finding]] = [[fs[0]]]
            for f in fs[1:]:
                if split and _gone(episodes[-1][-1].ts, f, wait):
                    episodes.append([f])
                else:
                    episodes[-1].append(f)
            last_active = self.active.get(key)
            if split and last_active is not None and _gone(last_active, fs[0], wait):
                closed.append((None, key))
            for ep in episodes[:-1]:
                u = fold(ep)[0]
                if not self._cooling(u):
                    closed.append((u, key))
            u = fold(episodes[-1])[0]
            if not self._cooling(u):
                upserts.append(u)
        last_fired = {u.key: u.last_seen for u in upserts}
        ended = {key for u, key in closed if u is None}  # active, but ended before this
        candidates = {k: v for k, v in self.active.items() if k not in ended}
        for key, t in last_fired.items():
            candidates[key] = max(t, candidates[key]) if key in candidates else t
        clears = []
        for key, last in candidates.items():
            rule, mn, pollutant = key
            by = judged if judged is not None and rule in self.valid_only else seen
            now = by.get(seen_key(rule, mn, pollutant))
            if now is not None and now - last >= self._wait(key):
                clears.append(key)
        return Plan(upserts, clears, closed)

    def _floor(self, mn: str, rule: str = "") -> timedelta:
        n = max(self.clear_intervals, self.clear_readings.get(rule, 0))
        return timedelta(seconds=n * self.intervals.get(mn, 0.0))

    def _wait(self, key: AlertKey) -> timedelta:
        """How long a condition must be gone: the rule's clear_after, at least a few of
        the device's reporting intervals (a rule that clears at once stays so)."""
        wait = self.clear_after.get(key[0], self.default_clear_after)
        return max(wait, self._floor(key[1], key[0])) if wait > timedelta(0) else wait

    def _cooling(self, u: AlertUpsert) -> bool:
        """A new occurrence within the rule's cooldown after a clear is dropped."""
        wait = self.cooldown.get(u.rule)
        if wait is not None:
            wait = max(wait, self._floor(u.mn))
        if wait is None or u.key in self.active:
            return False
        cleared = self.cleared.get(u.key)
        return cleared is not None and u.first_seen - cleared < wait

    def applied(self, plan: Plan) -> None:
        for u, key in plan.closed:  # in time order per key: the last one wins
            prev = self.active.pop(key, None)
            end = u.last_seen if u is not None else prev
            if end is not None:
                self.cleared[key] = end
        for u in plan.upserts:
            prev = self.active.get(u.key)
            self.active[u.key] = u.last_seen if prev is None else max(prev, u.last_seen)
        for key in plan.clears:
            last = self.active.pop(key, None)
            if last is not None:
                self.cleared[key] = last

    def forget(self, key: AlertKey) -> None:
        self.active.pop(key, None)
