"""What an attachment is served as. The uploader's Content-Type is only a claim: an
"image/png" that is really HTML would run in the API's origin if served as declared.
So an attachment is served as one of a few types a browser renders safely only when its
first bytes prove it, and as ``application/octet-stream`` otherwise; always as a
download (``Content-Disposition: attachment``), with ``nosniff`` and a sandboxing CSP.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from fastapi import Response

# type → how its content starts (a file may match any one of the prefixes)
MAGIC: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "application/pdf": (b"%PDF-",),
}
FALLBACK = "application/octet-stream"
# for the response itself: nothing in it may run, even if a browser renders it
ATTACHMENT_CSP = "default-src 'none'; sandbox"


def _is_webp(head: bytes) -> bool:
    return head[:4] == b"RIFF" and head[8:12] == b"WEBP"


def served_type(declared: str | None, head: bytes) -> str:
    """The Content-Type to serve an attachment with: the declared type if it is on the
    allow-list and ``head`` (the content's first bytes) proves it, else ``FALLBACK``."""
    kind = (declared or "").split(";", 1)[0].strip().lower()
    if kind == "image/webp":
        return kind if _is_webp(head) else FALLBACK
    prefixes = MAGIC.get(kind)
    if prefixes and head.startswith(prefixes):
        return kind
    return FALLBACK


def stored_file_response(
    row: Mapping[str, Any], extra: Mapping[str, str] | None = None
) -> Response:
    """A stored file (a case attachment, a visit photo: ``content``, ``content_type``,
    ``filename``, ``sha256``) as a safe download, as the module's docstring says."""
    content = bytes(row["content"])
    name = quote(row["filename"], safe="")
    return Response(
        content,
        media_type=served_type(row["content_type"], content[:16]),
        headers={
            "X-Content-SHA256": bytes(row["sha256"]).hex(),
            "Content-Disposition": f"attachment; filename*=UTF-8''{name}",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": ATTACHMENT_CSP,
            **(extra or {}),
        },
    )
