"""The closed loop's pure parts: case lifecycle, escalation, frequency guard, webhook
signing and backoff, report months and summary, the rules file's [cases] table."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from offsite.api.queries.reports import month_range, summarise, to_csv
from offsite.api.webhook import backoff_s, signature
from offsite.rules.cases import CaseState, Deadline, due_for_escalation, move
from offsite.rules.errors import InvalidTransition, RulesFileError
from offsite.rules.rules_file import parse_rules
from offsite.rules.visit_guard import GuardPolicy, Justification, judge

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def test_case_moves_only_along_the_loop() -> None:
    assert move("discovered", "verifying", note="ask") is CaseState.VERIFYING
    assert move("feedback", "rectifying", note="again") is CaseState.RECTIFYING  # rework
    with pytest.raises(InvalidTransition, match="cannot become rectifying"):
        move("discovered", "rectifying", note="skip")
    with pytest.raises(InvalidTransition, match="to verifying needs a note"):
        move("discovered", "verifying")
    with pytest.raises(InvalidTransition, match="needs a note"):
        move("feedback", "closed", note=" ")
    with pytest.raises(InvalidTransition, match="2 open inspection task"):
        move("verifying", "closed", open_tasks=2, note="nothing found")
    assert move("verifying", "closed", note="nothing found") is CaseState.CLOSED
    with pytest.raises(InvalidTransition, match="nothing"):
        move("closed", "verifying")


def test_escalation_needs_a_passed_deadline_and_no_answer() -> None:
    due = T0 + timedelta(hours=2)
    cases = [
        Deadline(1, "verifying", due, None, None),
        Deadline(2, "verifying", due, None, T0, responses_pending=1),  # answered
        Deadline(3, "verifying", due, T0, None),  # escalated
        Deadline(4, "closed", due, None, None),
        Deadline(5, "verifying", None, None, None),
        Deadline(6, "discovered", due + timedelta(hours=1), None, None),
    ]
    assert due_for_escalation(cases, due - timedelta(seconds=1)) == []
    assert due_for_escalation(cases, due) == [1]
    assert due_for_escalation(cases, due + timedelta(hours=1)) == [1, 6]


def test_guard_asks_for_a_reason_past_the_limit_or_on_the_list() -> None:
    p = GuardPolicy(90, 2)
    assert judge(p, 1, False, Justification()).allowed
    refused = judge(p, 2, False, Justification())
    assert not refused.allowed and "visited 2 time(s)" in refused.reason
    listed = judge(p, 0, True, Justification(complaint=" "))
    assert not listed.allowed and "no-disturbance" in listed.reason
    ok = judge(p, 5, True, Justification(case_id=7))
    assert ok.allowed and ok.needs_justification and "case 7" in ok.reason
    assert Justification(task_id=3, complaint="x").describe() == "task 3"


def test_webhook_signature_and_backoff() -> None:
    body = b'{"id":1}'
    assert signature("k", body) == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert [backoff_s(n) for n in (1, 2, 3)] == [2.0, 4.0, 8.0]
    assert backoff_s(40) == 3600.0


def test_month_range() -> None:
    assert month_range("2026-12") == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    for bad in ("2026-13", "2026-1", "26-01", "2026-01-01"):
        with pytest.raises(ValueError, match="YYYY-MM"):
            month_range(bad)


def test_summary_and_csv_follow_the_lists() -> None:
    r = {
        "enterprise_id": "E",
        "month": "2026-11",
        "visit_refusals": 1,
        "exceedances": [
            {
                "mn": "M",
                "pollutant": "a21026",
                "limit_value": 35.0,
                "hours_over_limit": 3,
                "valid_hours": 10,
                "worst_hour_avg": 50.0,
            }
        ],
        "capture": [
            {
                "mn": "M",
                "pollutant": "a21026",
                "valid_values": 50,
                "expected_values": 100,
                "capture_rate": 0.5,
            }
        ],
        "alerts": [{"rule": "exceedance", "state": "resolved", "alerts": 2}],
        "cases": [
            {"id": 1, "state": "closed", "duration_h": 4.0, "escalated": True},
            {"id": 2, "state": "closed", "duration_h": 2.0, "escalated": False},
        ],
        "visits": [
            {"id": 9, "kind": "advisory", "advisory": True, "rating": 5, "inspectors": ["a", "b"]},
            {"id": 10, "kind": "task", "advisory": False, "rating": None, "inspectors": ["a"]},
        ],
    }
    s = summarise(r)
    assert s["hours_over_limit"] == {"a21026": 3} and s["capture_rate_min"] == 0.5
    assert s["case_mean_closed_h"] == 3.0 and s["cases_by_state"] == {"closed": 2}
    assert s["visits_by_kind"] == {"advisory": 1, "task": 1} and s["joint_visits"] == 1
    assert s["rating_mean"] == 5 and s["ratings"] == 1 and s["advisory_visits"] == 1
    text = to_csv(r)
    assert "visit,E,2026-11,9,advisory,5,ADVISORY: not a basis for enforcement; a + b" in text
    assert "case,E,2026-11,1,closed,4.0,escalated" in text


def test_rules_file_cases_table() -> None:
    assert parse_rules('version = "1"').case_open_severity is None
    assert parse_rules('[cases]\nopen_for_severity = "major"').case_open_severity == "major"
    with pytest.raises(RulesFileError, match=r"<rules>:3: cases.open_for_severity"):
        parse_rules('version = "1"\n[cases]\nopen_for_severity = "huge"')
    with pytest.raises(RulesFileError, match=r":2: unknown key 'when'"):
        parse_rules("[cases]\nwhen = 1")
