"""The CSV replay parser: columns, mapping, flags, zones, and a clear line number for
every way a file can be wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from offsite.simulators.errors import ReplayError
from offsite.simulators.replay import parse_csv, parse_map

CST = timezone(timedelta(hours=8))

GOOD = """time,SO2,SO2_flag,a19001
2026-11-26T08:00:00+08:00,12.5,,8.1
2026-11-26T08:01:00+08:00,12.7,M,8.0

2026-11-26T08:02:00Z,,,8.2
"""


def test_parses_values_mapping_flags_and_blank_cells() -> None:
    recs = parse_csv(GOOD, parse_map("SO2=a21026"))
    assert [r.line for r in recs] == [2, 3, 5]
    assert recs[0].ts == datetime(2026, 11, 26, 8, 0, tzinfo=CST)
    assert recs[0].values == {"a21026": 12.5, "a19001": 8.1} and recs[0].flags == {}
    assert recs[1].flags == {"a21026": "M"}
    assert recs[2].values == {"a19001": 8.2}  # an empty cell: not reported
    assert recs[2].ts == datetime(2026, 11, 26, 8, 2, tzinfo=UTC)


def test_header_of_codes_needs_no_map_and_naive_times_take_the_given_zone() -> None:
    recs = parse_csv(["ts,w01018,w01001\n", "2026-11-26 08:00:00,25,7.1\n"], None, CST)
    assert recs[0].ts == datetime(2026, 11, 26, 8, tzinfo=CST)
    assert recs[0].values == {"w01018": 25.0, "w01001": 7.1}


def test_parse_map() -> None:
    assert parse_map("SO2=a21026, NOx = a21002,") == {"SO2": "a21026", "NOx": "a21002"}
    assert parse_map(None) == {}
    for bad in ("SO2", "SO2=", "SO2=sulphur", "A=a21026,A=a21002"):
        with pytest.raises(ReplayError):
            parse_map(bad)


@pytest.mark.parametrize(
    ("text", "mapping", "message"),
    [
        ("", None, "line 1: the file is empty"),
        ("time,SO2\n2026-11-26T08:00:00Z,1\n", None, "line 1: columns ['SO2'] are not HJ 212"),
        ("time,a21026\n", None, "no data lines"),
        ("time\n2026-11-26T08:00:00Z\n", None, "line 1: no value columns"),
        ("time,a21026,a21026\n", None, "line 1: duplicate column"),
        ("time,a21026\n2026-11-26T08:00:00Z,1\n", {"SO2": "a21026"}, "not in the header"),
        ("time,a21026,NOx\n", {"NOx": "a21026"}, "several columns map to one"),
        ("time,a21026,x_flag\n", None, "flag columns for unknown value columns"),
        (
            "time,a21026\n2026-11-26T08:00:00Z,1\nyesterday,2\n",
            None,
            "line 3: timestamp 'yesterday'",
        ),
        (
            "time,a21026\n2026-11-26T08:00:00,1\n",
            None,
            "line 2: timestamp '2026-11-26T08:00:00' has no zone",
        ),
        (
            "time,a21026\n2026-11-26T08:00:00Z,1\n2026-11-26T08:01:00Z,abc\n",
            None,
            "line 3: a21026 = 'abc' is not a number",
        ),
        ("time,a21026\n2026-11-26T08:00:00Z,nan\n", None, "line 2: a21026 = 'nan' is not a finite"),
        ("time,a21026\n2026-11-26T08:00:00Z,1,2\n", None, "line 2: 3 cells, the header has 2"),
        (
            "time,a21026,a21026_flag\n2026-11-26T08:00:00Z,1,Q\n",
            None,
            "line 2: a21026_flag = 'Q' is not an HJ 212 data flag",
        ),
        (
            "time,a21026,a21026_flag\n2026-11-26T08:00:00Z,,M\n",
            None,
            "line 2: flag 'M' for a21026 without a value",
        ),
        ("time,a21026,a19001\n2026-11-26T08:00:00Z,,\n", None, "line 2: no values"),
        (
            "time,a21026\n2026-11-26T08:05:00Z,1\n2026-11-26T08:00:00Z,2\n",
            None,
            "line 3: time goes back",
        ),
        ('time,a21026\n"2026-11-26T08:00:00Z,1\n', None, "line 2: 1 cells, the header has 2"),
    ],
)
def test_bad_files_name_the_line(text: str, mapping: dict | None, message: str) -> None:
    with pytest.raises(ReplayError) as info:
        parse_csv(text, mapping)
    assert message in str(info.value)
