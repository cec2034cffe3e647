"""The rule engine's queue: readings stored by any worker, judged by the rule runner.

``queue_for_rules`` runs inside the transaction that stores the readings; ``take`` and
``done`` run inside the runner's transaction that writes the alerts. One row per
committed batch, arrays inside, so queueing costs one small INSERT per batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import psycopg

from offsite.core.readings import Reading

NOTIFY_CHANNEL = "offsite_rule_inbox"
SEP = "\x1f"  # joins a batch's series keys on the way to the server (see queue_for_rules)


@dataclass(frozen=True, slots=True)
class Rest:
    """The part of a queue row a slice leaves for later: ``done`` shrinks the row to it.

    Kept beside the slice rather than written by ``take``: a judging transaction that
    fails must leave the queue exactly as it was, and the retry that writes the slice's
    outcome must write the split with it, or the rest of the row is lost with it."""

    rid: int
    min_received: float
    sidx: bytes  # the row's own series numbers (int32), as stored
    ts: bytes
    value: bytes
    received: bytes
    flag: str


@dataclass(frozen=True, slots=True)
class Queued:
    """A slice of the queue, as the engine's ``evaluate_arrays`` takes it; ``ids`` the
    rows it takes readings from, ``rest`` what stays queued of those it splits."""

    ids: list[int]
    keys: list[tuple[str, str, str]]  # (mn, pollutant, kind) per series
    sidx: np.ndarray  # int64 per reading
    t: np.ndarray  # float64 per reading, epoch s
    x: np.ndarray  # float64 per reading
    flag: np.ndarray  # uint8 per reading
    heard: dict[str, datetime]
    rest: list[Rest] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(self.t.shape[0])


def queue_for_rules(
    conn: psycopg.Connection,
    new: Sequence[Reading],
    received: Sequence[datetime],
    heard: Mapping[str, datetime],
) -> None:
    """Queue primary readings (not min/max/cou… beside an average) and who was heard;
    ``received[i]`` is when ingest received ``new[i]``."""
    index: dict[tuple[str, str, str], int] = {}
    sidx: list[int] = []
    ts: list[float] = []
    value: list[float] = []
    rec: list[float] = []
    flags: list[str] = []
    # a message's readings share one timestamp object, and one receive time: each is
    # converted once, not once per reading
    last_ts = last_at = None
    t = a = 0.0
    for r, at in zip(new, received, strict=True):
        if r.stat:
            continue
        sidx.append(index.setdefault((r.mn, r.pollutant, r.kind.value), len(index)))
        if r.ts is not last_ts:
            last_ts, t = r.ts, r.ts.timestamp()
        if at is not last_at:
            last_at, a = at, at.timestamp()
        ts.append(t)
        value.append(r.value)
        rec.append(a)
        flags.append(r.flag)
    if not sidx and not heard:
        return
    keys = list(index)
    heard_at = [h.timestamp() for h in heard.values()]
    first = min([*rec, *heard_at])
    # The arrays travel as one joined string each, split by the server: psycopg dumps a
    # Python list element by element, which cost ingest several per cent of its CPU for
    # the thousands of series in a batch. Device numbers, pollutant codes and kinds are
    # validated alphanumerics, so the separator cannot occur in them.
    conn.execute(
        """INSERT INTO rule_inbox (min_received, s_mn, s_pollutant, s_kind, sidx, ts, value,
                                   received, flag, heard_mn, heard_at)
           VALUES (to_timestamp(%s), string_to_array(%s, %s), string_to_array(%s, %s),
                   string_to_array(%s, %s), %s, %s, %s, %s, %s, string_to_array(%s, %s),
                   ARRAY(SELECT to_timestamp(x) FROM unnest(string_to_array(%s, ',')::float8[])
                         WITH ORDINALITY AS u (x, i) ORDER BY i))""",
        (
            first,
            SEP.join(k[0] for k in keys),
            SEP,
            SEP.join(k[1] for k in keys),
            SEP,
            SEP.join(k[2] for k in keys),
            SEP,
            np.asarray(sidx, "<i4").tobytes(),
            np.asarray(ts, "<f8").tobytes(),
            np.asarray(value, "<f8").tobytes(),
            np.asarray(rec, "<f8").tobytes(),
            "".join(flags),
            SEP.join(heard),
            SEP,
            ",".join(map(repr, heard_at)),
        ),
    )
    conn.execute("SELECT pg_notify(%s, '')", (NOTIFY_CHANNEL,))


def watermark(conn: psycopg.Connection, stale: timedelta) -> datetime:
    """Every reading received before this instant, by any live worker, is committed.

    Live = a heartbeat within ``stale``; a worker gone silent longer stops holding
    the others back (what it kept uncommitted comes later, out of order). A live worker
    that has promised nothing yet (just started) holds everything back until it does,
    within a fraction of a second."""
    row = conn.execute(
        """SELECT coalesce(min(coalesce(committed_through, 'epoch')), clock_timestamp())
           FROM ingest_workers WHERE heartbeat_at > clock_timestamp() - %s""",
        (stale,),
    ).fetchone()
    assert row is not None
    return row[0]


# series keys come back as one joined string each, split here: psycopg parses a text
# array element by element, which was most of the runner's cost of taking a slice
_COLUMNS = """id, min_received, array_to_string(s_mn, E'\\x1f'),
              array_to_string(s_pollutant, E'\\x1f'), array_to_string(s_kind, E'\\x1f'),
              sidx, ts, value, received, flag, heard_mn, heard_at"""


@dataclass(slots=True)
class _Row:
    """One queue row, its series numbered across the slice (``sid``, per reading)."""

    rid: int
    sid: np.ndarray
    local: np.ndarray  # the row's own series numbers, per reading (as stored)
    ts: np.ndarray
    value: np.ndarray
    rec: np.ndarray
    flag: np.ndarray
    heard: list[tuple[str, datetime]]


def _parse(row: tuple, index: dict[tuple[str, str, str], int]) -> _Row:
    rid, _, s_mn, s_pol, s_kind, b_sidx, b_ts, b_value, b_rec, flag, hmn, hat = row
    mns = s_mn.split(SEP) if s_mn else []
    series = np.fromiter(
        (
            index.setdefault(k, len(index))
            for k in zip(
                mns,
                s_pol.split(SEP) if s_pol else [],
                s_kind.split(SEP) if s_kind else [],
                strict=True,
            )
        ),
        np.int64,
        len(mns),
    )
    local = np.frombuffer(b_sidx, "<i4")
    return _Row(
        rid,
        series[local],
        local,
        np.frombuffer(b_ts, "<f8"),
        np.frombuffer(b_value, "<f8"),
        np.frombuffer(b_rec, "<f8"),
        np.frombuffer(flag.encode("ascii"), np.uint8),
        list(zip(hmn, hat, strict=True)),
    )


def take(
    conn: psycopg.Connection,
    watermark: datetime,
    reorder: timedelta = timedelta(0),
    limit: int = 16,
) -> Queued:
    """Lock and take the queued readings received before ``watermark - reorder``, and
    the ones received within ``reorder`` after that cut which are older, in device
    time, than a reading of their series being taken. (One at the same instant is a
    duplicate instant, judged out of order wherever it goes.)

    Judging in receive order keeps each device's readings in the order they arrived,
    whichever worker stored them. But two workers' receive stamps of one device's
    consecutive messages can be inverted (a worker's MQTT thread descheduled for a
    moment), and a cut between the two stamps would judge the newer reading first and
    the older one after it, as "late". Everything received before ``watermark`` is
    committed, so the older one is already here if the inversion is under ``reorder``:
    it is taken with the newer one, and the engine orders the slice by device time.

    A batch that also holds readings received later is split: those stay queued for
    the next slice (``Queued.rest``). ``take`` writes nothing: the split is written by
    ``done``, with the alerts. ``limit`` batches at most per slice, each up to
    OFFSITE_BATCH_MAX_READINGS; the rows received within ``reorder`` of the cut are
    read besides.
    """
    cut = watermark - reorder
    rows = conn.execute(
        f"""SELECT {_COLUMNS} FROM rule_inbox WHERE min_received < %s
            ORDER BY min_received, id LIMIT %s FOR UPDATE SKIP LOCKED""",
        (cut, limit),
    ).fetchall()
    if not rows:
        return Queued(
            [], [], np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0, np.uint8), {}
        )
    if len(rows) == limit:  # a cut: only what was received before the last one is complete
        cut = min(cut, rows[-1][1])
    index: dict[tuple[str, str, str], int] = {}
    parsed = [_parse(r, index) for r in rows]
    c = cut.timestamp()
    # the newest device time being taken, per series: an older reading, received
    # within ``reorder`` after the cut (so committed, and here), goes with it
    newest = np.full(len(index), -np.inf)
    for p in parsed:
        settled = p.rec < c
        np.maximum.at(newest, p.sid[settled], p.ts[settled])
    if reorder > timedelta(0) and len(index):
        top = float(newest.max())
        tail = conn.execute(
            """SELECT id, ts FROM rule_inbox WHERE min_received < %s AND NOT id = ANY(%s)
               ORDER BY min_received, id""",  # read only: locked below if taken
            (cut + reorder, [p.rid for p in parsed]),
        ).fetchall()
        # the usual case: no later reading is older than everything taken, and the row
        # is left alone without reading its series keys
        maybe = [rid for rid, b_ts in tail if np.frombuffer(b_ts, "<f8").min(initial=np.inf) < top]
        candidates = (
            conn.execute(
                f"""SELECT {_COLUMNS} FROM rule_inbox WHERE id = ANY(%s)
                ORDER BY min_received, id FOR UPDATE SKIP LOCKED""",
                (maybe,),
            ).fetchall()
            if maybe
            else []
        )
        for r in candidates:
            trial = dict(index)  # a row left alone adds no series to the slice
            p = _parse(r, trial)
            if len(trial) > len(newest):  # series with nothing taken: nothing to go with
                newest = np.concatenate([newest, np.full(len(trial) - len(newest), -np.inf)])
            if (p.ts < newest[p.sid]).any():
                parsed.append(p)
                index = trial
    horizon = c + reorder.total_seconds()
    ids: list[int] = []
    keep: list[tuple[np.ndarray, ...]] = []
    heard: dict[str, datetime] = {}
    rest: list[Rest] = []
    for p in parsed:
        now = (p.rec < c) | ((p.rec < horizon) & (p.ts < newest[p.sid]))
        ids.append(p.rid)
        keep.append((p.sid[now], p.ts[now], p.value[now], p.flag[now]))
        for m, at in p.heard:
            if m not in heard or at > heard[m]:
                heard[m] = at
        later = ~now
        if later.any():  # the later part of this batch stays queued (see ``done``)
            rest.append(
                Rest(
                    p.rid,
                    float(p.rec[later].min()),
                    p.local[later].astype("<i4").tobytes(),
                    p.ts[later].astype("<f8").tobytes(),
                    p.value[later].astype("<f8").tobytes(),
                    p.rec[later].astype("<f8").tobytes(),
                    p.flag[later].tobytes().decode("ascii"),
                )
            )
    cat = [np.concatenate([k[i] for k in keep]) for i in range(4)]
    return Queued(ids, list(index), cat[0], cat[1], cat[2], cat[3], heard, rest)


def queued_keys(conn: psycopg.Connection) -> set[tuple[str, str, str, float]]:
    """(mn, pollutant, kind, epoch) of every queued reading: left out of a warm-up."""
    out: set[tuple[str, str, str, float]] = set()
    for s_mn, s_pol, s_kind, b_sidx, b_ts in conn.execute(
        "SELECT s_mn, s_pollutant, s_kind, sidx, ts FROM rule_inbox"
    ):
        keys = list(zip(s_mn, s_pol, s_kind, strict=True))
        for i, t in zip(
            np.frombuffer(b_sidx, "<i4").tolist(), np.frombuffer(b_ts, "<f8").tolist(), strict=True
        ):
            out.add((*keys[i], t))
    return out


def done(conn: psycopg.Connection, taken: Queued) -> None:
    """Remove a judged slice from the queue, in the transaction that writes its alerts.

    A split row is shrunk in place to its unjudged rest (same id, so its place in the
    queue and its series keys stay, and the heard devices go with the judged part);
    the others are deleted. Both are idempotent: written again after a commit whose
    outcome was lost, they change nothing more."""
    split = {r.rid for r in taken.rest}
    whole = [i for i in taken.ids if i not in split]
    if whole:
        conn.execute("DELETE FROM rule_inbox WHERE id = ANY(%s)", (whole,))
    for r in taken.rest:
        conn.execute(
            """UPDATE rule_inbox SET min_received = to_timestamp(%s), sidx = %s, ts = %s,
                   value = %s, received = %s, flag = %s, heard_mn = '{}', heard_at = '{}'
               WHERE id = %s""",
            (r.min_received, r.sidx, r.ts, r.value, r.received, r.flag, r.rid),
        )


def depth(conn: psycopg.Connection) -> tuple[int, float]:
    """(queued batches, age in seconds of the oldest): the rule runner's lag."""
    row = conn.execute("""SELECT count(*), coalesce(extract(epoch FROM
                              clock_timestamp() - min(queued_at)), 0) FROM rule_inbox""").fetchone()
    assert row is not None
    return int(row[0]), float(row[1])
