"""A rule runner taking the lead replays stored history: a series whose history reaches
back past the replay served its day of warm-up before, and may raise at once; a series
whose whole (short) history was replayed is new, and keeps its day of warm-up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest

from offsite.core.readings import Reading
from offsite.core.registry import registry_from_dict
from offsite.runner.rule_runner import RuleRunner, RunnerConfig
from offsite.store.readings import insert_readings
from offsite.store.rule_inbox import queue_for_rules
from tests.integration.helpers import register

pytestmark = pytest.mark.integration

OLD = "0300WARMUP0000000000OLD1"
NEW = "0300WARMUP0000000000NEW1"
TEMP = "a01012"  # flue temperature: no permit limit, so the day of warm-up applies
REGISTRY = registry_from_dict(
    {
        "enterprises": [
            {
                "id": "E9",
                "name": "Warm-up Works",
                "points": [
                    {
                        "id": "E9-P1",
                        "kind": "flue_gas",
                        "limits": {"a21026": 35.0},
                        "devices": [
                            {"mn": OLD, "interval_s": 300},
                            {"mn": NEW, "interval_s": 300},
                        ],
                    }
                ],
            }
        ]
    }
)


def test_a_takeover_keeps_a_new_series_warm_up_and_not_an_old_one(db_url: str) -> None:
    register(db_url, REGISTRY)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    cfg = RunnerConfig()
    rng = np.random.default_rng(3)

    def history(mn: str, n: int) -> list[Reading]:
        x = np.round(50 + rng.normal(0, 0.5, n), 2)
        start = now - timedelta(minutes=5 * n)
        return [
            Reading(start + timedelta(minutes=5 * i), mn, TEMP, float(v)) for i, v in enumerate(x)
        ]

    with psycopg.connect(db_url) as conn:
        # judged long ago (stored, no longer queued): more than the runner replays
        # of the old series, three hours of the new one
        stored = history(OLD, cfg.warm_max + 20) + history(NEW, 36)
        insert_readings(conn, stored, [now - timedelta(minutes=1)] * len(stored))
        # a spike, and the reading after it that left it (a spike comes and goes)
        spikes = [
            Reading(now + timedelta(minutes=5 * i), mn, TEMP, v)
            for mn in (OLD, NEW)
            for i, v in enumerate((150.0, 50.0))
        ]
        new = insert_readings(conn, spikes, [now] * len(spikes))
        queue_for_rules(conn, new, [now] * len(new), {OLD: now, NEW: now})

    runner = RuleRunner(db_url, cfg)
    with runner.connect() as runner.conn:
        runner._start()
        assert runner._judge()
    with psycopg.connect(db_url) as conn:
        raised = conn.execute(
            "SELECT mn, rule FROM alerts WHERE pollutant = %s AND mn = ANY(%s)", (TEMP, [OLD, NEW])
        ).fetchall()
    assert (OLD, "spike") in raised
    assert not [r for r in raised if r[0] == NEW]
