"""offsite.rules.rewritten: rewrites become findings that are never muted, and an alert
the engine never clears."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from offsite.rules.alerts import AlertBook
from offsite.rules.rewritten import NEVER, RULE, SEVERITY, Rewrite, findings

T = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def _rw(i: int, pollutant: str = "a21026", flag: str = "N") -> Rewrite:
    return Rewrite(
        i, "MN1", pollutant, "min", T + timedelta(minutes=i), 48.0, "N",
        T + timedelta(minutes=i, seconds=5), 30.0, flag, T + timedelta(hours=2),
    )  # fmt: skip


def test_each_rewrite_is_a_finding_with_both_versions_never_muted() -> None:
    fs = findings([_rw(1, flag="M"), _rw(2), _rw(3, pollutant="a21002")])
    assert [(f.rule, f.pollutant, f.severity, f.suppressed) for f in fs] == [
        (RULE, "a21026", SEVERITY, None),
        (RULE, "a21026", SEVERITY, None),
        (RULE, "a21002", SEVERITY, None),
    ]
    ev = fs[0].detail["rewrites"]
    assert [e["conflict_id"] for e in ev] == [1, 2]  # the series' rewrites, in each finding
    assert ev[0]["stored"] == {
        "value": 48.0,
        "flag": "N",
        "received_at": "2026-11-01T08:01:05+00:00",
    }
    assert ev[0]["resent"]["value"] == 30.0 and ev[0]["resent"]["flag"] == "M"
    assert "stored 48" in fs[0].message and "resent 30" in fs[0].message


def test_the_engine_never_clears_a_rewritten_history_alert() -> None:
    book = AlertBook({RULE: NEVER})
    plan = book.plan(findings([_rw(1)]), {})
    assert [u.key for u in plan.upserts] == [(RULE, "MN1", "a21026")] and not plan.clears
    book.applied(plan)
    later = {("MN1", "a21026"): T + timedelta(days=400), ("MN1", ""): T + timedelta(days=400)}
    assert not book.plan([], later).clears
    # a later rewrite of the same series updates the same alert, no close in between
    plan = book.plan(findings([_rw(5000)]), later)
    assert not plan.closed and [u.count for u in plan.upserts] == [1]
