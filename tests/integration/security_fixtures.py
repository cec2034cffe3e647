"""A small world for the security tests: two regions, three enterprises, an alert and a
visit per enterprise, one user per role, and a client that signs in as any of them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from offsite.api.app import create_app
from offsite.core.registry import registry_from_dict
from offsite.core.settings import load_settings
from offsite.store.users import create_user, issue_token
from tests.integration.helpers import register

MN1, MN2, MN3, MN4 = "1111AAAA", "2222BBBB", "3333CCCC", "4444DDDD"
PASSWORD = "correct horse battery staple"
ROLES = ("admin", "regulator", "inspector", "enterprise")
USERS = {"admin": "adm", "regulator": "reg", "inspector": "insp", "enterprise": "ent1"}

REGISTRY = registry_from_dict(
    {
        "enterprises": [
            {
                "id": "E1",
                "name": "One",
                "region": "R1/City",
                "points": [
                    {
                        "id": "E1-P1",
                        "kind": "flue_gas",
                        "limits": {"a21026": 35.0},
                        "devices": [{"mn": MN1}, {"mn": MN3}],
                    }
                ],
            },
            {
                "id": "E2",
                "name": "Two",
                "region": "R2",
                "points": [
                    {
                        "id": "E2-P1",
                        "kind": "flue_gas",
                        "limits": {"a21026": 35.0},
                        "devices": [{"mn": MN2}],
                    }
                ],
            },
            {
                "id": "E3",
                "name": "Three",
                "region": "R1",
                "points": [
                    {
                        "id": "E3-P1",
                        "kind": "wastewater",
                        "limits": {"w01018": 50.0},
                        "devices": [{"mn": MN4}],
                    }
                ],
            },
        ]
    }
)


@dataclass
class World:
    db_url: str
    alerts: dict[str, int]  # enterprise → alert id
    visits: dict[str, int]  # enterprise → visit id (E1's by insp, E2's by insp2)

    def token(self, role: str, user: str | None = None) -> str:
        with psycopg.connect(self.db_url) as conn:
            return issue_token(conn, user or USERS[role])

    def headers(self, role: str | None, user: str | None = None) -> dict[str, str]:
        return {} if role is None else {"Authorization": f"Bearer {self.token(role, user)}"}


def _alert(conn: psycopg.Connection, mn: str) -> int:
    row = conn.execute(
        """INSERT INTO alerts (rule, mn, pollutant, severity, first_seen,
                              last_seen, message) VALUES ('exceedance', %s, 'a21026', 'major',
                              now(), now(), 'over the limit') RETURNING id""",
        (mn,),
    ).fetchone()
    assert row is not None
    conn.execute("INSERT INTO alert_events (alert_id, kind) VALUES (%s, 'opened')", (row[0],))
    return int(row[0])


def _visit(conn: psycopg.Connection, enterprise: str, inspector: str) -> int:
    row = conn.execute(
        """INSERT INTO visits (enterprise_id, inspector_id, purpose, token_kid)
                          VALUES (%s, %s, 'routine', 'k1') RETURNING id""",
        (enterprise, inspector),
    ).fetchone()
    assert row is not None
    return int(row[0])


def build_world(db_url: str) -> World:
    register(db_url, REGISTRY)
    with psycopg.connect(db_url) as conn:
        create_user(conn, "adm", "admin", PASSWORD)
        create_user(conn, "reg", "regulator", PASSWORD, region="R1")
        create_user(conn, "insp", "inspector", PASSWORD)
        create_user(conn, "insp2", "inspector", None, region="R2")
        create_user(conn, "ent1", "enterprise", PASSWORD, enterprise_id="E1")
        create_user(conn, "ent2", "enterprise", None, enterprise_id="E2")
        create_user(conn, "victim", "inspector", None)
        alerts = {e: _alert(conn, mn) for e, mn in (("E1", MN1), ("E2", MN2), ("E3", MN4))}
        visits = {"E1": _visit(conn, "E1", "insp"), "E2": _visit(conn, "E2", "insp2")}
        conn.commit()
    return World(db_url, alerts, visits)


@contextmanager
def api_client(db_url: str, **overrides: Any) -> Iterator[TestClient]:
    # these tests scan codes many times over; the frequency guard has its own tests
    settings = load_settings(
        **{
            "database_url": db_url,
            "mqtt_url": "mqtt://127.0.0.1:1",
            "qr_secret": "q" * 40,
            "visit_guard_max": 1000,
            **overrides,
        }
    )
    with TestClient(create_app(settings, db_url)) as client:
        yield client


def unique_mn() -> str:
    return "N" + uuid.uuid4().hex[:12].upper()
