"""The case lifecycle of the closed loop, as pure functions (the clock is passed in).

States::

    discovered ──▶ verifying (remote) ──▶ rectifying ──▶ feedback ──▶ closed
                        │                     ▲             │
                        └──── closed ─────────┼─────────────┘ (rework: back to rectifying)
                   (verified: nothing to fix)

The enterprise answers within ``response_due_at``; a response still missing when the
deadline passes escalates the case once (``due_for_escalation``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from offsite.rules.errors import InvalidTransition


class CaseState(StrEnum):
    DISCOVERED = "discovered"
    VERIFYING = "verifying"
    RECTIFYING = "rectifying"
    FEEDBACK = "feedback"
    CLOSED = "closed"


_ALLOWED: dict[CaseState, frozenset[CaseState]] = {
    CaseState.DISCOVERED: frozenset({CaseState.VERIFYING}),
    CaseState.VERIFYING: frozenset({CaseState.RECTIFYING, CaseState.CLOSED}),
    CaseState.RECTIFYING: frozenset({CaseState.FEEDBACK}),
    CaseState.FEEDBACK: frozenset({CaseState.CLOSED, CaseState.RECTIFYING}),
    CaseState.CLOSED: frozenset(),
}


def move(
    current: CaseState | str,
    target: CaseState | str,
    *,
    open_tasks: int = 0,
    note: str | None = None,
) -> CaseState:
    """Check a regulator's step; raise InvalidTransition saying why it is refused.

    Every step needs a note (the record must say why), and closing needs no inspection
    task still open: a case is not closed while someone is on the way to the site."""
    cur, tgt = CaseState(current), CaseState(target)
    if tgt not in _ALLOWED[cur]:
        allowed = ", ".join(sorted(s.value for s in _ALLOWED[cur])) or "nothing"
        raise InvalidTransition(
            f"a case that is {cur.value} cannot become {tgt.value} (it can become: {allowed})"
        )
    if not note or not note.strip():
        raise InvalidTransition(f"moving a case to {tgt.value} needs a note saying why")
    if tgt is CaseState.CLOSED and open_tasks:
        raise InvalidTransition(
            f"the case has {open_tasks} open inspection task(s): their visits must report first"
        )
    return tgt


@dataclass(frozen=True, slots=True)
class Deadline:
    """What the escalation check needs to know about one case."""

    case_id: int
    state: str
    response_due_at: datetime | None
    escalated_at: datetime | None
    last_response_at: datetime | None  # the enterprise's newest response, if any
    responses_pending: int = 0  # responses not yet accepted or rejected


def due_for_escalation(cases: Iterable[Deadline], now: datetime) -> list[int]:
    """Cases whose response deadline has passed with no response given since it was set
    (a response awaiting the regulator's verdict counts as given). Each escalates once."""
    out = []
    for c in cases:
        if (
            c.state == CaseState.CLOSED
            or c.response_due_at is None
            or c.escalated_at is not None
            or now < c.response_due_at
        ):
            continue
        if c.responses_pending:
            continue
        out.append(c.case_id)
    return out
