"""Episodes from an alert's lifecycle events (pure): reopen = new episode, the worst
severity of each episode, events from before device times were recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from offsite.store.alert_export import AlertRow, Episode, EventRow, episodes_of

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


ALERT = AlertRow(7, "exceedance", "MN1", "a21026", at(0), at(95), "critical", None, "P1", "E1")


def test_a_reopen_starts_a_new_episode_with_its_own_times_and_severity() -> None:
    events = [
        EventRow("opened", at(0), "major", None),
        EventRow("updated", at(3), "critical", None),
        EventRow("acknowledged", at(4), "critical", None),
        EventRow("cleared", at(10), "critical", None),
        EventRow("reopened", at(60), "major", "maintenance"),
        EventRow("commented", None, "major", None),
        EventRow("resolved", at(95), "major", None),
        EventRow("reopened", at(200), "warning", None),
    ]
    eps = episodes_of(ALERT, events)
    assert [(e.episode, e.start, e.end, e.end_reason, e.severity) for e in eps] == [
        (1, at(0), at(10), "cleared", "critical"),
        (2, at(60), at(95), "resolved", "major"),
        (3, at(200), None, "open", "warning"),
    ]
    assert eps[1].suppressed == "maintenance" and eps[0].point_id == "P1"
    assert eps[2].overlaps(at(300), None)  # still open: touches any later window
    assert not eps[0].overlaps(at(11), None) and not eps[1].overlaps(None, at(60))


def test_events_without_device_times_fall_back_to_the_alert_row() -> None:
    old = [
        EventRow("opened", None, "major", None),
        EventRow("cleared", None, "major", None),
        EventRow("reopened", None, "major", None),
        EventRow("cleared", None, "major", None),
    ]
    eps = episodes_of(ALERT, old)
    assert [(e.start, e.end) for e in eps] == [(at(0), None), (None, at(95))]
    (only,) = episodes_of(ALERT, [])  # no events at all: one episode, first to last seen
    assert isinstance(only, Episode) and (only.start, only.end) == (at(0), at(95))
    assert only.as_dict()["start"] == at(0).isoformat()
