"""The request guard (api/guard.py): limits, cross-site refusals, strict JSON and headers.

Everything here is decided before routing and authentication, so an app without a
database answers it: a request that reached a route would fail on the missing pool."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from offsite.api.app import brief_error, create_app
from offsite.api.guard import BodyLimits, cross_site_refusal, json_problems
from offsite.core.settings import load_settings


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    settings = load_settings(
        database_url="postgresql://unused/x", public_url="https://offsite.example.org"
    )
    # no lifespan: a request that gets past the guard finds no pool and raises
    yield TestClient(create_app(settings, "postgresql://unused/x"), raise_server_exceptions=False)


def test_a_login_body_over_its_limit_is_refused_before_parsing(client: TestClient) -> None:
    r = client.post("/auth/login", content=b'{"username": "' + b"x" * 20_000 + b'"}', headers=_JSON)
    assert r.status_code == 413
    assert "8192 bytes" in r.json()["detail"]
    assert len(r.content) < 200  # nothing of the input comes back


def test_a_streamed_body_without_length_is_cut_off_at_the_limit(client: TestClient) -> None:
    # (the test client buffers what it sends; tests/integration/test_request_flood.py
    # shows a real server stops reading)
    def chunks() -> Iterator[bytes]:
        yield b'{"username": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"}'

    r = client.post("/auth/login", content=chunks(), headers=_JSON)
    assert r.status_code == 413


def test_an_upload_route_takes_more_than_the_default_and_no_more_than_its_own(
    client: TestClient,
) -> None:
    big = 2 * 1024 * 1024  # over the 1 MiB default, under the 16 MiB upload limit
    body = json.dumps({"explanation": "x", "attachments": []}).encode() + b" " * big
    token = {**_JSON, "authorization": "Bearer whatever"}
    # the guard let it through to the route (which, without a database here, fails)
    assert client.post("/api/cases/1/responses", content=body, headers=token).status_code != 413
    # an upload-sized body is read only from someone signed in: 401 before reading it
    r = client.post("/api/cases/1/responses", content=body, headers=_JSON)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert client.post("/api/cases", content=body, headers=_JSON).status_code == 413
    huge = {**_JSON, "content-length": str(100 * 1024 * 1024)}
    # before authentication: no token, still 413 (the body is never read)
    assert client.post("/api/cases/1/responses", content=b"{}", headers=huge).status_code == 413


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"username": "\\ud800", "password": "x"}', ["body", "username"]),
        (b'{"username": "a", "password": NaN}', ["body", "password"]),
        (b'{"username": "a", "password": 1e999}', ["body", "password"]),
        (b'{"username": "a", "password": -Infinity}', ["body", "password"]),
        (b'{"username": "a\\u0000b", "password": "x"}', ["body", "username"]),
    ],
)
def test_values_nothing_can_hold_answer_422_naming_the_field(
    client: TestClient, body: bytes, field: list[str]
) -> None:
    r = client.post("/auth/login", content=body, headers=_JSON)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == field


def test_nested_fields_are_named_with_their_path() -> None:
    body = b'{"attachments": [{"filename": "ok"}, {"filename": "\\udfff"}], "x": [1, NaN]}'
    locs = sorted(p["loc"] for p in json_problems(body))
    assert locs == [["body", "attachments", 1, "filename"], ["body", "x", 1]]
    assert json_problems(b'{"fine": [1.5, "\\u00e9", {"k": null}]}') == []
    assert json_problems(b"[" * 100_000)[0]["type"] == "json_invalid"
    assert json_problems(b"1" * 5000)[0]["type"] == "json_invalid"  # int digits limit
    assert json_problems(b'{"a": "\xff"}')[0]["type"] == "json_invalid"  # not UTF-8


def test_a_validation_error_never_repeats_a_large_input() -> None:
    err = {"type": "string_too_long", "loc": ("body", "x"), "msg": "too long", "input": "y" * 10**6}
    out = brief_error(err)
    assert len(out["input"]) <= 65
    assert "input" not in brief_error({**err, "input": {"a": "y" * 10**6}})
    assert brief_error({**err, "input": 3})["input"] == 3


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({"content-type": "application/x-www-form-urlencoded"}, True),
        ({"content-type": "multipart/form-data; boundary=x"}, True),
        ({"content-type": "text/plain"}, True),
        ({}, True),  # a body with no type
        ({"content-type": "application/json", "origin": "https://evil.example"}, True),
        ({"content-type": "application/json", "origin": "null"}, True),
        ({"content-type": "application/json", "sec-fetch-site": "cross-site"}, True),
        ({"content-type": "application/json", "sec-fetch-site": "same-site"}, True),
        ({"content-type": "application/json", "sec-fetch-site": "same-origin"}, False),
        ({"content-type": "application/json; charset=utf-8"}, False),
        ({"content-type": "application/json", "origin": "http://api.local:8000"}, False),
        ({"content-type": "application/json", "origin": "https://offsite.example.org"}, False),
    ],
)
def test_cross_site_refusals(headers: dict[str, str], refused: bool) -> None:
    h = {"host": "api.local:8000", **headers}
    why = cross_site_refusal("POST", h, ["offsite.example.org"], has_body=True)
    assert (why is not None) is refused, why
    assert cross_site_refusal("GET", h, has_body=True) is None  # reads are not judged


def test_a_bodiless_post_needs_no_content_type() -> None:
    assert cross_site_refusal("POST", {"host": "h"}, has_body=False) is None
    # an empty cross-site form still says what it is
    form = {"host": "h", "content-type": "application/x-www-form-urlencoded"}
    assert cross_site_refusal("POST", form, has_body=False) is not None


def test_a_form_encoded_cross_site_post_with_the_cookie_is_refused(client: TestClient) -> None:
    client.cookies.set("offsite_session", "whatever")
    try:
        r = client.post(
            "/api/users/victim/api-keys",
            content=b"x=1",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 403
        r = client.post(
            "/api/users/victim/api-keys",
            json={},
            headers={"origin": "https://evil.example", "sec-fetch-site": "cross-site"},
        )
        assert r.status_code == 403
    finally:
        client.cookies.clear()


@pytest.mark.parametrize("path", ["/", "/scan", "/healthz-nope", "/openapi.json"])
def test_every_answer_carries_the_security_headers(client: TestClient, path: str) -> None:
    r = client.get(path)
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] in ("strict-origin-when-cross-origin", "no-referrer")


def test_a_server_error_carries_the_headers_too(client: TestClient) -> None:
    # no database behind this app: the route fails with a 500
    r = client.get("/api/alerts", headers={"Authorization": "Bearer x"})
    assert r.status_code == 500
    assert r.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


def test_the_pages_have_no_inline_script() -> None:
    """A strict CSP blocks inline script: the pages load theirs from files."""
    from importlib import resources

    static = resources.files("offsite.api").joinpath("static")
    for page in ("index.html", "scan.html", "report.html"):
        html = static.joinpath(page).read_text("utf-8")
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag, f"{page}: inline {tag}"
        assert not re.search(r"\son[a-z]+\s*=", html), f"{page}: an inline event handler"
        assert "<style" not in html and "style=" not in html, f"{page}: inline style"


def test_body_limits_by_path() -> None:
    limits = BodyLimits(10, ((re.compile("^/a$"), 5),))
    assert limits.for_path("/a") == 5
    assert limits.for_path("/ab") == 10


_JSON = {"content-type": "application/json"}


def test_a_body_read_past_its_limit_by_a_route_raises_413() -> None:
    """The safety net for bodies the guard does not buffer: the route's read fails."""
    import asyncio

    from offsite.api.guard import BodyTooLarge, _counting

    async def receive() -> dict:
        return {"type": "http.request", "body": b"x" * 600, "more_body": True}

    async def read() -> None:
        counted = _counting(receive, 1000)
        await counted()
        await counted()

    with pytest.raises(BodyTooLarge) as info:
        asyncio.run(read())
    assert info.value.status_code == 413


