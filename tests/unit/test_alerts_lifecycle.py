"""offsite.rules.alerts: the alert state machine, fold and the AlertBook planner."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from offsite.rules.alerts import (
    ACTIVE_STATES,
    AlertBook,
    AlertState,
    AlertUpsert,
    Plan,
    fold,
    transition,
)
from offsite.rules.errors import InvalidTransition, RuleError
from offsite.rules.findings import Finding

T0 = datetime(2026, 11, 26, tzinfo=UTC)
S = AlertState


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def finding(
    minute: float,
    value: float | None = 50.0,
    severity: str = "major",
    rule: str = "exceedance",
    mn: str = "MN1",
    pollutant: str = "a21026",
    limit: float | None = 35.0,
    message: str | None = None,
) -> Finding:
    return Finding(
        rule,
        mn,
        pollutant,
        at(minute),
        value,
        severity,
        message or f"{rule} {value} at {minute}",
        limit,
    )


# -- transitions ----------------------------------------------------------------------

ALLOWED = [
    (S.OPEN, S.ACKNOWLEDGED),
    (S.OPEN, S.ASSIGNED),
    (S.OPEN, S.RESOLVED),
    (S.OPEN, S.CLEARED),
    (S.ACKNOWLEDGED, S.ASSIGNED),
    (S.ACKNOWLEDGED, S.RESOLVED),
    (S.ACKNOWLEDGED, S.CLEARED),
    (S.ASSIGNED, S.ASSIGNED),  # handed on to someone else
    (S.ASSIGNED, S.RESOLVED),
    (S.ASSIGNED, S.CLEARED),
    (S.RESOLVED, S.OPEN),
    (S.CLEARED, S.OPEN),  # reopened
]


@pytest.mark.parametrize(("cur", "tgt"), ALLOWED)
def test_allowed_transitions(cur, tgt):
    assert transition(cur, tgt) is tgt
    assert transition(cur.value, tgt.value) is tgt  # plain strings from the database


@pytest.mark.parametrize(("cur", "tgt"), [(c, t) for c in S for t in S if (c, t) not in ALLOWED])
def test_every_other_transition_is_forbidden(cur, tgt):
    with pytest.raises(InvalidTransition) as info:
        transition(cur, tgt)
    assert isinstance(info.value, RuleError)
    assert cur.value in str(info.value) and tgt.value in str(info.value)


def test_forbidden_transitions_include_going_back():
    for cur, tgt in [
        (S.OPEN, S.OPEN),
        (S.ACKNOWLEDGED, S.OPEN),
        (S.ASSIGNED, S.ACKNOWLEDGED),
        (S.RESOLVED, S.CLEARED),
        (S.CLEARED, S.ASSIGNED),
    ]:
        with pytest.raises(InvalidTransition):
            transition(cur, tgt)


def test_unknown_state_is_refused():
    with pytest.raises(ValueError):
        transition("open", "closed")


def test_active_states():
    assert frozenset({S.OPEN, S.ACKNOWLEDGED, S.ASSIGNED}) == ACTIVE_STATES


# -- fold -----------------------------------------------------------------------------


def test_fold_single_finding():
    (u,) = fold([finding(1, 40.0)])
    assert u == AlertUpsert(
        "exceedance", "MN1", "a21026", "major", at(1), at(1), 1, 40.0, 35.0, "exceedance 40.0 at 1"
    )
    assert u.key == ("exceedance", "MN1", "a21026")


def test_fold_keeps_the_first_findings_detail_and_suppression():
    first = Finding(
        "exceedance",
        "MN1",
        "a21026",
        at(1),
        40.0,
        "major",
        "m1",
        35.0,
        {"evidence": {"v": [40.0]}},
        "stack repair",
    )
    worse = Finding(
        "exceedance",
        "MN1",
        "a21026",
        at(2),
        90.0,
        "critical",
        "m2",
        35.0,
        {"evidence": {"v": [90.0]}},
        None,
    )
    (u,) = fold([first, worse])
    assert u.detail == {"evidence": {"v": [40.0]}}  # what triggered the alert
    assert u.suppressed == "stack repair"
    assert (u.worst_value, u.severity, u.message) == (90.0, "critical", "m2")
    (u,) = fold([worse, first])
    assert u.detail == {"evidence": {"v": [90.0]}} and u.suppressed is None


def test_fold_counts_spans_and_keeps_worst():
    fs = [finding(5, 40.0), finding(2, 90.0, severity="critical"), finding(9, 60.0)]
    (u,) = fold(fs)
    assert u.count == 3
    assert (u.first_seen, u.last_seen) == (at(2), at(9))
    assert u.worst_value == 90.0
    assert u.severity == "critical"
    assert u.message in {f.message for f in fs}


def test_fold_severity_only_goes_up_by_rank_not_alphabet():
    # alphabetically "warning" > "major" > "critical"; by rank it is the other way round
    (u,) = fold(
        [
            finding(1, severity="critical"),
            finding(2, severity="warning"),
            finding(3, severity="major"),
        ]
    )
    assert u.severity == "critical"
    (u,) = fold([finding(1, severity="info"), finding(2, severity="warning")])
    assert u.severity == "warning"


def test_fold_keeps_keys_apart():
    ups = fold(
        [
            finding(1),
            finding(2, pollutant="a21002"),
            finding(3, rule="spike"),
            finding(4, mn="MN2"),
            finding(5),
        ]
    )
    assert sorted((u.key, u.count) for u in ups) == [
        (("exceedance", "MN1", "a21002"), 1),
        (("exceedance", "MN1", "a21026"), 2),
        (("exceedance", "MN2", "a21026"), 1),
        (("spike", "MN1", "a21026"), 1),
    ]


def test_fold_none_values_and_limits():
    (u,) = fold(
        [
            finding(1, None, limit=None, rule="offline", pollutant=""),
            finding(2, 3.0, limit=None, rule="offline", pollutant=""),
            finding(3, None, limit=None, rule="offline", pollutant=""),
        ]
    )
    assert u.worst_value == 3.0
    assert u.limit is None
    assert u.count == 3


def test_fold_limit_keeps_the_last_known():
    (u,) = fold([finding(1, limit=35.0), finding(2, limit=None)])
    assert u.limit == 35.0


def test_fold_empty():
    assert fold([]) == []


# -- plan -----------------------------------------------------------------------------

KEY = ("exceedance", "MN1", "a21026")
OFF = ("offline", "MN1", "")


def book(**clear_after_min) -> AlertBook:
    return AlertBook(
        {k: timedelta(minutes=v) for k, v in clear_after_min.items()},
        default_clear_after=timedelta(minutes=5),
    )


def test_plan_upserts_new_findings():
    b = book()
    p = b.plan([finding(1), finding(2)], {("MN1", "a21026"): at(2)})
    assert [u.key for u in p.upserts] == [KEY] and p.upserts[0].count == 2
    assert p.clears == []
    assert p


def test_empty_plan_is_falsy():
    assert not Plan()
    assert not book().plan([], {})


def test_clear_when_absent_for_clear_after():
    b = book()
    b.load([(KEY, at(0))])
    assert b.plan([], {("MN1", "a21026"): at(4.99)}).clears == []
    assert b.plan([], {("MN1", "a21026"): at(5)}).clears == [KEY]


def test_no_clear_without_seen_for_that_key():
    b = book()
    b.load([(KEY, at(0))])
    p = b.plan([], {("MN1", "a21002"): at(60), ("MN2", "a21026"): at(60), ("MN1", ""): at(60)})
    assert p.clears == []


def test_no_clear_when_seen_is_older_than_last_seen():
    b = book(offline=0)
    b.load([(OFF, at(10))])
    assert b.plan([], {("MN1", ""): at(9)}).clears == []


def test_no_clear_for_a_key_that_fired_again():
    b = book()
    b.load([(KEY, at(0))])
    p = b.plan([finding(10)], {("MN1", "a21026"): at(10)})
    assert p.clears == [] and [u.key for u in p.upserts] == [KEY]


def test_a_key_that_fired_and_went_quiet_within_one_round_is_cleared():
    # a backfill in one batch: fired at minute 1, then clean data until minute 8
    b = book()
    p = b.plan([finding(1)], {("MN1", "a21026"): at(8)})
    assert [u.key for u in p.upserts] == [KEY] and p.clears == [KEY]
    b.applied(p)
    assert KEY not in b.active
    # but not while the quiet spell is shorter than clear_after
    assert book().plan([finding(1)], {("MN1", "a21026"): at(5.5)}).clears == []


def test_per_rule_clear_after():
    b = book(offline=0, spike=1)
    b.load([(OFF, at(10)), (("spike", "MN1", "a21026"), at(10)), (KEY, at(10))])
    p = b.plan([], {("MN1", ""): at(10), ("MN1", "a21026"): at(11)})
    assert sorted(p.clears) == sorted([OFF, ("spike", "MN1", "a21026")])
    p = b.plan([], {("MN1", ""): at(10), ("MN1", "a21026"): at(15)})
    assert KEY in p.clears


def test_clear_is_decided_per_key():
    b = book()
    other = ("exceedance", "MN2", "a21026")
    b.load([(KEY, at(0)), (other, at(0))])
    p = b.plan([], {("MN1", "a21026"): at(6), ("MN2", "a21026"): at(1)})
    assert p.clears == [KEY]


# -- applied --------------------------------------------------------------------------


def test_applied_tracks_active_keys_and_clears():
    b = book()
    p = b.plan([finding(1), finding(3)], {("MN1", "a21026"): at(3)})
    b.applied(p)
    assert b.active == {KEY: at(3)}
    # a later plan with no finding, seen long after → clear, and the book forgets it
    p = b.plan([], {("MN1", "a21026"): at(30)})
    assert p.clears == [KEY]
    b.applied(p)
    assert b.active == {}


def test_applied_never_moves_last_seen_backwards():
    b = book()
    b.load([(KEY, at(10))])
    b.applied(b.plan([finding(4)], {}))
    assert b.active[KEY] == at(10)
    b.applied(b.plan([finding(12)], {}))
    assert b.active[KEY] == at(12)


def test_forget_and_load():
    b = book()
    b.load([(KEY, at(1)), (OFF, at(2))])
    b.forget(KEY)
    b.forget(KEY)  # idempotent
    assert b.active == {OFF: at(2)}
    b.load([])
    assert b.active == {}


# -- cooldown ---------------------------------------------------------------------------


def test_cooldown_drops_a_new_occurrence_soon_after_a_clear():
    b = AlertBook(
        {}, default_clear_after=timedelta(minutes=5), cooldown={"exceedance": timedelta(minutes=30)}
    )
    b.applied(b.plan([finding(0)], {("MN1", "a21026"): at(0)}))
    p = b.plan([], {("MN1", "a21026"): at(6)})
    assert p.clears == [KEY]
    b.applied(p)
    assert b.cleared == {KEY: at(0)}
    # within 30 min of the cleared alert's last finding: dropped, and nothing to clear
    p = b.plan([finding(20)], {("MN1", "a21026"): at(20)})
    assert p.upserts == [] and p.clears == []
    b.applied(p)
    assert KEY not in b.active
    # 30 min after: a new alert
    p = b.plan([finding(30)], {("MN1", "a21026"): at(30)})
    assert [u.key for u in p.upserts] == [KEY]


def test_cooldown_is_per_rule_and_key_and_never_blocks_an_active_alert():
    b = AlertBook(
        {},
        default_clear_after=timedelta(minutes=5),
        cooldown={"exceedance": timedelta(minutes=30), "spike": timedelta(0)},
    )
    b.applied(b.plan([finding(0), finding(0, rule="spike")], {}))
    b.applied(b.plan([], {("MN1", "a21026"): at(6)}))
    assert b.active == {}
    p = b.plan([finding(10, rule="spike"), finding(10, mn="MN2"), finding(10)], {})
    assert sorted(u.key for u in p.upserts) == [
        ("exceedance", "MN2", "a21026"),
        ("spike", "MN1", "a21026"),
    ]
    # an alert that is still active keeps taking its findings
    b2 = AlertBook({}, cooldown={"exceedance": timedelta(hours=1)})
    b2.cleared[KEY] = at(0)
    b2.load([(KEY, at(1))])
    assert [u.key for u in b2.plan([finding(2)], {}).upserts] == [KEY]


def test_no_cooldown_means_a_new_alert_at_once():
    b = book()
    b.applied(b.plan([finding(0)], {}))
    b.applied(b.plan([], {("MN1", "a21026"): at(6)}))
    assert [u.key for u in b.plan([finding(7)], {}).upserts] == [KEY]


def test_one_big_batch_leaves_the_same_history_as_the_stream() -> None:
    """Fired, gone for longer than clear_after, fired again: streamed minute by minute the
    alert clears in between; judged in one batch, the plan says so too (closed first)."""
    fs = [finding(m) for m in (0, 1, 2, 12, 13)]
    seen = {("MN1", "a21026"): T0 + timedelta(minutes=13)}

    streamed = AlertBook({}, default_clear_after=timedelta(minutes=5))
    history: list[str] = []
    for m in range(14):
        now = {("MN1", "a21026"): T0 + timedelta(minutes=m)}
        plan = streamed.plan([f for f in fs if f.ts == T0 + timedelta(minutes=m)], now)
        history += ["clear" for _ in plan.closed] + [
            "upsert" for _ in plan.upserts if _.key not in streamed.active
        ]
        history += ["clear" for _ in plan.clears]
        streamed.applied(plan)

    batched = AlertBook({}, default_clear_after=timedelta(minutes=5))
    plan = batched.plan(fs, seen)
    assert [(u.first_seen, u.last_seen, u.count) for u, _ in plan.closed] == [
        (T0, T0 + timedelta(minutes=2), 3)
    ]
    assert [(u.first_seen, u.count) for u in plan.upserts] == [(T0 + timedelta(minutes=12), 2)]
    assert plan.clears == []
    assert history == ["upsert", "clear", "upsert"]
    batched.applied(plan)
    assert batched.active == streamed.active
    assert batched.cleared == streamed.cleared


def test_an_active_alert_whose_condition_ended_long_before_the_batch_clears_first() -> None:
    book = AlertBook({}, default_clear_after=timedelta(minutes=5))
    book.load([(("exceedance", "MN1", "a21026"), T0)])
    plan = book.plan([finding(30)], {("MN1", "a21026"): T0 + timedelta(minutes=30)})
    assert plan.closed == [(None, ("exceedance", "MN1", "a21026"))]
    assert [u.first_seen for u in plan.upserts] == [T0 + timedelta(minutes=30)]


def test_active_states_sql_is_the_one_active_index_predicate():
    """ON CONFLICT infers ``alerts_one_active`` only when its predicate matches as written:
    the SQL list built from ACTIVE_STATES must be the newest migration's predicate."""
    from offsite.rules.alerts import ACTIVE_STATES_SQL

    migrations = sorted((Path(__file__).parents[2] / "store" / "migrations").glob("*.sql"))
    text = "\n".join(p.read_text() for p in migrations)
    last = text.rsplit("CREATE UNIQUE INDEX alerts_one_active", 1)[1].split(";", 1)[0]
    assert f"WHERE state IN ({ACTIVE_STATES_SQL})" in last
    assert ACTIVE_STATES_SQL == "'open', 'acknowledged', 'assigned'"


def test_no_module_spells_out_the_active_states_itself():
    """One definition of "active": Python and SQL take ``ACTIVE_STATES``/``_SQL`` from
    offsite.rules.alerts (a copy drifts: ``offsite_alerts_open`` once left out
    'assigned'); the console's JavaScript cannot import it, so its lists must equal it."""
    import re

    root = Path(__file__).parents[2]
    listed = re.compile(r"""['"]open['"],\s*['"]acknowledged['"],\s*['"]assigned['"]\s*[)\]]""")
    copies = [
        f"{p.relative_to(root)}:{text[: m.start()].count(chr(10)) + 1}"
        for folder in ("core", "rules", "store", "runner", "ingest", "api", "offsite")
        for p in sorted((root / folder).rglob("*.py"))
        for text in [p.read_text()]
        for m in listed.finditer(text)
    ]
    assert copies == [], f"the active states spelled out instead of imported: {copies}"
    active = sorted(s.value for s in ACTIVE_STATES)
    for js in sorted((root / "api" / "static" / "console").glob("*.js")):
        for m in re.finditer(r"const ACTIVE = \[([^\]]*)\]", js.read_text()):
            assert sorted(re.findall(r"'(\w+)'", m[1])) == active, js.name
