"""The monthly report of one enterprise: what its data, alerts, cases and visits came to.

Readings come from the hourly rollup (``readings_hourly``), never the raw rows: an hour
counts for exceedance only when its valid (flag N) values cover at least three quarters
of it (HJ 212-2017 Annex D: 45 valid minutes of 60), and it is over the limit when their
average is above the point's permit limit. At a point with a reference O2 (flue gas) the
average is converted with the hour's average O2 of the same device,
C × (21 − O2ref) / (21 − O2); an hour without valid O2 there cannot be judged and is not
valid. (The rollups keep no minutes, so this converts the hour, not each minute as the
``exceedance_1h`` rule does; the two differ a little when O2 swings within the hour.)
The data-capture rate is valid values over the values the device's interval promises in
the month so far (to ``now``), counted from when the device was expected to report (its
registration, or its first reading if earlier). Months are UTC calendar months, as the
rollups' buckets are.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

VALID_HOUR_SHARE = 0.75
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def month_range(month: str) -> tuple[datetime, datetime]:
    """'2026-11' → [2026-11-01, 2026-12-01) UTC; ValueError for anything else."""
    m = _MONTH.match(month)
    if not m:
        raise ValueError(f"month must be YYYY-MM, not {month!r}")
    y, mo = int(m.group(1)), int(m.group(2))
    start = datetime(y, mo, 1, tzinfo=UTC)
    end = datetime(y + (mo == 12), mo % 12 + 1, 1, tzinfo=UTC)
    return start, end


async def _rows(conn: AsyncConnection, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql.encode(), args)
        return await cur.fetchall()


async def exceedances(
    conn: AsyncConnection, enterprise: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    return await _rows(
        conn,
        """
        WITH hours AS (
            SELECT d.mn, l.pollutant, d.point_id, l.limit_value, h.bucket,
                   h.n_valid * d.interval_s >= %s * 3600
                       AND (p.o2_ref IS NULL OR o.total_valid / o.n_valid < 21) AS valid,
                   CASE WHEN p.o2_ref IS NULL OR l.pollutant = 'a19001'
                        THEN h.total_valid / h.n_valid
                        ELSE h.total_valid / h.n_valid * (21 - p.o2_ref)
                             / (21 - o.total_valid / o.n_valid)
                   END AS avg
            FROM points p JOIN point_limits l ON l.point_id = p.id
            JOIN devices d ON d.point_id = p.id
            LEFT JOIN readings_hourly h ON h.mn = d.mn AND h.pollutant = l.pollutant
                 AND h.kind = 'rtd' AND h.bucket >= %s AND h.bucket < %s AND h.n_valid > 0
            LEFT JOIN readings_hourly o ON p.o2_ref IS NOT NULL AND o.mn = d.mn
                 AND o.pollutant = 'a19001' AND o.kind = 'rtd' AND o.bucket = h.bucket
                 AND o.n_valid > 0
            WHERE p.enterprise_id = %s)
        SELECT mn, pollutant, point_id, limit_value,
               count(*) FILTER (WHERE valid) AS valid_hours,
               count(*) FILTER (WHERE valid AND avg > limit_value) AS hours_over_limit,
               max(avg) FILTER (WHERE valid) AS worst_hour_avg
        FROM hours GROUP BY mn, pollutant, point_id, limit_value
        ORDER BY mn, pollutant""",
        (VALID_HOUR_SHARE, start, end, enterprise),
    )


def expected_values(
    start: datetime,
    until: datetime,
    registered_at: datetime,
    first_reading: datetime | None,
    interval_s: float,
) -> float:
    """Values a device's interval promises from when it was expected to report — its
    registration, or its first reading if history came earlier — not from the month's
    start (a device registered on the 20th is not 65 % missing)."""
    since = registered_at if first_reading is None else min(registered_at, first_reading)
    span = (until - max(start, since)).total_seconds()
    return max(0.0, span / interval_s)


async def capture(
    conn: AsyncConnection, enterprise: str, start: datetime, end: datetime, now: datetime
) -> list[dict[str, Any]]:
    until = min(end, max(start, now))
    rows = await _rows(
        conn,
        """
        SELECT d.mn, h.pollutant, d.interval_s, d.registered_at,
               (SELECT min(f.bucket) FROM readings_hourly f
                WHERE f.mn = d.mn AND f.kind = 'rtd') AS first_bucket,
               sum(h.n_valid)::bigint AS valid_values, sum(h.n)::bigint AS values
        FROM points p JOIN devices d ON d.point_id = p.id
        JOIN readings_hourly h ON h.mn = d.mn AND h.kind = 'rtd'
             AND h.bucket >= %s AND h.bucket < %s
        WHERE p.enterprise_id = %s
        GROUP BY d.mn, h.pollutant, d.interval_s, d.registered_at
        ORDER BY d.mn, h.pollutant""",
        (start, until, enterprise),
    )
    for r in rows:
        expected = expected_values(
            start, until, r.pop("registered_at"), r.pop("first_bucket"), r.pop("interval_s")
        )
        r["expected_values"] = round(expected)
        r["capture_rate"] = None if expected <= 0 else min(1.0, r["valid_values"] / expected)
    return rows


async def alerts(
    conn: AsyncConnection, enterprise: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    return await _rows(
        conn,
        """
        SELECT a.rule, a.state, count(*) AS alerts
        FROM alerts a JOIN devices d ON d.mn = a.mn JOIN points p ON p.id = d.point_id
        WHERE p.enterprise_id = %s AND a.first_seen >= %s AND a.first_seen < %s
        GROUP BY a.rule, a.state ORDER BY a.rule, a.state""",
        (enterprise, start, end),
    )


async def cases(
    conn: AsyncConnection, enterprise: str, start: datetime, end: datetime, now: datetime
) -> list[dict[str, Any]]:
    rows = await _rows(
        conn,
        """
        SELECT c.id, c.title, c.state, c.opened_by, c.opened_at, c.closed_at,
               c.escalated_at IS NOT NULL AS escalated,
               (SELECT count(*) FROM case_alerts x WHERE x.case_id = c.id) AS alerts,
               (SELECT count(*) FROM case_responses r WHERE r.case_id = c.id) AS responses,
               (SELECT count(*) FROM inspection_tasks t WHERE t.case_id = c.id) AS tasks
        FROM cases c WHERE c.enterprise_id = %s AND c.opened_at >= %s AND c.opened_at < %s
        ORDER BY c.id""",
        (enterprise, start, end),
    )
    for r in rows:
        stop = r["closed_at"] or now
        r["duration_h"] = round((stop - r["opened_at"]).total_seconds() / 3600, 3)
    return rows


async def visits(
    conn: AsyncConnection, enterprise: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    return await _rows(
        conn,
        """
        SELECT v.id, v.kind, v.kind = 'advisory' AS advisory, v.checked_in_at,
               v.checked_out_at, v.task_id, v.case_id, v.justification, v.findings,
               v.rating, v.rating_comment,
               coalesce((SELECT array_agg(i.inspector_id ORDER BY i.inspector_id)
                         FROM visit_inspectors i WHERE i.visit_id = v.id),
                        ARRAY[v.inspector_id]) AS inspectors,
               coalesce((SELECT array_agg(DISTINCT i.department)
                         FROM visit_inspectors i WHERE i.visit_id = v.id), '{}') AS departments
        FROM visits v WHERE v.enterprise_id = %s AND v.checked_in_at >= %s
          AND v.checked_in_at < %s ORDER BY v.id""",
        (enterprise, start, end),
    )


async def refusals(conn: AsyncConnection, enterprise: str, start: datetime, end: datetime) -> int:
    cur = await conn.execute(
        """SELECT count(*) FROM visit_refusals WHERE enterprise_id = %s
                                AND at >= %s AND at < %s""",
        (enterprise, start, end),
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def monthly_report(
    conn: AsyncConnection, enterprise: str, month: str, now: datetime
) -> dict[str, Any]:
    """Everything of the month, then the summary built from it (``summarise``)."""
    start, end = month_range(month)
    report = {
        "enterprise_id": enterprise,
        "month": month,
        "start": start,
        "end": end,
        "generated_at": now,
        "exceedances": await exceedances(conn, enterprise, start, end),
        "capture": await capture(conn, enterprise, start, end, now),
        "alerts": await alerts(conn, enterprise, start, end),
        "cases": await cases(conn, enterprise, start, end, now),
        "visits": await visits(conn, enterprise, start, end),
        "visit_refusals": await refusals(conn, enterprise, start, end),
    }
    report["summary"] = summarise(report)
    return report


def summarise(r: dict[str, Any]) -> dict[str, Any]:
    """The figures a reader looks for first. Pure: derived from the report's own lists."""
    alerts_by_rule: dict[str, dict[str, int]] = {}
    for a in r["alerts"]:
        alerts_by_rule.setdefault(a["rule"], {})[a["state"]] = a["alerts"]
    closed = [c["duration_h"] for c in r["cases"] if c["state"] == "closed"]
    cases_by_state: dict[str, int] = {}
    for c in r["cases"]:
        cases_by_state[c["state"]] = cases_by_state.get(c["state"], 0) + 1
    visits_by_kind: dict[str, int] = {}
    for v in r["visits"]:
        visits_by_kind[v["kind"]] = visits_by_kind.get(v["kind"], 0) + 1
    ratings = [v["rating"] for v in r["visits"] if v["rating"] is not None]
    over: dict[str, int] = {}
    for e in r["exceedances"]:
        over[e["pollutant"]] = over.get(e["pollutant"], 0) + e["hours_over_limit"]
    rates = [c["capture_rate"] for c in r["capture"] if c["capture_rate"] is not None]
    return {
        "hours_over_limit": over,
        "capture_rate_min": min(rates) if rates else None,
        "alerts_by_rule": alerts_by_rule,
        "cases_by_state": cases_by_state,
        "case_mean_closed_h": round(sum(closed) / len(closed), 3) if closed else None,
        "visits_by_kind": visits_by_kind,
        "joint_visits": sum(1 for v in r["visits"] if len(v["inspectors"]) > 1),
        "advisory_visits": sum(1 for v in r["visits"] if v["advisory"]),
        "rating_mean": round(sum(ratings) / len(ratings), 2) if ratings else None,
        "ratings": len(ratings),
        "visit_refusals": r["visit_refusals"],
    }


