"""The frequency guard: may an unscheduled visit go ahead without a recorded reason?

Nationally, inspections per enterprise are capped and repeated visits raise warnings;
visits that follow a complaint, a lead from monitoring data (an open case or task) or
the enterprise's own invitation are exempt — so such a visit must carry its reason. Pure:
the caller counts the recent visits (a joint visit counts once) and looks the list up.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GuardPolicy:
    period_days: float  # "recently" means within this many days
    max_visits: int  # this many visits in the period, and the next needs a reason


@dataclass(frozen=True, slots=True)
class Justification:
    case_id: int | None = None  # an open case of this enterprise
    task_id: int | None = None  # an open inspection task at this enterprise
    complaint: str | None = None  # a complaint's reference and gist

    def __bool__(self) -> bool:
        return (
            self.case_id is not None
            or self.task_id is not None
            or bool(self.complaint and self.complaint.strip())
        )

    def describe(self) -> str | None:
        if self.task_id is not None:
            return f"task {self.task_id}"
        if self.case_id is not None:
            return f"case {self.case_id}"
        if self.complaint and self.complaint.strip():
            return f"complaint: {self.complaint.strip()}"
        return None


@dataclass(frozen=True, slots=True)
class GuardDecision:
    allowed: bool
    needs_justification: bool
    reason: str  # why a justification is needed (or why it is not)


def judge(
    policy: GuardPolicy, recent_visits: int, no_disturbance: bool, justification: Justification
) -> GuardDecision:
    """Allowed unless the visit would be one too many, or the enterprise is on the
    no-disturbance list, and no justification is given."""
    why: list[str] = []
    if recent_visits >= policy.max_visits:
        why.append(
            f"visited {recent_visits} time(s) in the last {policy.period_days:g} "
            f"days (at most {policy.max_visits} without a reason)"
        )
    if no_disturbance:
        why.append("the enterprise is on the no-disturbance list")
    if not why:
        return GuardDecision(True, False, "within the frequency limit")
    reason = "; ".join(why)
    if justification:
        return GuardDecision(True, True, f"{reason}; justified by {justification.describe()}")
    return GuardDecision(False, True, f"{reason}: give an open case, task or complaint")