def test_the_guards_answers_follow_accept_language(client: TestClient) -> None:
    """The guard answers before any route, so before the app's translating handler: it
    speaks the caller's language itself (codes and locations unchanged)."""
    zh = {**_JSON, "accept-language": "zh-CN,zh;q=0.9"}
    big = b'{"username": "' + b"x" * 20_000 + b'"}'
    r = client.post("/auth/login", content=big, headers=zh)
    assert r.status_code == 413 and r.json()["detail"] == "请求体超过此接口的上限（最多 8192 字节）"
    r = client.post("/auth/login", content=big, headers={**_JSON, "accept-language": "en"})
    assert (
        r.json()["detail"]
        == "the request body is larger than this route accepts (8192 bytes at most)"
    )
    r = client.post(
        "/auth/login",
        content=b"x=1",
        headers={"content-type": "text/plain", "accept-language": "zh-CN"},
    )
    assert (
        r.status_code == 403
        and r.json()["detail"] == "修改数据的请求须以 application/json 发送请求体"
    )
    r = client.post("/auth/login", content=b'{"username": NaN}', headers=zh)
    assert r.status_code == 422
    (item,) = r.json()["detail"]
    assert item["type"] == "value_error" and item["loc"] == ["body", "username"]
    assert item["msg"] == "数字必须是有限值（不能是 NaN、Infinity 或 1e999）"
