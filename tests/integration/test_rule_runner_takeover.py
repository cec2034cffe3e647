"""A rule runner taking the lead while workers commit: its state is rebuilt from the
store and the queue as of one instant, so a batch committed while it reads is judged
once, from the queue, in order — not warmed from the store and then judged again after
newer readings of its series (a race that 3 workers in one test process hit)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from offsite.core.readings import Reading
from offsite.core.registry import registry_from_dict
from offsite.runner import rule_runner
from offsite.runner.rule_runner import RuleRunner, RunnerConfig
from offsite.store.readings import insert_readings
from offsite.store.rule_inbox import queue_for_rules
from tests.integration.helpers import register

pytestmark = pytest.mark.integration

MN = "0300TAKEOVER000000000001"
REGISTRY = registry_from_dict(
    {
        "enterprises": [
            {
                "id": "E7",
                "name": "Takeover Works",
                "points": [
                    {
                        "id": "E7-P1",
                        "kind": "flue_gas",
                        "limits": {"a21026": 35.0},
                        "devices": [{"mn": MN, "interval_s": 60}],
                    }
                ],
            }
        ]
    }
)


def _store(db_url: str, readings: list[Reading], received: datetime, *, queued: bool) -> None:
    """As a worker stores a batch: readings and their queue row in one transaction."""
    with psycopg.connect(db_url) as conn:
        new = insert_readings(conn, readings, [received] * len(readings))
        if queued:
            queue_for_rules(conn, new, [received] * len(new), {MN: received})


def test_a_batch_committed_while_the_new_leader_reads_is_judged_once_in_order(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(db_url, REGISTRY)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    t0 = now - timedelta(minutes=30)
    # history: judged long ago (stored, no longer queued)
    _store(
        db_url,
        [Reading(t0 + timedelta(minutes=i), MN, "a21026", 10.0 + i) for i in range(5)],
        now - timedelta(minutes=20),
        queued=False,
    )
    late_batch = [Reading(t0 + timedelta(minutes=5), MN, "a21026", 15.0)]
    real_queued_keys = rule_runner.queued_keys

    def queued_then_a_worker_commits(conn: psycopg.Connection) -> set:
        keys = real_queued_keys(conn)
        _store(db_url, late_batch, now - timedelta(minutes=1), queued=True)
        return keys

    monkeypatch.setattr(rule_runner, "queued_keys", queued_then_a_worker_commits)
    runner = RuleRunner(db_url, RunnerConfig())
    with runner.connect() as runner.conn:
        runner._start()
        assert runner.engine is not None
        assert runner._judge()
        assert runner.judged == 1
        assert runner.engine.late == 0
