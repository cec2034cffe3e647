"""Signing in (password, cookie, logout, expiry, rate limit) and QR-coded check-ins
(forged, altered, expired, revoked, rotated keys, replays, wrong people)."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import httpx
import psycopg
import pytest

from offsite.api.app import create_app
from offsite.api.device_cookie import DEVICE_COOKIE
from offsite.core.settings import load_settings
from offsite.store.users import issue_token
from tests.integration.security_fixtures import PASSWORD, World, api_client, build_world
from tests.integration.test_api_live import serving

pytestmark = pytest.mark.integration


def test_login_sets_an_httponly_cookie_that_authenticates_and_logout_revokes_it(
    db_url: str,
) -> None:
    build_world(db_url)
    with api_client(db_url) as c:
        bad = c.post("/auth/login", json={"username": "adm", "password": "wrong"})
        assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"
        nobody = c.post("/auth/login", json={"username": "ghost", "password": PASSWORD})
        assert nobody.status_code == 401 and nobody.json() == bad.json()
        # a user without a password (API keys only) cannot log in with any password
        assert c.post("/auth/login", json={"username": "insp2", "password": ""}).status_code == 422
        assert c.post("/auth/login", json={"username": "insp2", "password": "x"}).status_code == 401

        ok = c.post("/auth/login", json={"username": "ent1", "password": PASSWORD})
        assert ok.status_code == 200, ok.text
        body = ok.json()
        assert body["role"] == "enterprise" and body["enterprise_id"] == "E1"
        cookie = ok.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        # the cookie alone authenticates (the console's EventSource sends only cookies)
        me = c.get("/auth/me")
        assert me.status_code == 200 and me.json()["user_id"] == "ent1"
        c.cookies.clear()
        assert c.get("/auth/me").status_code == 401
        bearer = {"Authorization": f"Bearer {body['token']}"}
        assert c.get("/auth/me", headers=bearer).status_code == 200
        assert c.post("/auth/logout", headers=bearer).status_code == 204
        assert c.get("/auth/me", headers=bearer).status_code == 401


def test_expired_tokens_and_deactivated_users_are_refused(db_url: str) -> None:
    w = build_world(db_url)
    with psycopg.connect(db_url) as conn:
        expired = issue_token(conn, "reg", ttl=timedelta(seconds=-1))
    with api_client(db_url) as c:
        assert c.get("/auth/me", headers={"Authorization": f"Bearer {expired}"}).status_code == 401
        victim = {"Authorization": f"Bearer {w.token('inspector', 'victim')}"}
        assert c.get("/auth/me", headers=victim).status_code == 200
        assert c.post("/api/users/victim/deactivate", headers=w.headers("admin")).status_code == 204
        assert c.get("/auth/me", headers=victim).status_code == 401
        assert c.get("/auth/me", headers={"Authorization": "Bearer ofs_made-up"}).status_code == 401


def test_login_is_rate_limited_with_retry_after(db_url: str) -> None:
    build_world(db_url)
    with api_client(db_url, login_rate_per_min=6) as c:
        codes = [
            c.post("/auth/login", json={"username": "adm", "password": "guess"}).status_code
            for _ in range(7)
        ]
        assert codes[:5] == [401] * 5 and codes[5:] == [429, 429]
        r = c.post("/auth/login", json={"username": "adm", "password": PASSWORD})
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 10


def test_guessing_a_password_cannot_lock_the_user_out_of_a_browser_they_used(
    db_url: str,
) -> None:
    """Three clients at three addresses: the user's browser, a guesser, a new browser."""
    build_world(db_url)
    settings = load_settings(
        database_url=db_url,
        mqtt_url="mqtt://127.0.0.1:1",
        qr_secret="q" * 40,
        login_rate_per_min=6,
    )
    app = create_app(settings, db_url)
    right = {"username": "adm", "password": PASSWORD}
    wrong = {"username": "adm", "password": "guess"}

    def at(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")

    async def scenario() -> None:
        async with (
            app.router.lifespan_context(app),
            at("10.0.0.1") as browser,
            at("10.0.0.2") as guesser,
            at("10.0.0.3") as new_browser,
        ):
            assert (await browser.post("/auth/login", json=right)).status_code == 200
            guesses = [
                (await guesser.post("/auth/login", json=wrong)).status_code for _ in range(7)
            ]
            assert guesses[:5] == [401] * 5 and guesses[5:] == [429, 429]
            # the user's own browser is not locked out, and right passwords cost nothing
            for _ in range(3):
                assert (await browser.post("/auth/login", json=right)).status_code == 200
            # a browser the user never signed in from shares the guessed-out limit
            assert (await new_browser.post("/auth/login", json=right)).status_code == 429
            # another user's device cookie is no key to this one
            assert DEVICE_COOKIE in browser.cookies
            new_browser.cookies.clear()
            new_browser.cookies.set(DEVICE_COOKIE, browser.cookies[DEVICE_COOKIE])
            r = await new_browser.post("/auth/login", json={"username": "reg", "password": "x"})
            assert r.status_code == 401

    asyncio.run(scenario())


def _scan(c, w: World, enterprise: str = "E1") -> str:
    r = c.get(f"/api/enterprises/{enterprise}/qr.svg", headers=w.headers("admin"))
    assert r.status_code == 200
    return r.headers["x-offsite-scan-url"]


def test_check_in_refuses_expired_revoked_and_unknown_key_codes(db_url: str) -> None:
    w = build_world(db_url)
    with api_client(db_url) as c:
        insp = w.headers("inspector")

        def check_in(token: str) -> tuple[int, str]:
            r = c.post(
                "/api/visits/check-in", headers=insp, json={"token": token, "purpose": "routine"}
            )
            return r.status_code, r.text

        ring = c.app.state.keyring
        expired = ring.sign("E1", 0, int(time.time()) - 1)
        assert check_in(expired)[0] == 401 and "expired" in check_in(expired)[1]
        fresh = ring.sign("E1", 0, int(time.time()) + 3600)
        assert check_in(fresh)[0] == 201

        old = _scan(c, w, "E3")
        r = c.post("/api/enterprises/E3/qr/revoke", headers=w.headers("regulator"))
        assert r.status_code == 200 and r.json() == {"enterprise_id": "E3", "generation": 1}
        status, text = check_in(old)
        assert status == 401 and "revoked" in text
        new = _scan(c, w, "E3")
        assert new != old and check_in(new)[0] == 201
    # a code signed with a key this deployment never had
    with api_client(db_url, qr_secret="z" * 40, qr_key_id="k9") as other:
        foreign = _scan(other, w)
    with api_client(db_url) as c:
        status, text = (
            c.post(
                "/api/visits/check-in",
                headers=w.headers("inspector"),
                json={"token": foreign, "purpose": "x"},
            ).status_code,
            "",
        )
        assert status == 401


def test_key_rotation_keeps_printed_codes_working_until_the_old_key_is_retired(db_url: str) -> None:
    w = build_world(db_url)
    with api_client(db_url) as c:  # signing key k1
        printed = _scan(c, w)
    rotated = {"qr_secret": "n" * 40, "qr_key_id": "k2", "qr_verify_keys": {"k1": "q" * 40}}
    with api_client(db_url, **rotated) as c:
        new = _scan(c, w)
        assert new != printed
        for token, _kid in ((printed, "k1"), (new, "k2")):
            r = c.post(
                "/api/visits/check-in",
                headers=w.headers("inspector"),
                json={"token": token, "purpose": "rotation"},
            )
            assert r.status_code == 201, r.text
        kids = [
            k
            for (k,) in psycopg.connect(db_url).execute(
                "SELECT token_kid FROM visits WHERE purpose = 'rotation' ORDER BY id"
            )
        ]
        assert kids == ["k1", "k2"]
    with api_client(db_url, qr_secret="n" * 40, qr_key_id="k2") as c:  # k1 retired
        r = c.post(
            "/api/visits/check-in",
            headers=w.headers("inspector"),
            json={"token": printed, "purpose": "late"},
        )
        assert r.status_code == 401 and "retired" in r.text


def test_replayed_check_in_returns_the_open_visit(db_url: str) -> None:
    w = build_world(db_url)
    with api_client(db_url) as c:
        token = _scan(c, w)
        insp = w.headers("inspector")
        first = c.post(
            "/api/visits/check-in", headers=insp, json={"token": token, "purpose": "routine"}
        )
        again = c.post(
            "/api/visits/check-in",
            headers=w.headers("inspector"),
            json={"token": token.split("token=")[1], "purpose": "double tap"},
        )
        assert (first.status_code, again.status_code) == (201, 200)
        assert again.json() == first.json()
        # another inspector with the same code is another visit
        with psycopg.connect(db_url) as conn:
            conn.execute("UPDATE users SET region = '' WHERE id = 'insp2'")
        other = c.post(
            "/api/visits/check-in",
            headers=w.headers("inspector", "insp2"),
            json={"token": token, "purpose": "joint"},
        )
        assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
        # after checking out, scanning again starts a new visit
        vid = first.json()["id"]
        assert (
            c.post(
                f"/api/visits/{vid}/check-out", headers=insp, json={"findings": "ok"}
            ).status_code
            == 200
        )
        later = c.post(
            "/api/visits/check-in", headers=insp, json={"token": token, "purpose": "second"}
        )
        assert later.status_code == 201 and later.json()["id"] not in (vid, other.json()["id"])
    n = (
        psycopg.connect(db_url)
        .execute("SELECT count(*) FROM visits WHERE enterprise_id = 'E1'")
        .fetchone()
    )
    assert n is not None and n[0] == 1 + 3  # the world's own visit + three


def test_check_in_needs_an_inspector_of_the_sites_region(db_url: str) -> None:
    w = build_world(db_url)
    with api_client(db_url) as c:
        token = _scan(c, w)
        for role, user in (("regulator", "reg"), ("admin", "adm"), ("enterprise", "ent1")):
            r = c.post(
                "/api/visits/check-in",
                headers=w.headers(role, user),
                json={"token": token, "purpose": "x"},
            )
            assert r.status_code == 403, role
        r = c.post(
            "/api/visits/check-in",
            headers=w.headers("inspector", "insp2"),
            json={"token": token, "purpose": "x"},
        )  # insp2 covers R2 only: a site outside it answers as an unknown one
        assert r.status_code == 404 and "region" in r.text
        assert (
            c.post("/api/visits/check-in", json={"token": token, "purpose": "x"}).status_code == 401
        )


def test_check_in_is_rate_limited_per_inspector(db_url: str) -> None:
    w = build_world(db_url)
    with api_client(db_url, checkin_rate_per_min=1) as c:
        insp = w.headers("inspector")
        codes = [
            c.post(
                "/api/visits/check-in", headers=insp, json={"token": "not-a-token", "purpose": "x"}
            ).status_code
            for _ in range(6)
        ]
        assert codes == [400] * 5 + [429]
        r = c.post(
            "/api/visits/check-in",
            headers=w.headers("inspector", "insp2"),
            json={"token": "not-a-token", "purpose": "x"},
        )
        assert r.status_code == 400  # another inspector has their own bucket


def test_concurrent_replays_create_one_visit(db_url: str) -> None:
    """Eight simultaneous scans of one code by one inspector (a flaky network retrying):
    one visit, every answer names it. (This found a pool deadlock: authentication now has
    connections of its own.)"""

    w = build_world(db_url)
    settings = load_settings(
        database_url=db_url,
        mqtt_url="mqtt://127.0.0.1:1",
        qr_secret="q" * 40,
        checkin_rate_per_min=1000,
    )
    with serving(settings, db_url) as url:
        token = httpx.get(f"{url}/api/enterprises/E1/qr.svg", headers=w.headers("admin")).headers[
            "x-offsite-scan-url"
        ]
        insp = w.headers("inspector")
        gate = threading.Barrier(8)
        answers: list[tuple[int, int]] = []

        def scan() -> None:
            gate.wait()
            r = httpx.post(
                f"{url}/api/visits/check-in",
                headers=insp,
                timeout=30,
                json={"token": token, "purpose": "retry storm"},
            )
            answers.append((r.status_code, r.json()["id"]))

        threads = [threading.Thread(target=scan) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert sorted(s for s, _ in answers) == [200] * 7 + [201]
    assert len({i for _, i in answers}) == 1
    n = (
        psycopg.connect(db_url)
        .execute("SELECT count(*) FROM visits WHERE purpose = 'retry storm'")
        .fetchone()
    )
    assert n == (1,)
