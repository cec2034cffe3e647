"""What keeping rewritten history costs the readings insert (``store.readings``).

    python -m offsite.bench.conflicts [--rows 20000] [--rounds 9]

Uses OFFSITE_DATABASE_URL's server (a scratch database, created and dropped). Each round
times ``insert_readings`` of one batch of ``--rows`` readings, in its own transaction,
in four cases: all new (the single-statement fast path), the same batch again
(identical redelivery: the savepoint's unique violation, then ON CONFLICT DO NOTHING),
the same batch with every value changed (every row a rewrite, kept in
``reading_conflicts``), and an all-new batch holding one rewritten row. The two
redelivery cases are also timed with the conflict check switched off (the fallback's
read-back join alone, as before rewritten history was kept), alternating with it round
by round. Medians, side by side.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import psycopg

from offsite.core.readings import Reading
from offsite.core.registry import registry_from_dict
from offsite.store import readings as readings_module
from offsite.store.migrate import migrate
from offsite.store.readings import insert_readings
from offsite.store.registry import save_registry
from offsite.store.scratch import scratch_database

MN = "0300BENCHCONFLICT0000001"
POLLUTANTS = ["a21026", "a21002", "a34013", "a19001"]


@contextmanager
def _conflict_check(on: bool) -> Iterator[None]:
    """Off: the read-back join without keeping rewrites (an unused CTE is not run)."""
    real = readings_module.KEEP_REWRITES
    if not on:
        readings_module.KEEP_REWRITES = "SELECT 1"
    try:
        yield
    finally:
        readings_module.KEEP_REWRITES = real


def _batch(t0: datetime, rows: int, offset: float = 0.0) -> list[Reading]:
    per = len(POLLUTANTS)
    return [
        Reading(t0 + timedelta(minutes=i // per), MN, POLLUTANTS[i % per], 10.0 + i + offset)
        for i in range(rows)
    ]


def _timed(url: str, batch: list[Reading], keep: bool = False) -> float:
    """Seconds for insert_readings of ``batch``; rolled back unless ``keep``."""
    received = [datetime.now(UTC)] * len(batch)
    with psycopg.connect(url) as conn:
        t = time.perf_counter()
        insert_readings(conn, batch, received)
        elapsed = time.perf_counter() - t
        if not keep:
            conn.rollback()
    return elapsed


def run(url: str, rows: int, rounds: int, say: Callable[[str], None]) -> dict[str, float]:
    with psycopg.connect(url) as conn:
        migrate(conn)
        save_registry(
            conn,
            registry_from_dict(
                {
                    "enterprises": [
                        {
                            "id": "EB",
                            "name": "Bench",
                            "points": [{"id": "EB-P", "kind": "flue_gas", "devices": [{"mn": MN}]}],
                        }
                    ]
                }
            ),
        )
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    stored = _batch(t0, rows)
    _timed(url, stored, keep=True)  # what the redeliveries meet
    fresh_t0 = t0 + timedelta(days=30)
    one_rewrite = _batch(fresh_t0, rows)
    one_rewrite[-1] = Reading(stored[0].ts, MN, stored[0].pollutant, -1.0)
    times: dict[str, list[float]] = {}
    for r in range(rounds):
        cases: list[tuple[str, list[Reading], bool]] = [
            ("all new (fast path)", _batch(fresh_t0, rows), True),
            ("identical redelivery, check on", stored, True),
            ("identical redelivery, check off", stored, False),
            ("every value rewritten, check on", _batch(t0, rows, offset=0.5), True),
            ("every value rewritten, check off", _batch(t0, rows, offset=0.5), False),
            ("new batch + 1 rewrite, check on", one_rewrite, True),
            ("new batch + 1 rewrite, check off", one_rewrite, False),
        ]
        if r % 2:  # alternate which goes first
            cases.reverse()
        for name, batch, on in cases:
            with _conflict_check(on):
                times.setdefault(name, []).append(_timed(url, batch))
        say(f"round {r + 1}/{rounds} done")
    return {k: statistics.median(v) * 1000 for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    admin = os.environ.get("OFFSITE_DATABASE_URL")
    if not admin:
        raise SystemExit("set OFFSITE_DATABASE_URL to a PostgreSQL server (a scratch db is made)")
    try:
        with scratch_database(admin, "offsite_bench_conflicts") as url:
            medians = run(url, args.rows, args.rounds, lambda s: print(s, flush=True))
    except KeyboardInterrupt:
        raise SystemExit("interrupted; scratch database dropped") from None
    print(f"insert_readings of {args.rows:,} readings, median of {args.rounds} rounds (ms):")
    for name, ms in medians.items():
        print(f"  {name:<36} {ms:8.1f}")


if __name__ == "__main__":
    main()
