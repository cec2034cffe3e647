"""Ingest against real services: bad input kept with reasons, redelivery harmless,
the offline rule on its timer."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from offsite.core.registry import registry_from_dict
from offsite.demo import demo_rules
from tests.integration.helpers import (
    bearer,
    make_settings,
    publish_raw,
    register,
    running_ingest,
    scalar,
    token_for,
    topic_for,
    wait_for,
)

pytestmark = pytest.mark.integration

MN = "010000A8900016F000169DC0"
OTHER = "010000A8900016F000169DC1"
REGISTRY = registry_from_dict(
    {
        "enterprises": [
            {
                "id": "E1",
                "name": "Test Power",
                "points": [
                    {
                        "id": "E1-P1",
                        "kind": "flue_gas",
                        "o2_ref": 6.0,
                        "limits": {"a21026": 35.0},
                        "devices": [{"mn": MN, "interval_s": 1}, {"mn": OTHER, "interval_s": 1}],
                    }
                ],
            }
        ]
    }
)


def _payload(ts: datetime, **values: object) -> bytes:
    return json.dumps({"ts": ts.isoformat(), "values": values}).encode()


def test_bad_input_is_dead_lettered_with_reasons_and_worker_keeps_going(
    db_url: str, mqtt_url: str, unique_topic: str
) -> None:
    register(db_url, REGISTRY)
    now = datetime.now(UTC).replace(microsecond=0)
    topic = topic_for(unique_topic, MN)
    bad: list[tuple[str, bytes, str]] = [
        (topic, b"{not json", "malformed_json"),
        (topic, b"\xff\xfe\x00", "not_utf8"),
        (
            topic_for(unique_topic, "FFFF0000FFFF0000FFFF0000"),
            _payload(now, a21026=1.0),
            "unknown_device",
        ),
        (topic, b'{"ts": "2026-01-01T00:00:00", "values": {"a21026": 1}}', "bad_timestamp"),
        (topic, _payload(now, a21026="12"), "bad_value"),
        (topic, b'{"ts": "%s", "values": {"a21026": NaN}}' % now.isoformat().encode(), "bad_value"),
        (
            topic,
            b'{"ts": "%s", "values": {"a21026": Infinity}}' % now.isoformat().encode(),
            "bad_value",
        ),
        (topic, _payload(now + timedelta(days=2), a21026=1.0), "future_timestamp"),
        (topic, _payload(now - timedelta(days=400), a21026=1.0), "stale_timestamp"),
        (
            topic,
            json.dumps({"mn": OTHER, "ts": now.isoformat(), "values": {"a21026": 1.0}}).encode(),
            "device_mismatch",
        ),
        (topic, b"[" + b" " * 70_000 + b"]", "oversized"),
        (topic, _payload(now, a21026={"value": 3.0, "flag": "Q"}), "bad_flag"),
        (topic, json.dumps({"values": {"a21026": 1}}).encode(), "schema"),
    ]
    good = (topic, _payload(now, a21026=12.5, a19001={"value": 8.1, "flag": "M"}))
    partial = (topic, _payload(now + timedelta(seconds=1), a21026=13.0, a21002=float("nan")))
    settings = make_settings(db_url, mqtt_url, unique_topic, max_payload_bytes=65_536)
    with running_ingest(settings) as ingest:
        publish_raw(mqtt_url, [(t, p) for t, p, _ in bad] + [good, partial])
        wait_for(lambda: ingest.stats.messages == len(bad) + 2, what="all messages taken")
        wait_for(
            lambda: scalar(db_url, "SELECT count(*) FROM dead_letters") == len(bad) + 1,
            what="dead letters committed",
        )
        assert ingest.alive

    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT topic, reason, detail, payload FROM dead_letters ORDER BY id"
        ).fetchall()
        stored = conn.execute(
            "SELECT pollutant, value, flag FROM readings ORDER BY ts, pollutant"
        ).fetchall()
    assert [r[1] for r in rows] == [reason for _, _, reason in bad] + ["bad_value"]
    # raw bytes kept byte for byte, with the topic, and a reason a person can read
    for (topic_sent, payload_sent, _), (t, _, detail, payload) in zip(bad, rows, strict=False):
        assert t == topic_sent and bytes(payload) == payload_sent and detail
    assert "1 of 2 values refused" in rows[-1][2] and "a21002" in rows[-1][2]
    # the good message and the good half of the partial one are stored, flags kept
    assert stored == [("a19001", 8.1, "M"), ("a21026", 12.5, "N"), ("a21026", 13.0, "N")]


def test_redelivered_message_is_stored_once_and_judged_once(
    db_url: str, mqtt_url: str, unique_topic: str
) -> None:
    register(db_url, REGISTRY)
    now = datetime.now(UTC).replace(microsecond=0)
    msg = (topic_for(unique_topic, MN), _payload(now, a21026=99.0))  # above the 35 limit
    settings = make_settings(db_url, mqtt_url, unique_topic)
    with running_ingest(settings) as ingest:
        publish_raw(mqtt_url, [msg, msg, msg])
        wait_for(
            lambda: (
                ingest.stats.messages == 3
                and ingest.stats.batches > 0
                and ingest.stats.readings_stored + ingest.stats.duplicates == 3
            ),
            what="three deliveries processed",
        )
    assert scalar(db_url, "SELECT count(*) FROM readings") == 1
    assert ingest.stats.duplicates == 2
    assert scalar(db_url, "SELECT count FROM alerts WHERE rule = 'exceedance'") == 1


def test_offline_alert_opens_on_timer_and_clears_when_device_reports(
    db_url: str, mqtt_url: str, unique_topic: str, tmp_path: Path
) -> None:
    register(db_url, REGISTRY)
    rules = tmp_path / "rules.toml"
    rules.write_text('base = "default"\n[offline]\nintervals = 2\n')
    settings = make_settings(db_url, mqtt_url, unique_topic, rules_file=rules, offline_check_s=0.2)
    with running_ingest(settings):
        # OTHER reports; MN stays silent: after 2 intervals of 1 s it is offline
        publish_raw(
            mqtt_url, [(topic_for(unique_topic, OTHER), _payload(datetime.now(UTC), a21026=10.0))]
        )
        wait_for(
            lambda: scalar(
                db_url,
                "SELECT count(*) FROM alerts WHERE rule = 'offline' AND mn = %s AND state = 'open'",
                MN,
            ),
            timeout=15,
            what="offline alert for the silent device",
        )
        publish_raw(
            mqtt_url, [(topic_for(unique_topic, MN), _payload(datetime.now(UTC), a21026=10.0))]
        )
        wait_for(
            lambda: (
                scalar(
                    db_url,
                    "SELECT state FROM alerts WHERE rule = 'offline' "
                    "AND mn = %s ORDER BY id LIMIT 1",
                    MN,
                )
                == "cleared"
            ),
            timeout=15,
            what="offline alert cleared once the device reported",
        )


def test_device_registered_while_ingest_runs_is_accepted_at_once(
    db_url: str, mqtt_url: str, unique_topic: str
) -> None:
    settings = make_settings(db_url, mqtt_url, unique_topic)
    with running_ingest(settings) as ingest:
        register(db_url, REGISTRY)  # after start: ingest's copy of the registry is empty
        publish_raw(
            mqtt_url, [(topic_for(unique_topic, MN), _payload(datetime.now(UTC), a21026=10.0))]
        )
        wait_for(lambda: ingest.stats.batches >= 1, what="the message committed")
    assert scalar(db_url, "SELECT count(*) FROM readings") == 1
    assert scalar(db_url, "SELECT count(*) FROM dead_letters") == 0


def test_a_batch_the_database_refuses_is_kept_as_dead_letters_and_ingest_goes_on(
    db_url: str, mqtt_url: str, unique_topic: str
) -> None:
    register(db_url, REGISTRY)
    with psycopg.connect(db_url) as conn:  # a value the store refuses (think: a bug, a limit)
        conn.execute("""CREATE FUNCTION refuse_666() RETURNS trigger LANGUAGE plpgsql AS $$
                        BEGIN IF NEW.value = 666 THEN RAISE EXCEPTION 'value 666 refused';
                        END IF; RETURN NEW; END $$""")
        conn.execute(
            "CREATE TRIGGER refuse_666 BEFORE INSERT ON readings FOR EACH ROW "
            "EXECUTE FUNCTION refuse_666()"
        )
    now = datetime.now(UTC).replace(microsecond=0)
    topic = topic_for(unique_topic, MN)
    settings = make_settings(db_url, mqtt_url, unique_topic)
    with running_ingest(settings) as ingest:
        publish_raw(mqtt_url, [(topic, _payload(now, a21026=666.0))])
        wait_for(
            lambda: scalar(db_url, "SELECT count(*) FROM dead_letters") == 1,
            what="the refused batch kept",
        )
        publish_raw(mqtt_url, [(topic, _payload(now + timedelta(seconds=1), a21026=10.0))])
        wait_for(
            lambda: scalar(db_url, "SELECT count(*) FROM readings") == 1,
            what="the next message stored",
        )
        assert ingest.alive
    reason, detail = (
        psycopg.connect(db_url).execute("SELECT reason, detail FROM dead_letters").fetchone()
    )
    assert reason == "store_rejected" and "value 666 refused" in detail


def test_duplicated_and_reordered_deliveries_are_stored_once_and_read_in_time_order(
    db_url: str, mqtt_url: str, unique_topic: str
) -> None:
    import random

    from fastapi.testclient import TestClient

    from offsite.api.app import create_app

    register(db_url, REGISTRY)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    topic = topic_for(unique_topic, MN)
    msgs = [(topic, _payload(t0 + timedelta(seconds=i), a21026=float(i))) for i in range(200)]
    shuffled = msgs + random.Random(3).sample(msgs, 80)  # 80 duplicates
    random.Random(4).shuffle(shuffled)
    settings = make_settings(db_url, mqtt_url, unique_topic)
    with running_ingest(settings) as ingest:
        publish_raw(mqtt_url, shuffled)
        wait_for(
            lambda: (
                ingest.stats.messages == len(shuffled)
                and ingest.stats.readings_stored + ingest.stats.duplicates == len(shuffled)
            ),
            what="all deliveries processed",
        )
    assert ingest.stats.readings_stored == 200 and ingest.stats.duplicates == 80
    with TestClient(
        create_app(settings, db_url), headers=bearer(token_for(db_url, "admin"))
    ) as client:
        page = client.get(
            f"/api/devices/{MN}/readings",
            params={
                "start": (t0 - timedelta(seconds=1)).isoformat(),
                "end": (t0 + timedelta(minutes=5)).isoformat(),
            },
        ).json()
    assert [r["value"] for r in page["readings"]] == [float(i) for i in range(200)]


def test_fuzzed_payloads_are_each_stored_or_dead_lettered_and_the_counts_add_up(
    db_url: str, mqtt_url: str, unique_topic: str
) -> None:
    """Random and mutated payloads on the telemetry topic: every message is either stored
    in full or dead-lettered with a reason; the worker never stops; counts add up."""
    import random

    from hypothesis import HealthCheck, given
    from hypothesis import settings as hsettings
    from hypothesis import strategies as st

    register(db_url, REGISTRY)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    valid = st.integers(0, 3000).map(
        lambda i: _payload(base + timedelta(seconds=i), a21026=float(i))
    )
    mutated = st.tuples(valid, st.integers(0, 60), st.binary(min_size=1, max_size=3)).map(
        lambda t: t[0][: t[1]] + t[2] + t[0][t[1] + 1 :]
    )
    payloads = st.lists(
        st.one_of(valid, mutated, st.binary(max_size=200)), min_size=150, max_size=150
    )
    topic = topic_for(unique_topic, MN)
    batch: list[bytes] = []

    @hsettings(
        max_examples=1,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(payloads)
    def draw(ps: list[bytes]) -> None:
        batch.extend(ps)

    draw()
    batch += [_payload(base + timedelta(seconds=5000 + i), a21026=1.0) for i in range(10)]
    random.Random(1).shuffle(batch)
    settings = make_settings(db_url, mqtt_url, unique_topic)
    with running_ingest(settings) as ingest:
        publish_raw(mqtt_url, [(topic, p) for p in batch])
        wait_for(
            lambda: ingest.stats.messages == len(batch) and not ingest.pipeline.batcher.pending(),
            what="every fuzzed message processed",
        )
        time.sleep(0.3)
        assert ingest.alive
    dead = scalar(db_url, "SELECT count(*) FROM dead_letters")
    with psycopg.connect(db_url) as conn:
        dead_payloads = {bytes(p) for (p,) in conn.execute("SELECT payload FROM dead_letters")}
    clean = [p for p in batch if p not in dead_payloads]
    # every message: dead-lettered with a reason, or all of its values stored
    assert dead + len(clean) == len(batch) == ingest.stats.messages
    assert scalar(db_url, "SELECT count(*) FROM dead_letters WHERE reason = '' OR detail = ''") == 0
    stored = {round(v, 6) for (v,) in psycopg.connect(db_url).execute("SELECT value FROM readings")}
    for p in clean:
        value = json.loads(p)["values"]["a21026"]
        assert round(float(value), 6) in stored


def test_a_running_worker_hands_the_gil_over_within_half_a_millisecond(
    db_url: str, mqtt_url: str, unique_topic: str
) -> None:
    """The writer thread waits on PostgreSQL and then needs the GIL back from threads
    busy decoding; Python's default (5 ms before it may take it) lengthened every batch's
    commit. A running worker asks for 0.5 ms."""
    import sys

    register(db_url, REGISTRY)
    before = sys.getswitchinterval()
    try:
        with running_ingest(make_settings(db_url, mqtt_url, unique_topic)):
            assert sys.getswitchinterval() <= 0.0005
    finally:
        sys.setswitchinterval(before)


def test_ingest_serves_prometheus_metrics(db_url: str, mqtt_url: str, unique_topic: str) -> None:
    import httpx

    from offsite.embedded import free_port

    register(db_url, REGISTRY)
    port = free_port()
    settings = make_settings(db_url, mqtt_url, unique_topic, metrics_port=port)
    with running_ingest(settings) as ingest:
        publish_raw(
            mqtt_url,
            [
                (topic_for(unique_topic, MN), _payload(datetime.now(UTC), a21026=10.0, a19001=8.0)),
                (topic_for(unique_topic, MN), b"{not json"),
            ],
        )
        wait_for(
            lambda: ingest.stats.dead_letters == 1 and ingest.stats.readings_stored == 2,
            what="both messages committed",
        )
        wait_for(lambda: ingest.rules_figures().judged == 2, what="both readings judged")
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert "offsite_ingest_readings_stored_total 2.0" in text
    assert 'offsite_ingest_dead_letters_total{reason="malformed_json"} 1.0' in text
    assert "offsite_ingest_broker_connected 1.0" in text
    assert "offsite_ingest_uncommitted_messages 0.0" in text
    assert "offsite_rules_leading 1.0" in text and "offsite_rules_judged_total 2.0" in text
    assert "offsite_rules_late_total 0.0" in text
    # the two messages may share a batch or not; either way 2 readings were committed
    batches = ingest.stats.batches
    assert f'offsite_ingest_batch_readings_bucket{{le="+Inf"}} {batches:.1f}' in text
    assert "offsite_ingest_batch_readings_sum 2.0" in text
    assert f"offsite_ingest_commit_seconds_count {batches:.1f}" in text
    assert f"offsite_ingest_writer_wait_seconds_total {ingest.stats.writer_wait_s!r}" in text


def test_rule_windows_survive_an_ingest_restart(
    db_url: str, mqtt_url: str, unique_topic: str, tmp_path: Path
) -> None:
    """A sensor stuck across a restart: after a varied history, 4 identical values before,
    2 after — the flatline (6 in a row by default) is seen because rule state is rebuilt
    from the store at start. (Without warm-ups: a short history.)"""
    register(db_url, REGISTRY)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    topic = topic_for(unique_topic, MN)
    varied = [
        (topic, _payload(t0 + timedelta(seconds=i), a21026=15.0 + 0.7 * (i % 5) + 0.1 * i))
        for i in range(12)
    ]
    stuck = [(topic, _payload(t0 + timedelta(seconds=12 + i), a21026=17.4)) for i in range(6)]
    settings = make_settings(db_url, mqtt_url, unique_topic, rules_file=demo_rules(tmp_path))
    with running_ingest(settings) as first:
        publish_raw(mqtt_url, varied + stuck[:4])
        wait_for(lambda: first.stats.readings_stored == 16, what="history and first four stored")
    assert scalar(db_url, "SELECT count(*) FROM alerts WHERE rule = 'flatline'") == 0
    with running_ingest(settings) as second:
        publish_raw(mqtt_url, stuck[4:])
        wait_for(lambda: second.stats.readings_stored == 2, what="last two stored")
    assert (
        scalar(db_url, "SELECT count(*) FROM alerts WHERE rule = 'flatline' AND state = 'open'")
        == 1
    )


def test_repeats_update_an_alert_silently_and_an_escalation_is_an_event(
    db_url: str, mqtt_url: str, unique_topic: str
) -> None:
    register(db_url, REGISTRY)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    topic = topic_for(unique_topic, MN)
    settings = make_settings(db_url, mqtt_url, unique_topic)
    with running_ingest(settings) as ingest:
        for i, value in enumerate((40.0, 45.0, 50.0, 80.0)):  # limit 35; critical at 70
            publish_raw(mqtt_url, [(topic, _payload(t0 + timedelta(seconds=i), a21026=value))])
            wait_for(lambda n=i + 1: ingest.stats.readings_stored == n, what=f"reading {i}")
            # judged one by one, as a device sending every few seconds would be
            wait_for(
                lambda: scalar(db_url, "SELECT count(*) FROM rule_inbox") == 0,
                what=f"reading {i} judged",
            )
    with psycopg.connect(db_url) as conn:
        alert = conn.execute(
            "SELECT id, count, severity, worst_value FROM alerts WHERE rule = 'exceedance'"
        ).fetchone()
        kinds = [k for (k,) in conn.execute("SELECT kind FROM alert_events ORDER BY id")]
    assert alert is not None and alert[1:] == (4, "critical", 80.0)
    assert kinds == ["opened", "updated"]
