"""The rule engine's queue: readings stored by any worker, judged by the rule runner.

``queue_for_rules`` runs inside the transaction that stores the readings; ``take`` and
``done`` run inside the runner's transaction that writes the alerts. One row per
committed batch, arrays inside, so queueing costs one small INSERT per batch.
"""

from __future__ import annotations

import time
import weakref
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from operator import attrgetter

import numpy as np
import psycopg

from offsite.core.readings import Reading

NOTIFY_CHANNEL = "offsite_rule_inbox"
SEP = "\x1f"  # joins a batch's series keys on the way to the server (see queue_for_rules)
SHARDS_REFRESH_S = 1.0  # how stale ingest's idea of the shard count may be
# per connection: (shard count, when read); a cache, so a connection's death drops it
_counts: weakref.WeakKeyDictionary[psycopg.Connection, tuple[int, float]] = (
    weakref.WeakKeyDictionary()
)


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


def shard_of(mn: str, shards: int) -> int:
    """The rule shard of a device: stable across processes, machines and versions
    (crc32 of the MN, not Python's salted ``hash``)."""
    return _crc(mn) % shards if shards > 1 else 0


@lru_cache(maxsize=65536)
def _crc(mn: str) -> int:
    return zlib.crc32(mn.encode())


def split_by_shard(
    keys: Sequence[tuple[str, str, str]], sidx: np.ndarray, heard: Sequence[str], shards: int
) -> dict[int, tuple[list[int], np.ndarray, list[int]]]:
    """Per shard with anything in it: (its series, as indices into ``keys``; the indices
    of its readings; the indices of its heard devices). Pure."""
    s_of = np.fromiter((shard_of(k[0], shards) for k in keys), np.int64, len(keys))
    r_of = s_of[sidx] if len(sidx) else np.zeros(0, np.int64)
    h_of = [shard_of(m, shards) for m in heard]
    out: dict[int, tuple[list[int], np.ndarray, list[int]]] = {}
    for k in sorted({*s_of[np.unique(sidx)].tolist(), *h_of}) if len(keys) else sorted(set(h_of)):
        out[k] = (
            np.flatnonzero(s_of == k).tolist(),
            np.flatnonzero(r_of == k),
            [i for i, h in enumerate(h_of) if h == k],
        )
    return out


# the queue row as ``queue_for_rules`` and ``reshard`` write it; the arrays travel as one
# joined string each, split by the server (see queue_for_rules)
_INSERT = """INSERT INTO rule_inbox (queued_at, shards, shard, min_received, s_mn, s_pollutant,
                                     s_kind, sidx, ts, value, received, flag, heard_mn, heard_at)
   VALUES (coalesce(%s, clock_timestamp()), %s, %s, to_timestamp(%s), string_to_array(%s, %s),
           string_to_array(%s, %s), string_to_array(%s, %s), %s, %s, %s, %s, %s,
           string_to_array(%s, %s),
           ARRAY(SELECT to_timestamp(x) FROM unnest(string_to_array(%s, ',')::float8[])
                 WITH ORDINALITY AS u (x, i) ORDER BY i))"""


def _row(
    shards: int,
    shard: int,
    keys: Sequence[tuple[str, str, str]],
    sidx: np.ndarray,
    ts: np.ndarray,
    value: np.ndarray,
    rec: np.ndarray,
    flags: str,
    heard: Sequence[tuple[str, float]],
    queued_at: datetime | None = None,
) -> tuple[object, ...]:
    """The parameters of ``_INSERT`` for one queue row (``sidx`` indexes ``keys``)."""
    first = min([*([float(rec.min())] if len(rec) else []), *(h for _, h in heard)])
    return (
        queued_at,
        shards,
        shard,
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
        flags,
        SEP.join(m for m, _ in heard),
        SEP,
        ",".join(repr(h) for _, h in heard),
    )


def _rows_by_shard(
    shards: int,
    keys: Sequence[tuple[str, str, str]],
    sidx: np.ndarray,
    ts: np.ndarray,
    value: np.ndarray,
    rec: np.ndarray,
    flags: str,
    heard: Sequence[tuple[str, float]],
    queued_at: datetime | None = None,
) -> list[tuple[object, ...]]:
    """One row's worth of readings as the queue rows of ``shards`` shards."""
    if shards == 1:
        return [_row(1, 0, keys, sidx, ts, value, rec, flags, heard, queued_at)]
    out = []
    fb = np.frombuffer(flags.encode("ascii"), np.uint8)
    for k, (series, readings, hs) in split_by_shard(
        keys, sidx, [m for m, _ in heard], shards
    ).items():
        renumber = np.full(len(keys), -1, np.int64)
        renumber[series] = np.arange(len(series))
        out.append(
            _row(
                shards,
                k,
                [keys[i] for i in series],
                renumber[sidx[readings]],
                ts[readings],
                value[readings],
                rec[readings],
                fb[readings].tobytes().decode("ascii"),
                [heard[i] for i in hs],
                queued_at,
            )
        )
    return out


def _insert(conn: psycopg.Connection, rows: list[tuple[object, ...]]) -> None:
    if len(rows) == 1:
        conn.execute(_INSERT, rows[0])
    elif rows:
        with conn.cursor() as cur:
            cur.executemany(_INSERT, rows)  # pipelined: one round trip for the lot


def shard_count(conn: psycopg.Connection, max_age_s: float = SHARDS_REFRESH_S) -> int:
    """The shard count the runners lead by (``rule_shards``), read at most every
    ``max_age_s`` per connection: a row queued by a count just replaced is split again
    by the runners (``reshard``), so a stale count costs work, never correctness."""
    now = time.monotonic()
    got = _counts.get(conn)
    if got is not None and now - got[1] < max_age_s:
        return got[0]
    row = conn.execute("SELECT count FROM rule_shards").fetchone()
    n = int(row[0]) if row else 1
    _counts[conn] = (n, now)
    return n


