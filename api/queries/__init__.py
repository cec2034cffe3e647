"""SQL for the API routes, one module per resource, one function per question. Routes hold
no SQL; writes to tables with an owner in ``store/`` (alerts, cases) go through it.

    alerts         the feed, one alert, a person's lifecycle actions
    cases          the closed loop's cases, responses, verdicts, escalation
    devices        the device registry, onboarding, revocation
    enterprises    enterprises and their points, regions, QR generations
    health         the database clock, ingest workers
    invitations    advisory check-ups an enterprise asks for
    notifications  what the console shows each audience
    readings       raw readings, buckets, latest values, daily capture
    reports        the monthly enterprise report
    tasks          inspection tasks
    users          users, tokens, logging in
    visit_guard    the frequency guard: recent visits, no-disturbance list, refusals
    visits         scan-code visits, joint participants, ratings
"""

from offsite.api.queries import (
    alerts,
    cases,
    devices,
    enterprises,
    health,
    invitations,
    notifications,
    readings,
    reports,
    tasks,
    users,
    visit_guard,
    visits,
)

__all__ = [
    "alerts",
    "cases",
    "devices",
    "enterprises",
    "health",
    "invitations",
    "notifications",
    "readings",
    "reports",
    "tasks",
    "users",
    "visit_guard",
    "visits",
]
