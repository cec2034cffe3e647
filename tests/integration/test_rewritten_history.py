"""Rewritten history on a real PostgreSQL: a reading resent for a stored (device,
pollutant, kind, time) with another value is kept with both values and both receive
times and raises one ``rewritten_history`` alert (never muted, even under maintenance
flags); an identical redelivery leaves nothing; a batch with nothing already stored
never touches the conflicts table (the single-statement fast path)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from offsite.core.readings import Reading
from offsite.core.registry import registry_from_dict
from offsite.runner.rule_runner import RuleRunner, RunnerConfig
from offsite.store.readings import insert_readings
from offsite.store.rule_inbox import queue_for_rules
from tests.integration.helpers import register

pytestmark = pytest.mark.integration

MN = "0300REWRITE0000000000001"
REGISTRY = registry_from_dict(
    {
        "enterprises": [
            {
                "id": "E5",
                "name": "Rewrite Works",
                "points": [
                    {
                        "id": "E5-P1",
                        "kind": "flue_gas",
                        "limits": {"a21026": 35.0},
                        "devices": [{"mn": MN, "interval_s": 60}],
                    }
                ],
            }
        ]
    }
)


def _store(db_url: str, readings: list[Reading], received: datetime) -> dict[str, int]:
    """As a worker stores a batch; returns this transaction's own table statistics of
    reading_conflicts (scans and inserts), read before the commit."""
    with psycopg.connect(db_url) as conn:
        new = insert_readings(conn, readings, [received] * len(readings))
        queue_for_rules(conn, new, [received] * len(new), {MN: received})
        row = conn.execute(
            """SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0), n_tup_ins
               FROM pg_stat_xact_user_tables WHERE relname = 'reading_conflicts'"""
        ).fetchone()
    assert row is not None
    return {"scans": int(row[0]), "inserted": int(row[1])}


def _conflicts(db_url: str) -> list[tuple]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            """SELECT ts, kind, stored_value, stored_flag, stored_received_at, new_value,
                      new_flag, new_received_at FROM reading_conflicts ORDER BY id"""
        ).fetchall()


def _judge(db_url: str) -> list[tuple]:
    runner = RuleRunner(db_url, RunnerConfig(stale_s=0.0, reorder_s=0.0))
    with runner.connect() as conn:  # the runner judges on its lock's own connection
        runner.conn = conn
        runner._start()
        while runner._judge() or runner._judge_rewrites():
            pass
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            """SELECT rule, pollutant, severity, state, count, suppressed, detail::text
               FROM alerts WHERE rule = 'rewritten_history'"""
        ).fetchall()


def test_identical_redelivery_leaves_no_record_and_no_alert(db_url: str) -> None:
    register(db_url, REGISTRY)
    t = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    first = [Reading(t, MN, "a21026", 20.0), Reading(t, MN, "a21002", 40.0)]
    _store(db_url, first, t + timedelta(seconds=5))
    stats = _store(db_url, list(first), t + timedelta(minutes=3))  # redelivered as is
    assert stats["inserted"] == 0
    assert _conflicts(db_url) == []
    assert _judge(db_url) == []


def test_a_batch_with_nothing_stored_never_touches_the_conflicts_table(db_url: str) -> None:
    register(db_url, REGISTRY)
    t = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    stats = _store(
        db_url, [Reading(t + timedelta(minutes=i), MN, "a21026", 1.0 + i) for i in range(50)], t
    )
    assert stats == {"scans": 0, "inserted": 0}


def test_a_different_value_is_kept_with_both_versions_and_alerts_once(db_url: str) -> None:
    register(db_url, REGISTRY)
    t = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    got1, got2 = t + timedelta(seconds=5), t + timedelta(minutes=4)
    _store(db_url, [Reading(t, MN, "a21026", 48.0), Reading(t, MN, "a21002", 40.0)], got1)
    # the logger "corrects" the past minute: SO2 lower, and flagged maintenance (which
    # would mute an ordinary rule); NOx resent identical
    stats = _store(
        db_url, [Reading(t, MN, "a21026", 30.0, "M"), Reading(t, MN, "a21002", 40.0)], got2
    )
    assert stats["inserted"] == 1
    assert _conflicts(db_url) == [(t, "rtd", 48.0, "N", got1, 30.0, "M", got2)]
    # the same rewrite redelivered is kept once
    _store(db_url, [Reading(t, MN, "a21026", 30.0, "M")], got2 + timedelta(seconds=30))
    assert len(_conflicts(db_url)) == 1
    # stored value unchanged: the first received is the record
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT value, flag FROM readings WHERE mn = %s AND pollutant = 'a21026'", (MN,)
        ).fetchone()
    assert row == (48.0, "N")

    alerts = _judge(db_url)
    assert len(alerts) == 1
    rule, pollutant, severity, state, count, suppressed, detail = alerts[0]
    assert (rule, pollutant, severity, state, count, suppressed) == (
        "rewritten_history",
        "a21026",
        "major",
        "open",
        1,
        None,
    )
    (ev,) = json.loads(detail)["rewrites"]
    assert ev["stored"] == {"value": 48.0, "flag": "N", "received_at": got1.isoformat()}
    assert ev["resent"] == {"value": 30.0, "flag": "M", "received_at": got2.isoformat()}
    # judged once: a second runner finds nothing new to alert on
    assert _judge(db_url)[0][4] == 1
    with psycopg.connect(db_url) as conn:
        assert conn.execute(
            "SELECT count(*) FROM reading_conflicts WHERE alerted_at IS NULL"
        ).fetchone() == (0,)


def test_two_versions_within_one_batch_are_a_rewrite_too(db_url: str) -> None:
    register(db_url, REGISTRY)
    t = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    _store(db_url, [Reading(t, MN, "a21026", 12.0), Reading(t, MN, "a21026", 13.0)], t)
    assert [(c[2], c[5]) for c in _conflicts(db_url)] == [(12.0, 13.0)]


def test_a_rewrite_over_mqtt_reaches_the_alert_feed_through_running_ingest(
    db_url: str, mqtt_url: str, unique_topic: str
) -> None:
    """The whole path: published twice with another value, through a running ingest
    worker and its rule runner process, to an open alert with both values."""
    from tests.integration.helpers import (
        make_settings,
        publish_raw,
        running_ingest,
        scalar,
        topic_for,
        wait_for,
    )

    register(db_url, REGISTRY)
    t = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=3)
    topic = topic_for(unique_topic, MN)

    def payload(so2: float) -> bytes:
        return json.dumps({"ts": t.isoformat(), "values": {"a21026": so2}}).encode()

    with running_ingest(make_settings(db_url, mqtt_url, unique_topic)):
        publish_raw(mqtt_url, [(topic, payload(48.0))])
        wait_for(lambda: scalar(db_url, "SELECT count(*) FROM readings"), what="stored")
        publish_raw(mqtt_url, [(topic, payload(48.0)), (topic, payload(30.0))])
        detail = wait_for(
            lambda: scalar(
                db_url,
                "SELECT detail::text FROM alerts "
                "WHERE rule = 'rewritten_history' AND state = 'open'",
            ),
            what="a rewritten_history alert",
        )
    (ev,) = json.loads(detail)["rewrites"]
    assert (ev["stored"]["value"], ev["resent"]["value"]) == (48.0, 30.0)
    assert scalar(db_url, "SELECT count(*) FROM reading_conflicts") == 1
    assert scalar(db_url, "SELECT value FROM readings") == 48.0
