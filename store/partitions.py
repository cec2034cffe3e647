"""Monthly partitions of ``readings`` on plain PostgreSQL: a pure planner and its executor.

``plan_partitions`` takes the clock and what exists and says what to do; it does no I/O,
so every edge (month ends, retention exactly on a boundary, rows waiting in the DEFAULT
partition) is tested without a database. ``maintain`` reads the catalogue, plans, and
applies the plan one step per transaction.

Why a DEFAULT partition and why rows move out of it: a reading whose month has no
partition yet (ingest stopped for weeks, a far backfill, a clock gone wrong) must still be
stored, so it lands in DEFAULT; but PostgreSQL refuses to attach a partition for a range
while DEFAULT holds rows of that range. Creating a month therefore moves those rows into
the new table before attaching it, holding writers off ``readings`` meanwhile (readers go
on). Normally that is an instant: months are made ahead, so DEFAULT is empty; only the
first run after migration 0005 (which turns the old table into DEFAULT) or after a long
stop moves many rows, and ingest waits for it (the broker holds the backlog).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from offsite.store.errors import StoreError
from offsite.store.migrate import timescale_active

log = logging.getLogger("offsite.store")

DEFAULT_PARTITION = "readings_default"
# "offsite partition maintenance": one maintainer at a time. Not 0x0FF5174, which it
# shared with the rule runner's lead: a leading runner holds that lock for as long as it
# leads, so every upkeep run was skipped (no partitions ahead, no retention)
_LOCK_KEY = 0x0FF5176
# TimescaleDB's retention job runs daily at 01:05 UTC, on a fixed schedule like the other
# policies (migration 0051 says why: a drifting one backs off after failed runs)
RETENTION_SLOT = datetime(2000, 1, 1, 1, 5, tzinfo=UTC)
_BOUND_RE = re.compile(r"FOR VALUES FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass(frozen=True, slots=True)
class Partition:
    """One range partition of ``readings``: rows with ``start <= ts < end``."""

    name: str
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError(f"partition {self.name}: bounds must be timezone-aware")
        if not self.start < self.end:
            raise ValueError(f"partition {self.name}: empty range {self.start} → {self.end}")


@dataclass(frozen=True, slots=True)
class PartitionPlan:
    create: tuple[Partition, ...] = ()
    drop: tuple[Partition, ...] = ()
    # delete rows older than this from DEFAULT (retention for rows no month holds)
    purge_default_before: datetime | None = None

    def __bool__(self) -> bool:
        return bool(self.create or self.drop or self.purge_default_before)


def month_start(t: datetime) -> datetime:
    """The first instant of ``t``'s month, in UTC (partitions are UTC months)."""
    u = t.astimezone(UTC)
    return datetime(u.year, u.month, 1, tzinfo=UTC)


