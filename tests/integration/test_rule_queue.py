"""store.rule_inbox on a real PostgreSQL: a slice takes exactly the readings received
before the watermark; the later part of a batch stays queued, with its own series keys,
and the next slice takes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from ingest.models import DataKind, Reading
from store.rule_inbox import Queued, done, queue_for_rules, take

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
EARLY, LATE = T0 + timedelta(seconds=1), T0 + timedelta(seconds=5)


def _judged(q: Queued) -> list[tuple[str, str, str, float, float, int]]:
    """(mn, pollutant, kind, ts, value, flag) per reading of a slice, sorted."""
    return sorted((*q.keys[int(i)], float(t), float(x), int(f))
                  for i, t, x, f in zip(q.sidx, q.t, q.x, q.flag, strict=True))


def test_a_batch_split_by_the_watermark_is_judged_in_two_slices(db_url: str) -> None:
    early = [Reading(T0, "MNA", "a21026", 1.0), Reading(T0, "MNB", "a21002", 2.0, "M")]
    late = [Reading(T0 + timedelta(minutes=1), "MNC", "a19001", 3.0),
            Reading(T0 + timedelta(minutes=1), "MNA", "a21026", 4.0, kind=DataKind.MINUTE),
            Reading(T0 + timedelta(minutes=1), "MNA", "a21026", 9.0, kind=DataKind.MINUTE,
                    stat="max")]  # a statistic beside an average: not queued
    with psycopg.connect(db_url) as conn:
        queue_for_rules(conn, early + late, [EARLY] * 2 + [LATE] * 3,
                        {"MNA": LATE, "MNB": EARLY, "MNC": LATE})
        conn.commit()
        first = take(conn, LATE - timedelta(seconds=1))
        done(conn, first.ids)
        conn.commit()
        assert _judged(first) == [("MNA", "a21026", "rtd", T0.timestamp(), 1.0, ord("N")),
                                  ("MNB", "a21002", "rtd", T0.timestamp(), 2.0, ord("M"))]
        assert first.heard == {"MNA": LATE, "MNB": EARLY, "MNC": LATE}
        # the later part stayed queued, as its own row
        assert conn.execute("SELECT count(*) FROM rule_inbox").fetchone() == (1,)
        second = take(conn, LATE + timedelta(seconds=1))
        done(conn, second.ids)
        conn.commit()
        t1 = (T0 + timedelta(minutes=1)).timestamp()
        assert _judged(second) == [("MNA", "a21026", "min", t1, 4.0, ord("N")),
                                   ("MNC", "a19001", "rtd", t1, 3.0, ord("N"))]
        assert conn.execute("SELECT count(*) FROM rule_inbox").fetchone() == (0,)
