"""The audit log: people's actions are chained; edits, deletions and insertions made out of
band are found by ``offsite audit verify``; the application role can only append."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC

import psycopg
import pytest

from offsite.cli import main
from offsite.store.audit import GENESIS, append_sync, verify
from tests.integration.security_fixtures import api_client, build_world

pytestmark = pytest.mark.integration


def _tamper(db_url: str, sql: str, *args: object) -> None:
    """What a database owner could do behind the application's back: switch triggers off
    for the session (superuser) and change history."""
    with psycopg.connect(db_url) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(sql, args)


def _fill(db_url: str, n: int = 5) -> None:
    with psycopg.connect(db_url) as conn:
        for i in range(n):
            append_sync(conn, "tester", "test.step", f"thing:{i}", {"i": i, "note": "ü €"})


def test_people_actions_are_audited_in_one_valid_chain(db_url: str) -> None:
    w = build_world(db_url)
    with api_client(db_url) as c:
        reg, insp = w.headers("regulator"), w.headers("inspector")
        assert (
            c.post(
                f"/api/alerts/{w.alerts['E1']}/acknowledge", headers=reg, json={"note": "on it"}
            ).status_code
            == 200
        )
        token = c.get("/api/enterprises/E1/qr.svg", headers=w.headers("admin")).headers[
            "x-offsite-scan-url"
        ]
        vid = c.post(
            "/api/visits/check-in", headers=insp, json={"token": token, "purpose": "check"}
        ).json()["id"]
        assert (
            c.post(
                f"/api/visits/{vid}/check-out", headers=insp, json={"findings": "fine"}
            ).status_code
            == 200
        )
        assert (
            c.post(
                "/api/devices",
                headers=w.headers("admin"),
                json={"mn": "NEW0001", "point_id": "E1-P1"},
            ).status_code
            == 201
        )
        assert (
            c.post(
                "/api/devices/NEW0001/revoke", headers=w.headers("admin"), json={"reason": "test"}
            ).status_code
            == 204
        )
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT actor, action, subject, data FROM audit_log "
            "WHERE action NOT IN ('user.upsert', 'token.issue', 'registry.load') "
            "ORDER BY seq"
        ).fetchall()
        report = verify(conn)
    assert [(a, act, s) for a, act, s, _ in rows] == [
        ("reg", "alert.acknowledged", f"alert:{w.alerts['E1']}"),
        ("insp", "visit.check_in", f"visit:{vid}"),
        ("insp", "visit.check_out", f"visit:{vid}"),
        ("adm", "device.onboard", "device:NEW0001"),
        ("adm", "device.revoke", "device:NEW0001"),
    ]
    assert json.loads(rows[0][3]) == {"note": "on it"}
    assert report.broken is None and report.rows > len(rows)  # users and tokens too
    with psycopg.connect(db_url) as conn:
        loaded = conn.execute(
            "SELECT data FROM audit_log WHERE action = 'registry.load'"
        ).fetchall()
    assert len(loaded) == 1
    summary = json.loads(loaded[0][0])
    assert (summary["enterprises"], summary["devices"]) == (3, 4)
    assert len(summary["sha256"]) == 64


def test_first_row_hashes_the_genesis_and_its_canonical_json(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        append_sync(conn, "a", "x.y", "s:1", {"b": 2, "a": 1})
        seq, at, prev, h, data = conn.execute(
            "SELECT seq, at, prev_hash, hash, data FROM audit_log"
        ).fetchone()  # type: ignore[misc]
    assert seq == 1 and bytes(prev) == GENESIS and data == '{"a":1,"b":2}'
    body = json.dumps(
        {
            "seq": 1,
            "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
            "actor": "a",
            "action": "x.y",
            "subject": "s:1",
            "data": data,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    assert bytes(h) == hashlib.sha256(GENESIS + body.encode()).digest()


@pytest.mark.parametrize(
    ("sql", "broken_at", "why"),
    [
        ('UPDATE audit_log SET data = \'{"i":99,"note":"ü €"}\' WHERE seq = 3', 3, "edited"),
        ("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2", 2, "edited"),
        ("UPDATE audit_log SET at = at + interval '1 second' WHERE seq = 4", 4, "edited"),
        ("DELETE FROM audit_log WHERE seq = 2", 3, "deleted"),
        ("UPDATE audit_log SET seq = seq + 100 WHERE seq = 5", 105, "deleted"),
    ],
)
def test_out_of_band_change_is_found_and_named(
    db_url: str, sql: str, broken_at: int, why: str, capsys, monkeypatch
) -> None:
    _fill(db_url)
    with psycopg.connect(db_url) as conn:
        assert verify(conn).broken is None
    _tamper(db_url, sql)
    with psycopg.connect(db_url) as conn:
        report = verify(conn)
    assert report.broken is not None and report.broken.seq == broken_at
    assert why in report.broken.reason
    monkeypatch.setenv("OFFSITE_DATABASE_URL", db_url)
    assert main(["audit", "verify"]) == 1
    assert f"BROKEN at row {broken_at}" in capsys.readouterr().out


def test_a_rewritten_row_with_a_recomputed_hash_breaks_the_next_link(db_url: str) -> None:
    """A careful forger recomputes the edited row's hash: the next row still points at the
    old one."""
    from offsite.store.audit import row_hash

    _fill(db_url)
    with psycopg.connect(db_url) as conn:
        seq, at, actor, action, subject, prev = conn.execute(
            "SELECT seq, at, actor, action, subject, prev_hash FROM audit_log WHERE seq = 2"
        ).fetchone()  # type: ignore[misc]
    forged = '{"i":1,"note":"nothing happened"}'
    _tamper(
        db_url,
        "UPDATE audit_log SET data = %s, hash = %s WHERE seq = 2",
        forged,
        row_hash(bytes(prev), seq, at, actor, action, subject, forged),
    )
    with psycopg.connect(db_url) as conn:
        report = verify(conn)
    assert report.broken is not None and report.broken.seq == 3
    assert "prev_hash" in report.broken.reason


def test_an_intact_log_verifies_from_the_cli(db_url: str, capsys, monkeypatch) -> None:
    _fill(db_url, 3)
    monkeypatch.setenv("OFFSITE_DATABASE_URL", db_url)
    assert main(["audit", "verify"]) == 0
    assert "audit: OK, 3 rows; head 3" in capsys.readouterr().out


def test_app_role_may_append_but_never_change_history(db_url: str) -> None:
    _fill(db_url, 2)
    with psycopg.connect(db_url) as conn:
        conn.execute("SET ROLE offsite_app")
        append_sync(conn, "app", "test.append", "thing:x", {})  # insert works
        conn.commit()
        for sql in (
            "UPDATE audit_log SET actor = 'x' WHERE seq = 1",
            "DELETE FROM audit_log WHERE seq = 1",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)
            conn.rollback()
            conn.execute("SET ROLE offsite_app")
        # the same role keeps ordinary rights on the other tables
        conn.execute("UPDATE enterprises SET name = name WHERE false")


def test_trigger_refuses_changes_even_to_the_tables_owner(db_url: str) -> None:
    _fill(db_url, 2)
    with psycopg.connect(db_url) as conn:
        for sql in (
            "UPDATE audit_log SET actor = 'x' WHERE seq = 1",
            "DELETE FROM audit_log WHERE seq = 2",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(sql)
            conn.rollback()
        assert verify(conn).rows == 2


# -- a kept head: what the chain alone cannot show -------------------------------------------


def _recompute_from(db_url: str, start: int, forged: str) -> None:
    """The careful forger: edit row ``start`` and recompute every hash after it, so the
    chain is a chain again."""
    from offsite.store.audit import row_hash

    with psycopg.connect(db_url) as conn:
        conn.execute("SET session_replication_role = replica")
        rows = conn.execute(
            "SELECT seq, at, actor, action, subject, data, prev_hash FROM audit_log "
            "WHERE seq >= %s ORDER BY seq",
            (start,),
        ).fetchall()
        prev = bytes(rows[0][6])
        for seq, at, actor, action, subject, data, _ in rows:
            data = forged if seq == start else data
            h = row_hash(prev, seq, at, actor, action, subject, data)
            conn.execute(
                "UPDATE audit_log SET data = %s, prev_hash = %s, hash = %s WHERE seq = %s",
                (data, prev, h, seq),
            )
            prev = h


def _kept_head(db_url: str, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OFFSITE_DATABASE_URL", db_url)
    capsys.readouterr()
    assert main(["audit", "head"]) == 0
    out = capsys.readouterr().out
    head = tmp_path / "head.json"
    head.write_text(out)  # what `offsite audit head > head.json` keeps
    return head, json.loads(out)


def test_audit_head_prints_only_the_head_on_stdout(db_url, tmp_path, capsys, monkeypatch) -> None:
    _fill(db_url, 4)
    _, head = _kept_head(db_url, tmp_path, capsys, monkeypatch)
    with psycopg.connect(db_url) as conn:
        last = conn.execute("SELECT hash FROM audit_log WHERE seq = 4").fetchone()
    assert head == {"seq": 4, "hash": bytes(last[0]).hex()}  # type: ignore[index]


def test_rows_appended_after_the_kept_head_verify(db_url, tmp_path, capsys, monkeypatch) -> None:
    _fill(db_url, 3)
    head, _ = _kept_head(db_url, tmp_path, capsys, monkeypatch)
    _fill(db_url, 2)
    assert main(["audit", "verify", "--head", str(head)]) == 0
    assert "the kept head (row 3) matches, 2 rows appended since" in capsys.readouterr().out


def test_deleting_the_newest_rows_is_found_against_the_kept_head(
    db_url, tmp_path, capsys, monkeypatch
) -> None:
    _fill(db_url, 5)
    head, _ = _kept_head(db_url, tmp_path, capsys, monkeypatch)
    _tamper(db_url, "DELETE FROM audit_log WHERE seq >= 4")
    assert main(["audit", "verify"]) == 0  # the chain alone is still a chain
    assert main(["audit", "verify", "--head", str(head)]) == 1
    out = capsys.readouterr().out
    assert "BROKEN at row 4" in out and "rows 4–5 were deleted" in out


def test_a_recomputed_chain_is_found_against_the_kept_head(
    db_url, tmp_path, capsys, monkeypatch
) -> None:
    _fill(db_url, 5)
    head, _ = _kept_head(db_url, tmp_path, capsys, monkeypatch)
    _recompute_from(db_url, 2, '{"i":1,"note":"nothing happened"}')
    assert main(["audit", "verify"]) == 0  # every link checks out again
    assert main(["audit", "verify", "--head", str(head)]) == 1
    out = capsys.readouterr().out
    assert "BROKEN at row 5" in out and "recomputed" in out


def test_a_bad_head_file_is_refused_with_its_reason(db_url, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("OFFSITE_DATABASE_URL", db_url)
    bad = tmp_path / "head.json"
    bad.write_text('{"seq": 3}')
    assert main(["audit", "verify", "--head", str(bad)]) == 2
    assert main(["audit", "verify", "--head", str(tmp_path / "missing.json")]) == 2
    out = capsys.readouterr().out
    assert "a kept head is" in out and "cannot read the kept head" in out


def test_a_login_role_in_offsite_app_appends_but_cannot_truncate_the_tail(db_url: str) -> None:
    """How services connect as the limited role (docs/security.md): a login role that is a
    member of offsite_app gets its rights, and no more."""
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    _fill(db_url, 2)
    login = f"offsite_svc_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {login} LOGIN IN ROLE offsite_app")
    try:
        parts = urlsplit(db_url)
        as_app = urlunsplit(parts._replace(netloc=f"{login}@{parts.hostname}:{parts.port}"))
        with psycopg.connect(as_app) as conn:
            append_sync(conn, "svc", "test.append", "thing:y", {})
            conn.commit()
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DELETE FROM audit_log WHERE seq = 3")
            conn.rollback()
            assert verify(conn).head_seq == 3
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {login}")
            conn.execute(f"DROP ROLE {login}")


def test_ingest_runs_as_a_login_member_of_offsite_app(db_url: str, mqtt_url: str) -> None:
    """Services connect as offsite_app once the owner has migrated: ingest starts without
    DDL and writes readings, packets and split parts (tables of later migrations too)."""
    import uuid
    from datetime import datetime, timedelta
    from urllib.parse import urlsplit, urlunsplit

    from offsite.core.registry import registry_from_dict
    from offsite.ingest.codecs import hj212
    from offsite.ingest.service import IngestService
    from offsite.simulators.tcp_logger import LockstepLogger
    from tests.integration.helpers import make_settings, register, scalar

    mn = "066666A8900016F000169DC0"
    register(
        db_url,
        registry_from_dict(
            {
                "enterprises": [
                    {
                        "id": "E6",
                        "name": "Least Privilege Works",
                        "points": [{"id": "E6-P1", "kind": "flue_gas", "devices": [{"mn": mn}]}],
                    }
                ]
            }
        ),
    )
    login = f"offsite_svc_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {login} LOGIN IN ROLE offsite_app")
    parts = urlsplit(db_url)
    as_app = urlunsplit(parts._replace(netloc=f"{login}@{parts.hostname}:{parts.port}"))
    ts = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    qn = hj212.qn_of(ts)
    split = hj212.frame(
        f"QN={qn};ST=31;CN=2011;PW=1;MN={mn};Flag=7;PNUM=2;PNO=1;"
        f"CP=&&DataTime={hj212.data_time(ts)};a21026-Rtd=1.5,a21026-Flag=N&&"
    )
    whole = hj212.build_data_packet(
        mn=mn, pw="1", cn="2011", ts=ts, st="31", flag=5, values=[("a21002", 7.0, "N")]
    )
    settings = make_settings(as_app, mqtt_url, "t/+/x", gateway_port=0, rules_runner="external")
    try:
        svc = IngestService(settings, as_app, None, gateway=True)
        svc.start()
        try:
            assert svc.gateway is not None
            with LockstepLogger("127.0.0.1", svc.gateway.port, response_timeout_s=10) as log:
                assert all(e.answered for e in log.run([split, whole]))
        finally:
            svc.stop()
        assert svc.error is None
        assert scalar(db_url, "SELECT count(*) FROM readings") == 1
        assert scalar(db_url, "SELECT count(*) FROM hj212_split_parts") == 1
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {login}")
            conn.execute(f"DROP ROLE {login}")
