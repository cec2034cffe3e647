"""The tamper-evident audit log: append inside the caller's transaction, verify the chain.

Each row commits to the one before it: ``hash = sha256(prev_hash || canonical JSON of
the row)``, and ``seq`` counts the rows without gaps. Whoever edits a row out of band
must recompute every later hash — and cannot hide it from anyone who kept a copy of the
head (``verify`` reports it). Editing, inserting or deleting a row in the middle breaks
the chain at that row; ``check_chain`` names the first row where it breaks.

Appends are serialised by a transaction-scoped advisory lock, so the chain stays a
chain with any number of API processes; the lock is held only until the caller's
transaction commits, which is why the caller's transaction should be short.

What the chain alone cannot see: deleting the newest rows (the chain is still a chain),
or editing a row and recomputing every hash after it (still a chain). Both are seen
against a *kept head*: ``offsite audit head`` prints the newest row's sequence and hash
(``Head``) for an operator to store where the database's owner cannot edit it, and
``offsite audit verify --head FILE`` checks that the log still reaches that row and that
the row still has that hash. Rows appended since are fine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection

from offsite.store.errors import StoreError

GENESIS = bytes(32)
_LOCK_KEY = 0x0FF5A0D  # arbitrary, constant: "offsite audit"
_HEAD = (
    "SELECT now(), (SELECT seq FROM audit_log ORDER BY seq DESC LIMIT 1), "
    "(SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1)"
)
_INSERT = """INSERT INTO audit_log (seq, at, actor, action, subject, data, prev_hash, hash)
             VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"""


class AuditError(StoreError):
    """An audit entry could not be written (its data is not JSON)."""


@dataclass(frozen=True, slots=True)
class AuditRow:
    seq: int
    at: datetime
    actor: str
    action: str
    subject: str
    data: str  # canonical JSON text, hashed as stored
    prev_hash: bytes
    hash: bytes


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first row at which the chain stops being a chain, and why."""

    seq: int
    reason: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    rows: int
    head_seq: int
    head_hash: str
    broken: ChainBreak | None


@dataclass(frozen=True, slots=True)
class Head:
    """A row of the chain as an operator kept it: its sequence and hash (hex)."""

    seq: int
    hash: str

    def to_json(self) -> str:
        return json.dumps({"seq": self.seq, "hash": self.hash}, sort_keys=True)

    @classmethod
    def from_text(cls, text: str) -> Head:
        """Read what ``offsite audit head`` printed: ``{"seq": N, "hash": "<64 hex>"}``
        (or its plain form ``N <hash>``). Raises AuditError."""
        text = text.strip()
        try:
            if text.startswith("{"):
                raw = json.loads(text)
                seq, digest = raw["seq"], raw["hash"]
            else:
                first, second = text.split()
                seq, digest = int(first), second
        except (ValueError, KeyError, TypeError) as exc:
            raise AuditError(
                'a kept head is {"seq": N, "hash": "<64 hex digits>"}, as `offsite audit '
                "head` prints it"
            ) from exc
        if (
            not isinstance(seq, int)
            or isinstance(seq, bool)
            or seq < 0
            or not isinstance(digest, str)
            or len(digest) != 64
            or any(c not in "0123456789abcdef" for c in digest.lower())
        ):
            raise AuditError("a kept head needs a sequence ≥ 0 and a 64-digit hex hash")
        return cls(seq, digest.lower())


def canonical_data(data: Mapping[str, Any]) -> str:
    try:
        return json.dumps(
            data,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
            default=_default,
        )
    except (TypeError, ValueError) as exc:
        raise AuditError(f"audit data is not JSON: {exc}") from exc