def add_months(t: datetime, n: int) -> datetime:
    """``t`` (a month start) moved by ``n`` months."""
    k = t.year * 12 + (t.month - 1) + n
    return datetime(k // 12, k % 12 + 1, 1, tzinfo=UTC)


def month_partition(start: datetime) -> Partition:
    start = month_start(start)
    return Partition(f"readings_p{start:%Y_%m}", start, add_months(start, 1))


def plan_partitions(
    now: datetime,
    existing: Sequence[Partition],
    *,
    months_ahead: int,
    retention: timedelta | None,
    default_months: Sequence[datetime] = (),
) -> PartitionPlan:
    """What to create and drop so that the current month and ``months_ahead`` after it
    have partitions, months with rows waiting in DEFAULT get theirs, and partitions
    wholly older than ``now - retention`` go (``retention`` None keeps everything).

    A month overlapping any existing partition (one made by hand or by pg_partman, of
    any width) is left alone rather than fought over.
    """
    if months_ahead < 0:
        raise ValueError("months_ahead must be ≥ 0")
    cutoff = now - retention if retention is not None else None
    first = month_start(now)
    wanted = {add_months(first, i) for i in range(months_ahead + 1)}
    wanted |= {month_start(m) for m in default_months}
    create = []
    for start in sorted(wanted):
        p = month_partition(start)
        if cutoff is not None and p.end <= cutoff:
            continue  # would be dropped at once: its rows are past retention anyway
        if any(e.start < p.end and p.start < e.end for e in existing):
            continue
        create.append(p)
    drop = tuple(
        sorted(
            (e for e in existing if cutoff is not None and e.end <= cutoff), key=lambda e: e.start
        )
    )
    return PartitionPlan(tuple(create), drop, cutoff)


# -- I/O ---------------------------------------------------------------------------------
def partitioned(conn: psycopg.Connection) -> bool:
    """True when ``readings`` is a partitioned table (plain PostgreSQL after 0005)."""
    row = conn.execute(
        "SELECT relkind FROM pg_class WHERE oid = to_regclass('readings')"
    ).fetchone()
    return bool(row and row[0] == "p")


def existing_partitions(conn: psycopg.Connection) -> list[Partition]:
    """The range partitions of ``readings`` (DEFAULT excluded), oldest first."""
    rows = conn.execute("""
        SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'readings'::regclass""").fetchall()
    out = []
    for name, bound in rows:
        m = _BOUND_RE.search(bound or "")
        if m is None:
            continue  # DEFAULT (or MINVALUE/MAXVALUE bounds, left alone)
        out.append(
            Partition(name, datetime.fromisoformat(m.group(1)), datetime.fromisoformat(m.group(2)))
        )
    return sorted(out, key=lambda p: p.start)


def default_months(conn: psycopg.Connection) -> list[datetime]:
    """Months that have rows waiting in the DEFAULT partition (normally none: a scan of
    an empty table)."""
    rows = conn.execute(
        sql.SQL("SELECT DISTINCT date_trunc('month', ts, 'UTC') FROM {}").format(
            sql.Identifier(DEFAULT_PARTITION)
        )
    ).fetchall()
    return sorted(r[0] for r in rows)


@dataclass
class MaintainReport:
    backend: str  # "partitioned", "timescaledb" or "plain"
    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    moved_rows: int = 0  # rows moved out of DEFAULT into new months
    purged_rows: int = 0  # rows past retention deleted from DEFAULT
    skipped: bool = False  # another maintainer held the lock
    # TimescaleDB: what became of the retention policy ("added", "changed", "removed",
    # "unchanged") and the drop_after it now has (None: no policy)
    retention_policy: str = ""
    retention: timedelta | None = None


def maintain(
    conn: psycopg.Connection, now: datetime, *, months_ahead: int, retention: timedelta | None
) -> MaintainReport:
    """Create months ahead, empty DEFAULT into months, apply retention.

    On TimescaleDB the equivalent is a retention policy (chunks are made by TimescaleDB
    itself). ``conn`` must be idle (no transaction open): each step is its own
    transaction, so a failure leaves the earlier steps done and the table consistent.
    """
    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise StoreError(
            "partition maintenance needs a connection outside any transaction "
            "(commit first, or use autocommit): each step commits on its own"
        )
    with conn.transaction():
        if timescale_active(conn):
            return _maintain_timescale(conn, retention)
        if not partitioned(conn):
            return MaintainReport("plain")
        got = conn.execute("SELECT pg_try_advisory_lock(%s)", (_LOCK_KEY,)).fetchone()
    report = MaintainReport("partitioned")
    if not (got and got[0]):
        report.skipped = True
        return report
    try:
        with conn.transaction():
            plan = plan_partitions(
                now,
                existing_partitions(conn),
                months_ahead=months_ahead,
                retention=retention,
                default_months=default_months(conn),
            )
        for p in plan.create:
            report.moved_rows += _create(conn, p)
            report.created.append(p.name)
        for p in plan.drop:
            with conn.transaction():
                conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(p.name)))
            report.dropped.append(p.name)
        if plan.purge_default_before is not None:
            with conn.transaction():
                cur = conn.execute(
                    sql.SQL("DELETE FROM {} WHERE ts < %s").format(
                        sql.Identifier(DEFAULT_PARTITION)
                    ),
                    (plan.purge_default_before,),
                )
                report.purged_rows = cur.rowcount
    except psycopg.Error as exc:
        raise StoreError(f"partition maintenance failed: {exc}") from exc
    finally:
        if conn.info.transaction_status == TransactionStatus.IDLE:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    if report.created or report.dropped or report.purged_rows:
        log.info(
            "partitions: created %s, dropped %s, %d rows moved out of DEFAULT, %d purged",
            report.created or "none",
            report.dropped or "none",
            report.moved_rows,
            report.purged_rows,
        )
    return report


