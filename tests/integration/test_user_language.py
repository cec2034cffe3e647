"""The console language is kept per user on the server: set through the API, returned
with the current user, audited; a user who never chose has none (the browser's applies)."""

from __future__ import annotations

import psycopg
import pytest

from tests.integration.security_fixtures import World, api_client, build_world

pytestmark = pytest.mark.integration


def test_the_language_is_kept_per_user_and_returned_with_me(db_url: str) -> None:
    w: World = build_world(db_url)
    with api_client(db_url) as c:
        reg, insp = w.headers("regulator"), w.headers("inspector")
        assert c.get("/auth/me", headers=reg).json()["lang"] is None  # a new user: the browser's

        r = c.put("/auth/me/language", headers=reg, json={"lang": "en"})
        assert r.status_code == 200 and r.json()["lang"] == "en"
        assert c.get("/auth/me", headers=reg).json()["lang"] == "en"
        assert c.get("/auth/me", headers=insp).json()["lang"] is None  # one user's choice only

        assert c.put("/auth/me/language", headers=reg, json={"lang": "fr"}).status_code == 422
        assert c.put("/auth/me/language", json={"lang": "en"}).status_code == 401

        r = c.put("/auth/me/language", headers=reg, json={"lang": None})
        assert r.status_code == 200 and r.json()["lang"] is None
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT data::jsonb->>'lang' FROM audit_log WHERE action = 'user.language' ORDER BY seq"
        ).fetchall()
    assert [r[0] for r in rows] == ["en", None]