def set_shard_count(conn: psycopg.Connection, shards: int) -> int | None:
    """Record the runners' shard count; the previous one if it changed, else None."""
    row = conn.execute(
        """UPDATE rule_shards n SET count = %s FROM (SELECT count FROM rule_shards) o
           WHERE n.count <> %s RETURNING o.count""",
        (shards, shards),
    ).fetchone()
    _counts.pop(conn, None)
    return int(row[0]) if row else None


_STAT = attrgetter("stat")
_KEY = attrgetter("mn", "pollutant", "kind")
_TS = attrgetter("ts")
_VALUE = attrgetter("value")
_FLAG = attrgetter("flag")


def _epoch(times: Sequence[datetime]) -> np.ndarray:
    """Epoch seconds of each time, each distinct time converted once."""
    seconds = {t: t.timestamp() for t in dict.fromkeys(times)}
    return np.fromiter(map(seconds.__getitem__, times), "<f8", len(times))


def queue_for_rules(
    conn: psycopg.Connection,
    new: Sequence[Reading],
    received: Sequence[datetime],
    heard: Mapping[str, datetime],
) -> None:
    """Queue primary readings (not min/max/cou… beside an average) and who was heard;
    ``received[i]`` is when ingest received ``new[i]``. One row per rule shard with
    anything in it (one row when there is one shard, the default)."""
    if any(map(_STAT, new)):  # statistics beside an average are not judged
        kept = [(r, at) for r, at in zip(new, received, strict=True) if not r.stat]
        new, received = [r for r, _ in kept], [at for _, at in kept]
    elif len(new) != len(received):
        raise ValueError("a receive time per reading")
    # Attribute by attribute, in C (``map``), not reading by reading in Python: this ran
    # in the writer thread, a Python loop over the 20,000 readings of a batch. The kind
    # is a StrEnum: hashed, compared and joined as its text, so it serves in the key as
    # it is. A message's readings share one timestamp object and one receive time, so
    # each distinct one is converted once (datetimes cache their hash).
    keys = list(map(_KEY, new))
    index = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    sidx = list(map(index.__getitem__, keys))
    ts = _epoch(list(map(_TS, new)))
    rec = _epoch(received)
    if not sidx and not heard:
        return
    # The arrays travel as one joined string each, split by the server: psycopg dumps a
    # Python list element by element, which cost ingest several per cent of its CPU for
    # the thousands of series in a batch. Device numbers, pollutant codes and kinds are
    # validated alphanumerics, so the separator cannot occur in them.
    _insert(
        conn,
        _rows_by_shard(
            shard_count(conn),
            list(index),
            np.asarray(sidx, np.int64),
            ts,
            np.fromiter(map(_VALUE, new), "<f8", len(new)),
            rec,
            "".join(map(_FLAG, new)),
            [(m, h.timestamp()) for m, h in heard.items()],
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
    *,
    shards: int = 1,
    shard: int = 0,
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
    read besides. Only rows of ``shard`` (split by ``shards``) are taken: its devices'
    readings are all there once rows split by another count are split again (``reshard``).
    """
    cut = watermark - reorder
    rows = conn.execute(
        f"""SELECT {_COLUMNS} FROM rule_inbox
            WHERE shards = %s AND shard = %s AND min_received < %s
            ORDER BY min_received, id LIMIT %s FOR UPDATE SKIP LOCKED""",
        (shards, shard, cut, limit),
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
            """SELECT id, ts FROM rule_inbox
               WHERE shards = %s AND shard = %s AND min_received < %s AND NOT id = ANY(%s)
               ORDER BY min_received, id""",  # read only: locked below if taken
            (shards, shard, cut + reorder, [p.rid for p in parsed]),
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


def reshard(conn: psycopg.Connection, shards: int, before: datetime) -> int:
    """Split again, by ``shards``, the queue rows received before ``before`` that were
    split by another count (queued before the count changed, or by a worker that has
    not read the new count yet); returns how many rows it split.

    Runs in the judging transaction, before ``take``, and waits for rows another runner
    is splitting: whichever shard a split row's readings land in, they are in the queue,
    in their place (their receive times kept), before any newer reading of their device
    can be taken. The rows keep their ``queued_at``, so the runner's lag stays true."""
    rows = conn.execute(
        f"""SELECT {_COLUMNS}, queued_at FROM rule_inbox
            WHERE (shards < %s OR shards > %s) AND min_received < %s
            ORDER BY min_received, id FOR UPDATE""",
        (shards, shards, before),
    ).fetchall()
    if not rows:
        return 0
    out: list[tuple[object, ...]] = []
    for row in rows:
        s_mn, s_pol, s_kind = (x.split(SEP) if x else [] for x in row[2:5])
        keys = list(zip(s_mn, s_pol, s_kind, strict=True))
        hmn, hat = row[10], row[11]
        out.extend(
            _rows_by_shard(
                shards,
                keys,
                np.frombuffer(row[5], "<i4").astype(np.int64),
                np.frombuffer(row[6], "<f8"),
                np.frombuffer(row[7], "<f8"),
                np.frombuffer(row[8], "<f8"),
                row[9],
                [(m, a.timestamp()) for m, a in zip(hmn, hat, strict=True)],
                row[12],
            )
        )
    conn.execute("DELETE FROM rule_inbox WHERE id = ANY(%s)", ([r[0] for r in rows],))
    _insert(conn, out)
    return len(rows)


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