def to_csv(r: dict[str, Any]) -> str:
    """The report as one CSV of sections: ``section,key,value,…`` rows a spreadsheet opens."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["section", "enterprise", "month", "item", "detail", "value", "note"])
    e, m = r["enterprise_id"], r["month"]
    for x in r["exceedances"]:
        w.writerow(
            [
                "exceedance",
                e,
                m,
                f"{x['mn']}/{x['pollutant']}",
                f"limit {x['limit_value']}",
                x["hours_over_limit"],
                f"{x['valid_hours']} valid hours",
            ]
        )
    for x in r["capture"]:
        w.writerow(
            [
                "capture",
                e,
                m,
                f"{x['mn']}/{x['pollutant']}",
                f"{x['valid_values']} of {x['expected_values']} expected",
                "" if x["capture_rate"] is None else f"{x['capture_rate']:.4f}",
                "",
            ]
        )
    for x in r["alerts"]:
        w.writerow(["alerts", e, m, x["rule"], x["state"], x["alerts"], ""])
    for x in r["cases"]:
        w.writerow(
            [
                "case",
                e,
                m,
                x["id"],
                x["state"],
                x["duration_h"],
                "escalated" if x["escalated"] else "",
            ]
        )
    for x in r["visits"]:
        note = "ADVISORY: not a basis for enforcement" if x["advisory"] else ""
        w.writerow(
            [
                "visit",
                e,
                m,
                x["id"],
                x["kind"],
                "" if x["rating"] is None else x["rating"],
                "; ".join(filter(None, [note, " + ".join(x["inspectors"])])),
            ]
        )
    w.writerow(["refusals", e, m, "frequency guard", "", r["visit_refusals"], ""])
    return buf.getvalue()
