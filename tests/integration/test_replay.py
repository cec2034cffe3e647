"""``offsite simulate --replay``: a recorded CSV through the real broker into ingest, as JSON
and as HJ 212 — every value stored with its flag, the rules judging it, pacing honoured."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from offsite.core.registry import registry_from_dict
from offsite.simulators.publisher import publish_records, replay_encoder
from offsite.simulators.replay import parse_csv, parse_map
from tests.integration.helpers import make_settings, register, running_ingest, wait_for

pytestmark = pytest.mark.integration

MN = "0A0B0C0D0E0F101112131415"
PASSWORD = "654321"
REGISTRY = registry_from_dict(
    {
        "enterprises": [
            {
                "id": "E1",
                "name": "Replay Power",
                "points": [
                    {
                        "id": "E1-P1",
                        "kind": "flue_gas",
                        "o2_ref": 6.0,
                        "limits": {"a21026": 35.0},
                        "devices": [{"mn": MN, "interval_s": 60, "password": PASSWORD}],
                    }
                ],
            }
        ]
    }
)


def _csv(tmp_path: Path, start: datetime, n: int) -> Path:
    lines = ["time,SO2,SO2_flag,a19001"]
    for k in range(n):
        ts = (start + timedelta(minutes=k)).isoformat()
        so2 = 99.0 if k == 4 else 12.0 + k / 10  # one value above the 35 limit
        flag = "M" if k == 2 else ""
        o2 = "" if k == 3 else f"{8 + k / 100:.2f}"
        lines.append(f"{ts},{so2},{flag},{o2}")
    path = tmp_path / "recording.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("protocol", ["json", "hj212"])
def test_replayed_csv_is_stored_value_for_value(
    db_url: str, mqtt_url: str, unique_topic: str, tmp_path: Path, protocol: str
) -> None:
    register(db_url, REGISTRY)
    n = 10
    start = (datetime.now(UTC) - timedelta(minutes=30)).replace(second=0, microsecond=0)
    with _csv(tmp_path, start, n).open(newline="") as fh:
        records = parse_csv(fh, parse_map("SO2=a21026"))
    expected = sorted(
        (r.ts, code, v, r.flags.get(code, "N")) for r in records for code, v in r.values.items()
    )
    assert len(expected) == 2 * n - 1
    settings = make_settings(db_url, mqtt_url, unique_topic)
    with running_ingest(settings) as ingest:
        stats = publish_records(
            records,
            mqtt_url,
            MN,
            speed=600.0,  # 9 min in 0.9 s
            encode=replay_encoder(protocol, password=PASSWORD, st="31"),
            topic_template=unique_topic.replace("+", "{mn}"),
            client_id=f"offsite-test-replay-{protocol}",
        )
        assert (stats.messages, stats.readings) == (n, len(expected))
        assert stats.elapsed_s >= 0.85  # paced by the recording's own clock, sped up 600×
        wait_for(
            lambda: ingest.stats.readings_stored >= len(expected),
            what=f"{len(expected)} readings stored ({ingest.stats})",
        )
    with psycopg.connect(db_url) as conn:
        stored = conn.execute(
            "SELECT ts, pollutant, value, flag FROM readings WHERE mn = %s ORDER BY ts, pollutant",
            (MN,),
        ).fetchall()
        dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
        alerts = conn.execute("SELECT rule, pollutant FROM alerts WHERE mn = %s", (MN,)).fetchall()
    assert stored == expected
    assert dead == (0,)
    assert ("exceedance", "a21026") in alerts
