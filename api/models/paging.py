"""Paging limits shared by every list endpoint."""

from __future__ import annotations

# a page offset beyond this cannot be meant, and beyond 2**63 PostgreSQL refuses it (500)
MAX_OFFSET = 10_000_000
