"""An alert of a rule that judges valid readings only stays open while its channel
reports nothing valid (a calibration, maintenance, a stop): nothing showed the condition
gone. It clears on valid readings, streamed or judged in one batch alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from offsite.core.readings import DataKind, Reading
from offsite.rules.alerts import AlertBook
from offsite.rules.engine import DeviceMeta, RuleEngine
from offsite.rules.rules_file import parse_rules

T0 = datetime(2026, 12, 7, tzinfo=UTC)
SO2 = "a21026"
RULES = """
[[rule]]
name = "exceedance"
pollutants = "@limited"

[[rule]]
name = "flag_abuse"
detector = "flag_abuse"
pollutants = "@limited"
"""


def reading(minute: int, value: float, flag: str = "N") -> Reading:
    return Reading(T0 + timedelta(minutes=minute), "D", SO2, value, flag, DataKind.RTD)


def series(spans: list[tuple[int, float, str]]) -> list[Reading]:
    """Minute readings of one SO2 channel: (minutes, value, flag) spans in turn."""
    out: list[Reading] = []
    for n, value, flag in spans:
        out += [reading(m, value, flag) for m in range(len(out), len(out) + n)]
    return out


def engine_and_book() -> tuple[RuleEngine, AlertBook]:
    e = RuleEngine(parse_rules(RULES), {"D": DeviceMeta(limits={SO2: 100.0})}, T0)
    return e, e.alert_book(timedelta(minutes=5))


def raise_on(
    e: RuleEngine, book: AlertBook, batches: list[list[Reading]]
) -> list[tuple[str, datetime]]:
    """(rule, first seen) of every alert raised on these batches, batch by batch, as the
    evaluation runner counts them (the book carried on)."""
    raised: list[tuple[str, datetime]] = []
    for batch in batches:
        ev = e.evaluate(batch, {"D": batch[-1].ts})
        plan = book.plan(ev.findings, ev.seen, ev.judged)
        active = set(book.active)
        for u, key in plan.closed:
            if u is not None and key not in active:
                raised.append((u.rule, u.first_seen))
            active.discard(key)
        raised += [(u.rule, u.first_seen) for u in plan.upserts if u.key not in active]
        book.applied(plan)
    return raised


def episodes(batches: list[list[Reading]]) -> tuple[list[tuple[str, datetime]], AlertBook]:
    """The alerts raised on a fresh engine and book, and the book after."""
    e, book = engine_and_book()
    return raise_on(e, book, batches), book


def test_an_exceedance_stays_one_alert_through_maintenance_and_clears_on_valid_data():
    readings = series(
        [(30, 50.0, "N"), (20, 150.0, "N"), (40, 150.0, "M"), (10, 150.0, "N"), (30, 50.0, "N")]
    )
    streamed, book = episodes([[r] for r in readings])
    assert [rule for rule, _ in streamed] == ["exceedance"]
    assert streamed[0][1] == T0 + timedelta(minutes=30)
    key = ("exceedance", "D", SO2)
    assert key not in book.active  # cleared 5 minutes into the compliant readings
    assert book.cleared[key] == T0 + timedelta(minutes=99)
    batched, whole = episodes([readings])
    assert batched == streamed
    assert whole.active == book.active and whole.cleared[key] == book.cleared[key]


def test_valid_compliant_readings_still_end_the_episode_before_the_maintenance():
    readings = series(
        [(30, 150.0, "N"), (10, 50.0, "N"), (40, 150.0, "M"), (10, 150.0, "N"), (10, 50.0, "N")]
    )
    streamed, _ = episodes([[r] for r in readings])
    assert streamed == [
        ("exceedance", T0),
        ("exceedance", T0 + timedelta(minutes=80)),
    ]
    assert episodes([readings])[0] == streamed


def test_an_alert_stays_open_while_the_channel_reports_only_flagged_readings():
    readings = series([(10, 150.0, "N"), (120, 0.0, "F")])
    _, book = episodes([[r] for r in readings])
    assert ("exceedance", "D", SO2) in book.active
    # a rule that judges flagged readings goes by every reading: flag_abuse is not
    # valid-only, so the book clears it by ``seen``, as before
    e, _ = engine_and_book()
    assert "exceedance" in e.valid_only() and "exceedance.hour" in e.valid_only()
    assert "flag_abuse" not in e.valid_only()


def feed(e: RuleEngine, book: AlertBook, batches: list[list[Reading]]) -> list[datetime]:
    """When each alert raised on these batches began."""
    return [at for _, at in raise_on(e, book, batches)]


def test_a_backfill_that_arrives_after_the_live_reading_is_one_alert():
    # a logger back from an outage sends its live reading, then the 30 minutes it missed:
    # each late reading's valid predecessor is not the series' newest (which is after it)
    for together in (False, True):
        e, book = engine_and_book()
        feed(e, book, [[reading(m, 50.0)] for m in range(60)] + [[reading(120, 50.0)]])
        backfill = [reading(60 + m, 150.0) for m in range(30)]
        raised = feed(e, book, [backfill] if together else [[r] for r in backfill])
        assert raised == [T0 + timedelta(minutes=60)], together


def test_a_late_valid_reading_counts_the_same_in_any_batch():
    # gone for 10 minutes on a valid reading that arrives late, after a flagged one
    head = [reading(m, 150.0) for m in range(10)] + [reading(30, 150.0, "M")]
    late, after = reading(20, 50.0), reading(40, 150.0)
    alone = feed(*engine_and_book(), [[r] for r in head] + [[late], [after]])
    together = feed(*engine_and_book(), [[r] for r in head] + [[late, after]])
    assert alone == together == [T0, T0 + timedelta(minutes=40)]


def test_a_restart_inside_a_long_stop_keeps_the_alert_whole():
    # the runner restarts 5 hours into an 8-hour stop: its warm-up replays the last 240
    # readings, all flagged, so no valid reading of the series is known
    pre = [reading(m, 150.0) for m in range(10)]
    stop = [reading(m, 0.0, "F") for m in range(10, 490)]
    post = [reading(m, 150.0) for m in range(490, 500)]
    e, book = engine_and_book()
    assert feed(e, book, [[r] for r in pre + stop + post]) == [T0]
    e, book = engine_and_book()
    assert feed(e, book, [[r] for r in pre + stop[:300]]) == [T0]
    active = list(book.active.items())
    e, book = engine_and_book()
    e.warm((pre + stop[:300])[-240:], older={("D", SO2, "rtd")})
    book.load(active)
    assert feed(e, book, [[r] for r in stop[300:] + post]) == []


def test_a_rule_held_on_by_its_clear_score_raises_nothing_on_flagged_readings():
    rules = '[[rule]]\nname = "exceedance"\npollutants = "@limited"\nclear_score = 0.95\n'
    e = RuleEngine(parse_rules(rules), {"D": DeviceMeta(limits={SO2: 100.0})}, T0)
    e.evaluate([reading(0, 150.0)])
    ev = e.evaluate([reading(m, 98.0, "M") for m in range(1, 4)] + [reading(4, 98.0)])
    assert [f.ts for f in ev.findings] == [T0 + timedelta(minutes=4)]  # held on, valid
