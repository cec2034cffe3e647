"""The request guard: what every request passes before routing, body parsing and
authentication, as one pure ASGI middleware (``RequestGuard``).

- **Security headers** on every answer: a strict Content-Security-Policy (the console
  has no inline script), ``X-Frame-Options: DENY``, ``nosniff``, a Referrer-Policy.
- **Cross-site refusal** (CSRF): a state-changing request (POST, PUT, PATCH, DELETE)
  with a body that is not JSON, or sent from a foreign ``Origin`` or with
  ``Sec-Fetch-Site: cross-site``, answers 403. A browser cannot send a cross-site JSON
  body without a CORS preflight, which this API never grants.
- **Body limits** per route: ``Content-Length`` above the route's limit answers 413 before
  a byte is read; a body streamed without a length is counted and cut off at the limit.
  A route whose limit is above the default (uploads) reads a body only from a caller
  whose token holds (401 otherwise, before reading).
- **Strict JSON**: a JSON body that Python's parser would accept but nothing behind it
  can hold — ``NaN``, ``Infinity``, ``1e999``, a lone surrogate (``"\\ud800"``), a NUL
  character — answers 422 naming the field, in FastAPI's own error shape.

The decisions (``cross_site_refusal``, ``json_problems``, ``BodyLimits.for_path``) are
pure functions; the middleware only reads, counts and answers.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from offsite.api.auth import optional_principal
from offsite.api.errors import ApiError
from offsite.api.messages import localise

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# what a route puts in ``openapi_extra`` to get a limit other than the default
LIMIT_KEY = "x-offsite-body-limit"
LOGIN_BODY = {LIMIT_KEY: "login"}
UPLOAD_BODY = {LIMIT_KEY: "upload"}

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# FastAPI's /docs and /redoc load their script from a CDN and start it inline
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src 'self' https://fonts.gstatic.com; img-src 'self' data: https:; "
    "worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
HEADERS = (
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
MAX_PROBLEMS = 10  # a body full of NaN is named by its first few fields


class BodyTooLarge(ApiError, HTTPException):
    """A streamed body passed its route's limit. An ``HTTPException`` so that FastAPI,
    reading the body inside a route, lets it through as the 413 it is."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large(limit))


def too_large(limit: int) -> str:
    return f"the request body is larger than this route accepts ({limit} bytes at most)"


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """Each route's body limit: ``routes`` pairs a route's path pattern with its limit;
    every other path gets ``default``."""

    default: int
    routes: tuple[tuple[re.Pattern[str], int], ...] = ()

    def for_path(self, path: str) -> int:
        for pattern, limit in self.routes:
            if pattern.match(path):
                return limit
        return self.default


def _origin_netloc(url: str) -> str | None:
    """``scheme://host[:port]`` → ``host[:port]`` with the scheme's default port dropped."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:  # IPv6
        host = f"[{host}]"
    default = 443 if parts.scheme == "https" else 80
    try:
        port = parts.port
    except ValueError:
        return None
    return host if port in (None, default) else f"{host}:{port}"


def _host_netloc(host: str) -> str:
    """A Host header as ``_origin_netloc`` would write it (the port kept unless default)."""
    host = host.strip().lower()
    for suffix in (":80", ":443"):
        if host.endswith(suffix):
            return host[: -len(suffix)]
    return host


def is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


def cross_site_refusal(
    method: str,
    headers: Mapping[str, str],
    trusted_origins: Iterable[str] = (),
    *,
    has_body: bool,
) -> str | None:
    """Why a request must be refused as possibly cross-site, or None to let it through.

    Only state-changing methods are judged. ``headers`` are the request's (lower-case
    names); ``trusted_origins`` are host[:port] values besides the request's own Host
    (the public URL behind a proxy)."""
    if method not in BODY_METHODS:
        return None
    site = headers.get("sec-fetch-site", "").lower()
    if site in ("cross-site", "same-site"):
        return f"a {site} request may not change anything here"
    origin = headers.get("origin")
    if origin is not None:
        netloc = _origin_netloc(origin)
        allowed = {_host_netloc(headers.get("host", "")), *trusted_origins}
        if netloc is None or netloc not in allowed:
            return f"requests from origin {origin[:100]!r} may not change anything here"
    content_type = headers.get("content-type")
    if (has_body or content_type) and not is_json(content_type):
        return (
            "a request that changes something must send its body as application/json "
            f"(not {content_type[:100]!r})"
            if content_type
            else "a request that changes something must send its body as application/json"
        )
    return None


def _problem(loc: list[str | int], msg: str, kind: str = "value_error") -> dict[str, Any]:
    return {"type": kind, "loc": ["body", *loc], "msg": msg}


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "a NUL character (\\u0000) cannot be stored as text"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"a lone surrogate (\\u{ord(text[exc.start]):04x}) is not text"
    return None


def json_problems(body: bytes) -> list[dict[str, Any]]:
    """What is wrong with a JSON body, in FastAPI's 422 error shape (``loc`` names the
    field); empty when nothing is. Checks what ``json.loads`` lets through but no model
    or database can hold: non-finite numbers, lone surrogates, NUL characters."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [_problem([exc.start], "the body is not UTF-8 (JSON must be)", "json_invalid")]
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return [_problem([exc.pos], f"JSON decode error: {exc.msg}", "json_invalid")]
    except (ValueError, RecursionError) as exc:  # a 5000-digit integer, deep nesting
        return [_problem([], f"JSON decode error: {str(exc)[:200]}", "json_invalid")]
    problems: list[dict[str, Any]] = []
    stack: list[tuple[list[str | int], Any]] = [([], value)]
    while stack and len(problems) < MAX_PROBLEMS:
        loc, v = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            problems.append(_problem(loc, "a number must be finite (not NaN, Infinity or 1e999)"))
        elif isinstance(v, str):
            if (why := _text_problem(v)) is not None:
                problems.append(_problem(loc, why))
        elif isinstance(v, dict):
            for k, item in reversed(v.items()):
                if (why := _text_problem(k)) is not None:
                    problems.append(_problem([*loc, k.encode("utf-8", "replace").decode()], why))
                else:
                    stack.append(([*loc, k], item))
        elif isinstance(v, list):
            stack.extend(([*loc, i], item) for i, item in reversed(list(enumerate(v))))
    return problems


