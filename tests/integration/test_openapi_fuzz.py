"""Schemathesis against the live API's OpenAPI document: generated requests (valid and
invalid) never get a 5xx, and every status, header and body the API answers with is the
one its schema documents. Bounded: a few examples per operation, per role."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from psycopg import sql
from schemathesis.specs.openapi.checks import positive_data_acceptance

from offsite.api.app import create_app
from offsite.core.settings import load_settings
from tests.conftest import _with_dbname
from tests.integration.security_fixtures import build_world
from tests.integration.test_api_live import serving

pytestmark = pytest.mark.integration
EXAMPLES = 12
# Left out: "schema-valid data is accepted". Rules the schema cannot express (start before
# end, a QR token's signature, an enterprise id only for enterprise users) answer 400/422
# with a reason, as documented; the other checks (no 5xx, documented statuses, headers,
# content types and bodies, invalid data refused) all run.


@pytest.fixture(scope="module")
def live(admin_db_url: str, template_db: str) -> Iterator[tuple[str, list[dict[str, str]]]]:
    name = f"offsite_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_db_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template_db)
            )
        )
    db_url = _with_dbname(admin_db_url, name)
    world = build_world(db_url)
    settings_ = load_settings(
        database_url=db_url,
        mqtt_url="mqtt://127.0.0.1:1",
        qr_secret="q" * 40,
        login_rate_per_min=100_000,
        checkin_rate_per_min=100_000,
    )
    try:
        with serving(settings_, db_url) as url:
            yield (url, [world.headers(role) for role in ("admin", "inspector", "enterprise")])
    finally:
        with psycopg.connect(admin_db_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _schema() -> schemathesis.BaseSchema:
    """The app's own OpenAPI document (building it needs no database)."""
    app = create_app(load_settings(database_url="postgresql://unused/x"), "postgresql://x")
    # the stream never ends and logout would revoke the token the run uses
    return (
        schemathesis.openapi.from_dict(app.openapi())
        .exclude(path="/api/alerts/stream")
        .exclude(path="/auth/logout")
    )


OPERATIONS = {op.ok().label: op.ok() for op in _schema().get_all_operations()}


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_api_honours_its_schema(label: str, live: tuple[str, list[dict[str, str]]]) -> None:
    url, roles = live

    @given(case=OPERATIONS[label].as_strategy())
    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def check(case: schemathesis.Case) -> None:
        for headers in roles:
            case.call_and_validate(
                base_url=url, headers=headers, excluded_checks=[positive_data_acceptance]
            )

    check()
