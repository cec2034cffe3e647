"""SQL for the API routes, one module per resource, one function per question. Routes hold
no SQL. Every table has one writer module (tests/unit/test_table_writers.py): the tables
the engine or the CLI write too (alerts, cases, notices, users, devices) are written
through ``store/``; the rest by their resource's module here.

    alerts         the feed and its counts, one alert with its events and evidence
    cases          the closed loop's cases with their steps, responses and tasks
    devices        the device registry, one device's detail
    enterprises    enterprises and their points, regions, QR generations
    health         the database clock, ingest workers
    invitations    advisory check-ups an enterprise asks for (and their state)
    notifications  what the console shows each audience
    overview       devices, open alerts per site, today's capture, unseen criticals
    readings       raw readings, buckets, latest values, daily capture
    reports        the monthly enterprise report
    tasks          inspection tasks
    users          who a token is, logging in, the user list
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
    overview,
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
    "overview",
    "readings",
    "reports",
    "tasks",
    "users",
    "visit_guard",
    "visits",
]
