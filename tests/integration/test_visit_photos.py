"""Photos of the findings, sent at check-out from the inspector's phone: kept with the
visit, limited like a case response's attachments (size; and only images their bytes
prove), served safely, and shown with the visit's case once the visit is over."""

from __future__ import annotations

import base64
import hashlib

import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.integration.security_fixtures import World, api_client, build_world

pytestmark = pytest.mark.integration

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200
JPEG = b"\xff\xd8\xff\xe0" + b"\x01" * 300


def _photo(name: str, content: bytes, ctype: str = "image/jpeg") -> dict[str, str]:
    return {
        "filename": name,
        "content_type": ctype,
        "content_base64": base64.b64encode(content).decode(),
    }


def _case_for_visit(c: TestClient, w: World) -> int:
    r = c.post("/api/cases", headers=w.headers("admin"), json={"alert_ids": [w.alerts["E1"]]})
    assert r.status_code == 201, r.text
    case_id = int(r.json()["id"])
    with psycopg.connect(w.db_url) as conn:  # as a check-in for one of the case's tasks does
        conn.execute("UPDATE visits SET case_id = %s WHERE id = %s", (case_id, w.visits["E1"]))
        conn.commit()
    return case_id


def test_photos_at_check_out_are_kept_served_and_on_the_case(db_url: str) -> None:
    w = build_world(db_url)
    visit = w.visits["E1"]
    with api_client(db_url) as c:
        case_id = _case_for_visit(c, w)
        insp = w.headers("inspector")
        r = c.post(
            f"/api/visits/{visit}/check-out",
            headers=insp,
            json={
                "findings": "probe clogged",
                "photos": [_photo("探头.jpg", JPEG), _photo("panel.png", PNG, "image/png")],
            },
        )
        assert r.status_code == 200, r.text
        photos = r.json()["photos"]
        assert [p["filename"] for p in photos] == ["探头.jpg", "panel.png"]
        assert photos[0]["sha256"] == hashlib.sha256(JPEG).hexdigest()

        # served as the image it is, never as something that could run
        got = c.get(f"/api/visits/{visit}/photos/{photos[1]['id']}", headers=insp)
        assert got.status_code == 200 and got.content == PNG
        assert got.headers["content-type"] == "image/png"
        assert got.headers["x-content-sha256"] == hashlib.sha256(PNG).hexdigest()
        assert "sandbox" in got.headers["content-security-policy"]
        # the enterprise sees its case's photos; another enterprise does not
        assert (
            c.get(
                f"/api/visits/{visit}/photos/{photos[1]['id']}", headers=w.headers("enterprise")
            ).status_code
            == 200
        )
        other = w.headers("enterprise", "ent2")
        assert (
            c.get(f"/api/visits/{visit}/photos/{photos[1]['id']}", headers=other).status_code == 404
        )
        assert (
            c.get(
                f"/api/visits/{w.visits['E2']}/photos/{photos[1]['id']}", headers=w.headers("admin")
            ).status_code
            == 404
        )

        case = c.get(f"/api/cases/{case_id}", headers=w.headers("enterprise")).json()
        assert [p["id"] for p in case["photos"]] == [p["id"] for p in photos]
        assert case["photos"][0]["inspector_id"] == "insp"
        # the steps the server wrote read in the caller's language (Accept-Language)
        zh = c.get(
            f"/api/cases/{case_id}", headers={**w.headers("admin"), "Accept-Language": "zh-CN"}
        ).json()
        assert zh["steps"][0]["note"] == f"由告警 {w.alerts['E1']} 立案"
        en = c.get(f"/api/cases/{case_id}", headers=w.headers("admin")).json()
        assert en["steps"][0]["note"] == f"opened from alert(s) {w.alerts['E1']}"


def test_a_photo_is_limited_like_an_attachment_and_must_be_an_image(db_url: str) -> None:
    w = build_world(db_url)
    visit = w.visits["E1"]
    with api_client(db_url, attachment_max_bytes=1024) as c:
        insp = w.headers("inspector")
        url = f"/api/visits/{visit}/check-out"
        big = c.post(
            url, headers=insp, json={"findings": "x", "photos": [_photo("big.jpg", JPEG * 5)]}
        )
        assert big.status_code == 413 and "big.jpg" in big.json()["detail"]
        # a "photo" whose bytes are HTML is refused, whatever it claims to be
        html = _photo("x.jpg", b"<html><script>alert(1)</script></html>")
        fake = c.post(url, headers=insp, json={"findings": "x", "photos": [html]})
        assert fake.status_code == 422
        zh = c.post(
            url,
            headers={**insp, "Accept-Language": "zh-CN"},
            json={"findings": "x", "photos": [_photo("bad.jpg", b"x", "image/jpeg")]},
        )
        assert zh.status_code == 422 and zh.json()["detail"].startswith("照片")
        # nothing refused was kept, and the visit is still open
        with psycopg.connect(db_url) as conn:
            kept = conn.execute("SELECT count(*) FROM visit_photos").fetchone()
            open_ = conn.execute(
                "SELECT checked_out_at FROM visits WHERE id = %s", (visit,)
            ).fetchone()
        assert kept == (0,) and open_ == (None,)
        ok = c.post(
            url, headers=insp, json={"findings": "x", "photos": [_photo("a.png", PNG, "image/png")]}
        )
        assert ok.status_code == 200 and len(ok.json()["photos"]) == 1
