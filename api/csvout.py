"""Rows → CSV text for the console's exports.

Spreadsheets execute a cell that begins with ``=``, ``+``, ``-``, ``@`` (or a tab/CR) as
a formula; a device message or a comment is text written by others, so such cells are
quoted with a leading apostrophe — except numbers, which stay numbers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping | list):
        import json

        text = json.dumps(value, default=str, ensure_ascii=False)
    else:
        text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def to_csv(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """A header of ``columns``, then each row's values in that order (missing → empty)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(columns)
    for row in rows:
        w.writerow([cell(row.get(c)) for c in columns])
    return buf.getvalue()