def _create(conn: psycopg.Connection, p: Partition) -> int:
    """Create one month, moving its rows out of DEFAULT; return how many moved."""
    name, default = sql.Identifier(p.name), sql.Identifier(DEFAULT_PARTITION)
    with conn.transaction():
        # Writers wait until the month is attached (readers go on). Locking only DEFAULT
        # is not enough: an INSERT that routed a row to DEFAULT before the attach and
        # waited on the lock then fails its partition check ("violates partition
        # constraint" — tests/integration/test_storage.py reproduced it). An INSERT that
        # waited on ``readings`` itself routes with the new partition.
        conn.execute("LOCK TABLE readings IN SHARE ROW EXCLUSIVE MODE")
        conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(default))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (LIKE readings INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
            ).format(name)
        )
        cur = conn.execute(
            sql.SQL("""
            WITH moved AS (DELETE FROM {} WHERE ts >= %s AND ts < %s RETURNING *)
            INSERT INTO {} SELECT * FROM moved""").format(default, name),
            (p.start, p.end),
        )
        moved = cur.rowcount
        # the CHECK lets ATTACH skip scanning the new table to prove its rows fit
        # (DDL takes no bind parameters: the bounds go in as literals)
        lo, hi = sql.Literal(p.start), sql.Literal(p.end)
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK (ts >= {} AND ts < {})").format(
                name, sql.Identifier(f"{p.name}_range"), lo, hi
            )
        )
        conn.execute(
            sql.SQL("ALTER TABLE readings ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                name, lo, hi
            )
        )
        conn.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                name, sql.Identifier(f"{p.name}_range")
            )
        )
    return moved


def _maintain_timescale(conn: psycopg.Connection, retention: timedelta | None) -> MaintainReport:
    """Keep the hypertable's retention policy equal to the setting. TimescaleDB makes the
    chunks itself; its retention job drops whole chunks older than ``drop_after`` (the
    continuous aggregates keep their rows: their refresh window never reaches that far
    back). The policy is replaced only when the setting changed, so its schedule and
    history survive a routine run."""
    row = conn.execute("""
        SELECT job_id, (config->>'drop_after')::interval FROM timescaledb_information.jobs
        WHERE proc_name = 'policy_retention' AND hypertable_name = 'readings'""").fetchone()
    current: timedelta | None = row[1] if row else None
    report = MaintainReport("timescaledb", retention=retention)
    if row is not None and current == retention:
        report.retention_policy = "unchanged"
        return report
    if row is not None:
        conn.execute("SELECT remove_retention_policy('readings', if_exists => true)")
    if retention is not None:
        conn.execute(
            "SELECT add_retention_policy('readings', drop_after => %s, initial_start => %s)",
            (retention, RETENTION_SLOT),
        )
    report.retention_policy = (
        "unchanged"
        if row is None and retention is None
        else "added"
        if row is None
        else "removed"
        if retention is None
        else "changed"
    )
    if report.retention_policy != "unchanged":
        log.info("retention policy %s: drop_after %s", report.retention_policy, retention)
    return report