async def _answer(
    send: Send,
    status: int,
    body: dict[str, Any],
    extra: list[tuple[bytes, bytes]] | None = None,
    *,
    lang: str | None = None,
) -> None:
    """Answer before the app: ``detail`` in the caller's language (``Accept-Language``),
    as the app's own errors are."""
    if "detail" in body:
        body = {**body, "detail": localise(body["detail"], lang)}
    data = json.dumps(body, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                (b"connection", b"close"),
                *(extra or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


class RequestGuard:
    """The ASGI middleware; see the module's docstring."""

    def __init__(
        self, app: ASGIApp, limits: BodyLimits, trusted_origins: Iterable[str] = ()
    ) -> None:
        self.app = app
        self.limits = limits
        self.trusted = frozenset(trusted_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        send = self._with_headers(send, DOCS_CSP if path in DOCS_PATHS else CSP)
        headers = Headers(scope=scope)
        lang = headers.get("accept-language")
        method: str = scope["method"]
        limit = self.limits.for_path(path)
        length_text = headers.get("content-length")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        try:
            length = int(length_text) if length_text is not None else None
        except ValueError:
            await _answer(send, 400, {"detail": "Content-Length is not a number"}, lang=lang)
            return
        if length is not None and length < 0:
            await _answer(send, 400, {"detail": "Content-Length is negative"}, lang=lang)
            return
        has_body = chunked or bool(length)
        reason = cross_site_refusal(method, headers, self.trusted, has_body=has_body)
        if reason is not None:
            await _answer(send, 403, {"detail": reason}, lang=lang)
            return
        if length is not None and length > limit:
            await _answer(send, 413, {"detail": too_large(limit)}, lang=lang)
            return
        if has_body and limit > self.limits.default and not await self._signed_in(scope):
            # a large body is read only for someone signed in: an anonymous flood of
            # upload-sized bodies would otherwise be buffered and parsed before the 401
            await _answer(
                send,
                401,
                {"detail": "sign in: send 'Authorization: Bearer <token>'"},
                [(b"www-authenticate", b"Bearer")],
                lang=lang,
            )
            return
        if has_body and method in BODY_METHODS and is_json(headers.get("content-type")):
            body = await _read(receive, limit)
            if body is None:
                await _answer(send, 413, {"detail": too_large(limit)}, lang=lang)
                return
            problems = json_problems(body)
            if problems:
                await _answer(send, 422, {"detail": problems}, lang=lang)
                return
            receive = _replay(body, receive)
        else:
            receive = _counting(receive, limit)
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            # answer the 500 here, so it carries the headers too; Starlette's outer
            # handler still logs the exception and, seeing the answer sent, sends nothing
            if not started:
                await _answer(send, 500, {"detail": "Internal Server Error"}, lang=lang)
            raise

    @staticmethod
    async def _signed_in(scope: Scope) -> bool:
        """Does the request carry a token that holds (the route still checks the role)?"""
        try:
            return await optional_principal(Request(scope)) is not None
        except Exception:  # the database is away: let the route answer as it would
            return True

    @staticmethod
    def _with_headers(send: Send, csp: str) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in HEADERS if k not in present]
                if b"content-security-policy" not in present:
                    extra.append((b"content-security-policy", csp.encode()))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        return wrapped


async def _read(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes ``limit`` (the rest is never read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """Hand the body read by the guard to the app, then the real channel (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _counting(receive: Receive, limit: int) -> Receive:
    size = 0

    async def counting() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise BodyTooLarge(limit)
        return message

    return counting