def _default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def row_hash(
    prev_hash: bytes, seq: int, at: datetime, actor: str, action: str, subject: str, data: str
) -> bytes:
    """sha256(prev_hash || canonical JSON of the row). The time is hashed in UTC with
    microseconds: exactly what ``timestamptz`` gives back, whatever the session zone."""
    body = json.dumps(
        {
            "seq": seq,
            "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
            "actor": actor,
            "action": action,
            "subject": subject,
            "data": data,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(prev_hash + body.encode("utf-8")).digest()


def check_chain(rows: Iterable[AuditRow], kept: Head | None = None) -> ChainReport:
    """Walk rows in ``seq`` order; stop at the first that does not follow from the last.

    With ``kept`` (a head stored elsewhere), an intact chain must also still reach the
    kept row and hold the kept hash there: otherwise the newest rows were deleted, or
    the chain was rewritten and its hashes recomputed.
    """
    report = _walk(rows, kept)
    if report.broken is not None or kept is None:
        return report
    if report.head_seq < kept.seq:
        return replace(
            report,
            broken=ChainBreak(
                report.head_seq + 1,
                f"the log ends at row {report.head_seq}, but the kept head is row {kept.seq}: "
                f"rows {report.head_seq + 1}–{kept.seq} were deleted out of band",
            ),
        )
    return report


def _walk(rows: Iterable[AuditRow], kept: Head | None) -> ChainReport:
    prev, expected, n = GENESIS, 1, 0
    if kept is not None and kept.seq == 0 and kept.hash != GENESIS.hex():
        return ChainReport(0, 0, prev.hex(), ChainBreak(0, "a kept head of row 0 is the genesis"))
    for r in rows:
        if r.seq != expected:
            what = "deleted" if r.seq > expected else "inserted (sequence repeats or goes back)"
            return ChainReport(
                n,
                expected - 1,
                prev.hex(),
                ChainBreak(r.seq, f"expected row {expected} here: rows were {what} out of band"),
            )
        if r.prev_hash != prev:
            return ChainReport(
                n,
                expected - 1,
                prev.hex(),
                ChainBreak(
                    r.seq,
                    "prev_hash does not match the row before: that row was edited, or "
                    "this one inserted, out of band",
                ),
            )
        if row_hash(r.prev_hash, r.seq, r.at, r.actor, r.action, r.subject, r.data) != r.hash:
            return ChainReport(
                n,
                expected - 1,
                prev.hex(),
                ChainBreak(
                    r.seq, "hash does not match the row's content: the row was edited out of band"
                ),
            )
        if kept is not None and r.seq == kept.seq and r.hash.hex() != kept.hash:
            return ChainReport(
                n,
                expected - 1,
                prev.hex(),
                ChainBreak(
                    r.seq,
                    f"row {r.seq} no longer has the kept head's hash: the chain up to it was "
                    "rewritten and its hashes recomputed out of band",
                ),
            )
        prev, expected, n = r.hash, expected + 1, n + 1
    return ChainReport(n, expected - 1, prev.hex(), None)


def _entry(
    head: tuple[Any, ...] | None, actor: str, action: str, subject: str, data: Mapping[str, Any]
) -> tuple[Any, ...]:
    assert head is not None
    now, last_seq, last_hash = head
    seq = (last_seq or 0) + 1
    prev = bytes(last_hash) if last_hash is not None else GENESIS
    text = canonical_data(data)
    return (
        seq,
        now,
        actor,
        action,
        subject,
        text,
        prev,
        row_hash(prev, seq, now, actor, action, subject, text),
    )


async def append(
    conn: AsyncConnection,
    actor: str,
    action: str,
    subject: str,
    data: Mapping[str, Any] | None = None,
) -> int:
    """Append one entry inside the caller's transaction (or its own); return its seq.

    ``action`` is a dotted verb (``visit.check_in``, ``alert.acknowledge``,
    ``device.revoke``…), ``subject`` what it acted on (``visit:12``, ``device:<mn>``).
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        cur = await conn.execute(_HEAD)
        row = _entry(await cur.fetchone(), actor, action, subject, data or {})
        await conn.execute(_INSERT, row)
    return int(row[0])


def append_sync(
    conn: psycopg.Connection,
    actor: str,
    action: str,
    subject: str,
    data: Mapping[str, Any] | None = None,
) -> int:
    """``append`` for synchronous callers (the CLI, registry loading)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        row = _entry(conn.execute(_HEAD).fetchone(), actor, action, subject, data or {})
        conn.execute(_INSERT, row)
    return int(row[0])


def verify(conn: psycopg.Connection, kept: Head | None = None) -> ChainReport:
    """Read the whole log in order (server-side cursor: constant memory) and check it,
    against a kept head if one is given."""
    with conn.transaction(), conn.cursor(name="offsite_audit_verify") as cur:
        cur.itersize = 5000
        cur.execute(
            "SELECT seq, at, actor, action, subject, data, prev_hash, hash "
            "FROM audit_log ORDER BY seq"
        )
        return check_chain(
            (
                AuditRow(s, at, ac, act, sub, d, bytes(p), bytes(h))
                for s, at, ac, act, sub, d, p, h in cur
            ),
            kept,
        )
