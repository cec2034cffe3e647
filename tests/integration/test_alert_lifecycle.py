"""The alert lifecycle on the real services: evidence, assignment, comments, a resolved
alert reopened by its returning condition, a person's reopen, and maintenance muting."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from offsite.core.registry import registry_from_dict
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
from tests.integration.test_api_live import serving

pytestmark = pytest.mark.integration

MN = "030000A8900016F000169DC0"
OTHER = "030000A8900016F000169DC1"
REGISTRY = registry_from_dict(
    {
        "enterprises": [
            {
                "id": "E9",
                "name": "Lifecycle Thermal Power",
                "points": [
                    {
                        "id": "E9-S1",
                        "kind": "flue_gas",
                        "o2_ref": 6.0,
                        "limits": {"a21026": 35.0},
                        "devices": [{"mn": MN, "interval_s": 60}],
                    },
                    {
                        "id": "E9-S2",
                        "kind": "flue_gas",
                        "o2_ref": 6.0,
                        "limits": {"a21026": 35.0},
                        "devices": [{"mn": OTHER, "interval_s": 60}],
                    },
                ],
            }
        ]
    }
)


def _msg(topic: str, mn: str, ts: datetime, value: float, flag: str = "N") -> tuple[str, bytes]:
    return (
        topic_for(topic, mn),
        json.dumps(
            {"mn": mn, "ts": ts.isoformat(), "values": {"a21026": {"value": value, "flag": flag}}}
        ).encode(),
    )


def _alert(db_url: str, mn: str) -> tuple | None:
    import psycopg

    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "SELECT id, state, reopened, suppressed, detail FROM alerts "
            "WHERE mn = %s ORDER BY id DESC LIMIT 1",
            (mn,),
        ).fetchone()


def test_lifecycle_evidence_assign_comment_resolve_and_reopen(
    db_url: str, mqtt_url: str, unique_topic: str
) -> None:
    register(db_url, REGISTRY)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    settings = make_settings(db_url, mqtt_url, unique_topic, alert_reopen_s=3600.0)
    with (
        running_ingest(settings) as ingest,
        serving(settings, db_url) as url,
        httpx.Client(
            base_url=url,
            timeout=10,
            headers=bearer(token_for(db_url, "regulator", user_id="reg-1")),
        ) as http,
    ):
        clean = [
            _msg(unique_topic, MN, t0 + timedelta(minutes=i), 20.0 + (i % 3)) for i in range(5)
        ]
        publish_raw(mqtt_url, [*clean, _msg(unique_topic, MN, t0 + timedelta(minutes=5), 50.0)])
        row = wait_for(lambda: _alert(db_url, MN), what="an exceedance alert")
        alert_id, state, reopened, suppressed, detail = row
        assert state == "open" and reopened == 0 and suppressed is None
        ev = detail["evidence"]
        assert ev["v"][-1] == 50.0 and len(ev["t"]) == len(ev["v"]) == len(ev["flag"]) == 6
        assert detail["rule"]["detector"] == "exceedance" and detail["rule"]["version"]

        got = http.get(f"/api/alerts/{alert_id}").json()
        assert got["evidence"]["v"][-1] == 50.0 and got["rule_config"]["name"] == "exceedance"

        # only an active user whose role may take work: not a made-up name, not an admin
        r = http.post(f"/api/alerts/{alert_id}/assign", json={"assignee": "nosuchuser"})
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == ["body", "assignee"]
        assert r.json()["detail"][0]["type"] == "unknown_user"
        # the message follows Accept-Language; the code and the field do not change
        zh = http.post(
            f"/api/alerts/{alert_id}/assign",
            json={"assignee": "nosuchuser"},
            headers={"Accept-Language": "zh-CN,zh;q=0.9"},
        ).json()["detail"][0]
        assert zh["msg"] == "没有在职用户 nosuchuser" and zh["type"] == "unknown_user"
        assert http.get("/api/alerts/999999", headers={"Accept-Language": "zh"}).json() == {
            "detail": "未找到告警 999999"
        }
        token_for(db_url, "admin", user_id="adm-1")
        r = http.post(f"/api/alerts/{alert_id}/assign", json={"assignee": "adm-1"})
        assert r.status_code == 422 and r.json()["detail"][0]["type"] == "role_not_assignable"
        assert http.get(f"/api/alerts/{alert_id}").json()["state"] == "open"
        insp = bearer(token_for(db_url, "inspector", user_id="insp-7"))
        picks = http.get("/api/users/assignable").json()
        assert {"id": "insp-7", "role": "inspector"}.items() <= next(
            u for u in picks if u["id"] == "insp-7"
        ).items()
        assert "adm-1" not in {u["id"] for u in picks}
        r = http.post(
            f"/api/alerts/{alert_id}/assign", json={"assignee": "insp-7", "note": "check the probe"}
        )
        assert r.status_code == 200 and r.json()["state"] == "assigned"
        assert r.json()["assignee"] == "insp-7"
        # the inspector finds it in their own list (My work)
        mine = http.get("/api/alerts", params={"assignee": "insp-7"}, headers=insp).json()
        assert [a["id"] for a in mine] == [alert_id]
        r = http.post(
            f"/api/alerts/{alert_id}/comments",
            json={"note": "called the plant"},
            headers=bearer(token_for(db_url, "inspector", user_id="insp-7")),
        )
        assert r.status_code == 200 and r.json()["state"] == "assigned"
        assert (
            http.post(f"/api/alerts/{alert_id}/reopen", json={}).status_code == 409
        )  # it is not closed
        r = http.post(f"/api/alerts/{alert_id}/resolve", json={"note": "fixed"})
        assert r.json()["state"] == "resolved"

        # the condition returns 20 minutes later (device time): the same alert reopens
        publish_raw(mqtt_url, [_msg(unique_topic, MN, t0 + timedelta(minutes=25), 60.0)])
        wait_for(lambda: (_alert(db_url, MN) or (0, ""))[1] == "open", what="reopened")
        again = http.get(f"/api/alerts/{alert_id}").json()
        assert again["id"] == alert_id and again["reopened"] == 1
        kinds = [e["kind"] for e in again["events"]]
        assert kinds == ["opened", "assigned", "commented", "resolved", "reopened"]
        assert again["events"][1]["actor"] == "reg-1"
        assert again["events"][2]["actor"] == "insp-7"
        # every decision is in the tamper-evident audit log
        actions = [
            a
            for (a,) in psycopg.connect(db_url).execute(
                "SELECT action FROM audit_log WHERE subject = %s ORDER BY seq",
                (f"alert:{alert_id}",),
            )
        ]
        assert actions == ["alert.assigned", "alert.comment", "alert.resolved"]
        assert scalar(db_url, "SELECT count(*) FROM alerts WHERE mn = %s", MN) == 1

        # a person reopens a resolved alert
        http.post(f"/api/alerts/{alert_id}/resolve", json={"note": "again"})
        r = http.post(
            f"/api/alerts/{alert_id}/reopen",
            json={"note": "no"},
            headers=bearer(token_for(db_url, "regulator", user_id="reg-2")),
        )
        assert r.status_code == 200 and r.json()["state"] == "open"
        assert r.json()["reopened"] == 2
        assert ingest.error is None


def test_maintenance_flags_mute_an_alert_without_dropping_it(
    db_url: str, mqtt_url: str, unique_topic: str
) -> None:
    register(db_url, REGISTRY)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    settings = make_settings(db_url, mqtt_url, unique_topic)
    with running_ingest(settings):
        publish_raw(
            mqtt_url,
            [
                _msg(unique_topic, OTHER, t0, 20.0, flag="M"),  # maintenance …
                _msg(unique_topic, OTHER, t0 + timedelta(minutes=1), 36.0),  # … then over the limit
                _msg(unique_topic, OTHER, t0 + timedelta(minutes=2), -40.0, flag="M"),
            ],
        )
        rows = wait_for(
            lambda: (
                scalar(db_url, "SELECT count(*) FROM alerts WHERE mn = %s", OTHER) == 2
                and scalar(
                    db_url,
                    "SELECT array_agg(rule || ':' || coalesce(suppressed, '-') ORDER BY rule) "
                    "FROM alerts WHERE mn = %s",
                    OTHER,
                )
            ),
            what="two alerts",
        )
    # the exceedance is kept, marked as muted; implausible ignores maintenance flags
    assert rows[0].startswith("exceedance:device reports maintenance")
    assert rows[1] == "implausible:-"


def test_the_rules_in_force_are_on_the_audit_record(
    db_url: str, mqtt_url: str, unique_topic: str, tmp_path
) -> None:
    register(db_url, REGISTRY)

    def loaded() -> list[str]:
        with psycopg.connect(db_url) as conn:
            return [
                json.loads(d)["digest"]
                for (d,) in conn.execute(
                    "SELECT data FROM audit_log WHERE action = 'rules.loaded' ORDER BY seq"
                )
            ]

    settings = make_settings(db_url, mqtt_url, unique_topic)
    for _ in range(2):  # the same rules twice: recorded once
        with running_ingest(settings) as ingest:
            wait_for(lambda: ingest.rules_figures().leading, what="the rule runner leading")
    assert len(loaded()) == 1
    mine = tmp_path / "rules.toml"
    mine.write_text('base = "default"\nversion = "site-1"\n[offline]\nintervals = 9\n')
    with running_ingest(make_settings(db_url, mqtt_url, unique_topic, rules_file=mine)) as ing:
        wait_for(lambda: ing.rules_figures().leading, what="leading")
    digests = loaded()
    assert len(digests) == 2 and digests[0] != digests[1]
    from offsite.store.audit import verify

    with psycopg.connect(db_url) as conn:
        assert verify(conn).broken is None
