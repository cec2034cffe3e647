"""A recorded series (CSV) as device messages. Pure: text in, records out.

The CSV has a header row; one column holds the timestamp (``ts``, ``timestamp``,
``time``, ``datetime`` or ``DataTime``, else the first column), the others values.
A value column is named by its HJ 212 pollutant code, or mapped to one
(``SO2=a21026``); ``<column>_flag`` holds that column's HJ 212 data flag (empty =
N). An empty value cell means the device did not report that value on that line.

Timestamps are ISO 8601; one without a zone is read in ``default_tz`` when given
and refused otherwise (a guessed zone would misplace the whole series by hours).
Every problem is reported with its line number, and nothing is replayed from a
file that has one: a half-published series is worse than none.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from offsite.core.readings import FLAGS
from offsite.core.registry import POLLUTANT_RE
from offsite.simulators.errors import ReplayError

TS_COLUMNS = ("ts", "timestamp", "time", "datetime", "datatime")
FLAG_SUFFIX = "_flag"


@dataclass(frozen=True, slots=True)
class Record:
    """One line of the recording: what the device sent at ``ts``."""

    line: int
    ts: datetime
    values: dict[str, float]
    flags: dict[str, str] = field(default_factory=dict)


def parse_map(text: str | None) -> dict[str, str]:
    """``"SO2=a21026,NOx=a21002"`` → ``{"SO2": "a21026", "NOx": "a21002"}``."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        col, sep, code = part.partition("=")
        col, code = col.strip(), code.strip()
        if not sep or not col or not code:
            raise ReplayError(f"--map entry {part.strip()!r} is not COLUMN=CODE")
        if not POLLUTANT_RE.match(code):
            raise ReplayError(f"--map {col}={code}: {code!r} is not an HJ 212 pollutant code")
        if col in out:
            raise ReplayError(f"--map names column {col!r} twice")
        out[col] = code
    return out


@dataclass(frozen=True, slots=True)
class _Layout:
    ts_index: int
    value_cols: tuple[tuple[int, str, str], ...]  # (index, column name, pollutant code)
    flag_of: Mapping[str, int]  # column name → index of its flag column


def _layout(header: list[str], mapping: Mapping[str, str]) -> _Layout:
    names = [h.strip() for h in header]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ReplayError(f"line 1: duplicate column names {dup}")
    lowered = [n.lower() for n in names]
    ts_index = next((lowered.index(c) for c in TS_COLUMNS if c in lowered), 0)
    flag_of = {
        n[: -len(FLAG_SUFFIX)]: i
        for i, n in enumerate(names)
        if n.lower().endswith(FLAG_SUFFIX) and i != ts_index
    }
    unknown_maps = sorted(set(mapping) - set(names))
    if unknown_maps:
        raise ReplayError(f"--map names columns not in the header: {unknown_maps}")
    cols, bad = [], []
    for i, n in enumerate(names):
        if i == ts_index or i in flag_of.values():
            continue
        code = mapping.get(n, n)
        if not POLLUTANT_RE.match(code):
            bad.append(n)
        cols.append((i, n, code))
    if bad:
        raise ReplayError(
            f"line 1: columns {bad} are not HJ 212 pollutant codes; map them "
            f"with --map {bad[0]}=<code>"
        )
    if not cols:
        raise ReplayError("line 1: no value columns besides the timestamp")
    codes = [c for _, _, c in cols]
    if len(set(codes)) != len(codes):
        raise ReplayError(f"line 1: several columns map to one pollutant ({codes})")
    orphans = sorted(set(flag_of) - {n for _, n, _ in cols})
    if orphans:
        raise ReplayError(f"line 1: flag columns for unknown value columns {orphans}")
    return _Layout(ts_index, tuple(cols), flag_of)


def _timestamp(cell: str, line: int, default_tz: tzinfo | None) -> datetime:
    text = cell.strip()
    try:
        ts = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ReplayError(f"line {line}: timestamp {text!r} is not ISO 8601") from exc
    if ts.tzinfo is None:
        if default_tz is None:
            raise ReplayError(
                f"line {line}: timestamp {text!r} has no zone; add one "
                f"(Z, +08:00) or give the zone of the file (--tz)"
            )
        ts = ts.replace(tzinfo=default_tz)
    return ts


def _record(
    row: list[str], line: int, lay: _Layout, width: int, default_tz: tzinfo | None
) -> Record:
    if len(row) != width:
        raise ReplayError(f"line {line}: {len(row)} cells, the header has {width}")
    ts = _timestamp(row[lay.ts_index], line, default_tz)
    values: dict[str, float] = {}
    flags: dict[str, str] = {}
    for i, name, code in lay.value_cols:
        cell = row[i].strip()
        fi = lay.flag_of.get(name)
        flag = row[fi].strip() if fi is not None else ""
        if not cell:
            if flag:
                raise ReplayError(f"line {line}: flag {flag!r} for {name} without a value")
            continue
        try:
            v = float(cell)
        except ValueError as exc:
            raise ReplayError(f"line {line}: {name} = {cell!r} is not a number") from exc
        if not math.isfinite(v):
            raise ReplayError(f"line {line}: {name} = {cell!r} is not a finite number")
        values[code] = v
        if flag and flag != "N":
            if flag not in FLAGS:
                raise ReplayError(
                    f"line {line}: {name}{FLAG_SUFFIX} = {flag!r} is not an "
                    f"HJ 212 data flag ({''.join(sorted(FLAGS))})"
                )
            flags[code] = flag
    if not values:
        raise ReplayError(f"line {line}: no values")
    return Record(line, ts, values, flags)


def parse_csv(
    text: str | Iterable[str],
    mapping: Mapping[str, str] | None = None,
    default_tz: tzinfo | None = None,
) -> list[Record]:
    """Every line of the recording as a ``Record``, in file order (time must not go back).

    Raises ``ReplayError`` naming the line of the first problem.
    """
    lines = io.StringIO(text) if isinstance(text, str) else text
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise ReplayError("line 1: the file is empty or has no header row")
        lay = _layout(header, mapping or {})
        out: list[Record] = []
        for row in reader:
            line = reader.line_num
            if not any(c.strip() for c in row):
                continue  # blank line
            rec = _record(row, line, lay, len(header), default_tz)
            if out and rec.ts < out[-1].ts:
                raise ReplayError(
                    f"line {line}: time goes back ({rec.ts.isoformat()} after "
                    f"{out[-1].ts.isoformat()} on line {out[-1].line})"
                )
            out.append(rec)
    except csv.Error as exc:
        raise ReplayError(f"line {reader.line_num}: unreadable CSV: {exc}") from exc
    if not out:
        raise ReplayError("the file has a header but no data lines")
    return out
