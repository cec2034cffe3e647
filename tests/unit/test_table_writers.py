"""One writer per table: every SQL statement that changes a table (INSERT, UPDATE, DELETE,
COPY, TRUNCATE) lives in that table's one owner module.

Two writers of one table drift apart (the alert lifecycle once had two, and only one of
them kept the events and the NOTIFY in step). The scan reads the string literals of the
source, docstrings aside, so a statement split over f-strings or constants is still seen
where its text is written. A new table needs an owner here before it can be written.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# the folders that install as the package (pyproject's package-dir)
FOLDERS = ("core", "rules", "store", "ingest", "runner", "api", "simulators", "offsite")
# bench fills throw-away databases with synthetic history at bulk speed, outside any owner
EXEMPT = ("offsite/bench/",)

OWNERS: dict[str, str] = {
    "alerts": "store/alerts.py",
    "alert_events": "store/alerts.py",
    "audit_log": "store/audit.py",
    "cases": "store/cases.py",
    "case_alerts": "store/cases.py",
    "case_steps": "store/cases.py",
    "case_responses": "store/cases.py",
    "case_attachments": "store/cases.py",
    "notifications": "store/notices.py",
    "webhook_outbox": "store/notices.py",
    "dead_letters": "store/dead_letters.py",
    "readings": "store/readings.py",
    "reading_conflicts": "store/conflicts.py",
    "spool_marks": "store/spool_marks.py",
    "hj212_split_parts": "store/split_parts.py",
    "readings_stage": "store/readings.py",
    "device_status": "store/readings.py",
    "readings_hourly": "store/rollups.py",
    "enterprises": "store/registry.py",
    "points": "store/registry.py",
    "point_limits": "store/registry.py",
    "devices": "store/registry.py",
    "ingest_workers": "store/workers.py",
    "packets": "store/packets.py",
    "rule_inbox": "store/rule_inbox.py",
    "schema_migrations": "store/migrate.py",
    "users": "store/users.py",
    "api_tokens": "store/users.py",
    # written only by the API, each by its resource's query module
    "inspection_tasks": "api/queries/tasks.py",
    "invitations": "api/queries/invitations.py",
    "no_disturbance": "api/queries/visit_guard.py",
    "visit_refusals": "api/queries/visit_guard.py",
    "visits": "api/queries/visits.py",
    "visit_inspectors": "api/queries/visits.py",
    "visit_photos": "api/queries/visits.py",
}

_WRITE = re.compile(
    r"\b(?:INSERT\s+INTO|DELETE\s+FROM|TRUNCATE(?:\s+TABLE)?)\s+(\w+)"
    r"|\bUPDATE\s+(\w+)\s+(?:AS\s+\w+\s+)?SET\b"
    r"|\bCOPY\s+(\w+)\s*(?:\(|FROM\b)",
    re.IGNORECASE,
)


def _docstrings(tree: ast.Module) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def _sql_text(source: str) -> str:
    """Every string literal of the module (f-strings' literal parts too), docstrings aside."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    parts = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and id(node) not in skip:
            if isinstance(node.value, str):
                parts.append(node.value)
            elif isinstance(node.value, bytes):
                parts.append(node.value.decode(errors="replace"))
    return "\n".join(parts)


def writers() -> dict[str, set[str]]:
    """table → the modules whose SQL writes it."""
    out: dict[str, set[str]] = defaultdict(set)
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith(EXEMPT):
                continue
            for m in _WRITE.finditer(_sql_text(path.read_text())):
                table = next(g for g in m.groups() if g).lower()
                out[table].add(rel)
    return out


def test_every_table_is_written_by_its_one_owner():
    found = writers()
    assert found, "the scan found no SQL writes at all: the pattern is broken"
    wrong = {
        table: sorted(mods - {OWNERS.get(table, "")})
        for table, mods in found.items()
        if mods - {OWNERS.get(table, "")}
    }
    assert not wrong, (
        f"tables written outside their owner module (OWNERS; a new table needs one): {wrong}"
    )


def test_the_scan_sees_the_shapes_writes_take():
    sql = _sql_text(
        '''
X = """INSERT INTO alerts AS a (x) VALUES (1) ON CONFLICT DO UPDATE SET x = 1"""
Y = f"UPDATE cases SET state = {z} WHERE id = 1"
Z = "UPDATE alerts AS a SET n = 1; DELETE FROM visits; COPY readings_stage (a) FROM STDIN"
W = "SELECT 1 FROM devices FOR UPDATE SKIP LOCKED"
'''
    )
    tables = {next(g for g in m.groups() if g) for m in _WRITE.finditer(sql)}
    assert tables == {"alerts", "cases", "visits", "readings_stage"}


def test_owners_name_real_modules():
    missing = {t: m for t, m in OWNERS.items() if not (ROOT / m).is_file()}
    assert not missing
