"""Rewritten history: a logger resending a past value with a different value or flag.

The store keeps every such rewrite (``store.conflicts``) in the transaction that refused
it; the rule runner turns them into findings here. A tampering rule: never muted by
maintenance flags or silences (a rewrite *into* maintenance is itself the fraud), and
never cleared by the engine — the alert stays open until a person resolves it, since
no later data makes a rewritten past untrue. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from offsite.rules.findings import Finding

RULE = "rewritten_history"
SEVERITY = "major"  # the "high" of the tampering rules (critical is kept for 2× limits)
NEVER = timedelta.max  # the alert book's clear_after: the engine never clears it
EVIDENCE_MAX = 30  # rewrites of one series quoted in an alert's detail


@dataclass(frozen=True, slots=True)
class Rewrite:
    """One refused version of a stored reading, beside the stored one."""

    id: int
    mn: str
    pollutant: str
    kind: str  # as stored: rtd, min, hour, day, or e.g. "hour.max"
    ts: datetime
    stored_value: float
    stored_flag: str
    stored_received_at: datetime
    new_value: float
    new_flag: str
    new_received_at: datetime

    def evidence(self) -> dict[str, Any]:
        return {
            "conflict_id": self.id,
            "kind": self.kind,
            "ts": self.ts.isoformat(),
            "stored": {
                "value": self.stored_value,
                "flag": self.stored_flag,
                "received_at": self.stored_received_at.isoformat(),
            },
            "resent": {
                "value": self.new_value,
                "flag": self.new_flag,
                "received_at": self.new_received_at.isoformat(),
            },
        }


def findings(rewrites: Sequence[Rewrite]) -> list[Finding]:
    """One finding per rewrite, alerting per (device, pollutant). Every finding of a
    series carries the same detail — all its rewrites here (up to ``EVIDENCE_MAX``) —
    since the alert keeps the detail of the first finding of its episode."""
    by_series: dict[tuple[str, str], list[Rewrite]] = {}
    for r in rewrites:
        by_series.setdefault((r.mn, r.pollutant), []).append(r)
    out: list[Finding] = []
    for series in by_series.values():
        detail = {
            "rule": {"name": RULE, "tampering": True},
            "rewrites": [r.evidence() for r in series[:EVIDENCE_MAX]],
            "rewrites_total": len(series),
        }
        for r in series:
            out.append(
                Finding(
                    RULE,
                    r.mn,
                    r.pollutant,
                    r.ts,
                    r.new_value,
                    SEVERITY,
                    f"{r.kind} value of {r.ts.isoformat(timespec='seconds')} resent "
                    f"rewritten: stored {r.stored_value:g} ({r.stored_flag}, received "
                    f"{r.stored_received_at.isoformat(timespec='seconds')}), resent "
                    f"{r.new_value:g} ({r.new_flag}, received "
                    f"{r.new_received_at.isoformat(timespec='seconds')})",
                    None,
                    detail,
                    None,  # never muted
                )
            )
    return out
