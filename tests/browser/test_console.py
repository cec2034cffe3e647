"""The web console in headless chromium against a running Offsite: real PostgreSQL and
broker, ingest with the rule engine, the API on a socket, simulated devices.

One world per module (a fleet's two hours of history take a while to ingest): the feed
shows a freshly injected fault within seconds and a second browser sees it acknowledged;
the alert, device, enterprise, QR sheet and visit pages draw real data; an enterprise
user cannot reach another enterprise's pages. Each page is kept as a screenshot in
test-artifacts/screenshots/.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
from psycopg import sql

from offsite.simulators.publisher import publish_fleet
from offsite.simulators.scenarios import build_fleet
from offsite.store.users import create_user
from tests.integration.helpers import (
    make_settings,
    publish_raw,
    register,
    running_ingest,
    scalar,
    token_for,
    topic_for,
    wait_for,
)
from tests.integration.test_api_live import serving

pytestmark = pytest.mark.integration

PASSWORD = "browser test password 1"
HISTORY_S = 2 * 3600
LIVE_TIMEOUT_MS = 10_000  # "within seconds"


@dataclass
class World:
    url: str
    db_url: str
    mqtt_url: str
    topic: str
    mn: str  # a device of `enterprise`
    pollutant: str
    limit: float
    enterprise: str
    other_enterprise: str
    other_mn: str


@pytest.fixture(scope="module")
def world(admin_db_url: str, template_db: str, mqtt_url: str) -> Iterator[World]:
    name = f"offsite_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_db_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template_db)
            )
        )
    db_url = urlunsplit(urlsplit(admin_db_url)._replace(path=f"/{name}"))
    topic = f"offsite-test/{uuid.uuid4().hex[:10]}/devices/+/telemetry"
    try:
        start = (datetime.now(UTC) - timedelta(seconds=HISTORY_S)).replace(second=0, microsecond=0)
        fleet = build_fleet(5, seed=11, faults=[], start=start, rate_s=60.0)
        register(db_url, fleet.registry)
        with psycopg.connect(db_url) as conn:
            create_user(conn, "reg", "regulator", PASSWORD)
            create_user(conn, "adm", "admin", PASSWORD)
            create_user(conn, "insp", "inspector", PASSWORD)
            mn, pollutant, limit, ent = conn.execute(
                """SELECT d.mn, l.pollutant, l.limit_value, p.enterprise_id FROM devices d
                   JOIN points p ON p.id = d.point_id JOIN point_limits l ON l.point_id = p.id
                   WHERE l.pollutant IN ('a21026', 'w01018') ORDER BY d.mn LIMIT 1"""
            ).fetchone()
            other_ent, other_mn = conn.execute(
                """SELECT p.enterprise_id, d.mn FROM devices d JOIN points p ON p.id = d.point_id
                   WHERE p.enterprise_id <> %s ORDER BY d.mn LIMIT 1""",
                (ent,),
            ).fetchone()
            create_user(conn, "ent", "enterprise", PASSWORD, enterprise_id=ent)
        settings = make_settings(
            db_url, mqtt_url, topic, login_rate_per_min=600, checkin_rate_per_min=600
        )
        with running_ingest(settings), serving(settings, db_url) as url:
            stats = publish_fleet(
                fleet,
                mqtt_url,
                duration_s=HISTORY_S,
                start=start,
                realtime=False,
                topic_template=topic.replace("+", "{mn}"),
                client_id=f"offsite-test-sim-{uuid.uuid4().hex[:6]}",
            )
            wait_for(
                lambda: (
                    scalar(db_url, "SELECT coalesce(sum(readings), 0) FROM device_status")
                    >= stats.readings
                ),
                timeout=60,
                what="the fleet's history stored",
            )
            yield World(
                url, db_url, mqtt_url, topic, mn, pollutant, limit, ent, other_ent, other_mn
            )
    finally:
        with psycopg.connect(admin_db_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=["--no-sandbox"] if os.geteuid() == 0 else [],
        )
        try:
            yield b
        finally:
            b.close()


def signed_in(
    browser: Any,
    w: World,
    user: str,
    *,
    locale: str = "en-US",
    viewport: tuple[int, int] = (1400, 900),
) -> Any:
    """A fresh browser context signed in through the console's own form; the browser's
    language (``locale``) picks the console's."""
    ctx = browser.new_context(
        viewport={"width": viewport[0], "height": viewport[1]},
        locale=locale,
        timezone_id="Europe/London",  # not the sites' zone: the console must not follow it
    )
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # the strict Content-Security-Policy refuses inline script and style: say so
    page.on(
        "console",
        lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.errors = errors
    page.goto(f"{w.url}/")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("#login button")
    page.wait_for_selector(f"#who:has-text('{user}')")
    return page


def go(page: Any, url: str) -> None:
    """Navigate within the console; the page marker is reset first so that a wait for the
    next page's marker cannot be satisfied by the page before."""
    page.evaluate(
        "() => { const v = document.getElementById('view'); if (v) v.dataset.page = 'stale'; }"
    )
    page.goto(url)


def shot(page: Any, screenshots: Path, name: str) -> None:
    page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)


def inject_exceedance(w: World, factor: float = 3.0) -> None:
    """A fault injected live: the device reports its headline pollutant at 3× its limit."""
    publish_raw(
        w.mqtt_url,
        [
            (
                topic_for(w.topic, w.mn),
                json.dumps(
                    {"ts": datetime.now(UTC).isoformat(), "values": {w.pollutant: w.limit * factor}}
                ).encode(),
            )
        ],
    )


def test_feed_shows_a_fresh_fault_live_and_an_ack_reaches_a_second_browser(
    world: World, browser: Any, screenshots: Path
) -> None:
    w = world
    a, b = signed_in(browser, w, "reg"), signed_in(browser, w, "adm")
    for page in (a, b):
        go(page, f"{w.url}/#/feed")
        page.wait_for_selector("#counts .count")
        page.wait_for_selector("#status.live")
    inject_exceedance(w)
    row = f"#rows tr:has(td[data-rule='exceedance']):has(td[data-mn='{w.mn}'])"
    a.wait_for_selector(row, timeout=LIVE_TIMEOUT_MS)
    b.wait_for_selector(row, timeout=LIVE_TIMEOUT_MS)
    alert_id = a.get_attribute(row, "data-id")
    assert a.get_attribute(row, "data-severity") == "critical"  # 3× the limit
    a.wait_for_selector("#critical:has-text('New critical alert')")  # fetched from the server
    a.wait_for_function(
        "() => document.querySelector('#counts [data-state=open] b').textContent !== '0'"
    )
    shot(a, screenshots, "feed")

    a.click(f"{row} button[data-act=acknowledge]")
    b.wait_for_selector(
        f"#rows tr[data-id='{alert_id}'][data-state='acknowledged']", timeout=LIVE_TIMEOUT_MS
    )
    assert (
        scalar(w.db_url, "SELECT state FROM alerts WHERE id = %s", int(alert_id)) == "acknowledged"
    )
    # assign in the second browser, from a picker of the people work may go to; the
    # first browser sees it
    b.click(f"#rows tr[data-id='{alert_id}'] button[data-act=assign]")
    picker = f"#rows tr[data-id='{alert_id}'] form.ask select[name=user]"
    b.wait_for_selector(f"{picker} option[value=insp]", state="attached")
    choices = b.eval_on_selector_all(f"{picker} option", "os => os.map(o => o.value)")
    assert "insp" in choices and "adm" not in choices and "ent" not in choices, choices
    # the open form does not squeeze the message column (the feed at 1400 px)
    width = b.eval_on_selector(f"#rows tr[data-id='{alert_id}'] td.msg", "td => td.offsetWidth")
    assert width >= 200, width
    b.select_option(picker, "insp")
    b.click(f"#rows tr[data-id='{alert_id}'] form.ask button:text-is('OK')")
    a.wait_for_selector(
        f"#rows tr[data-id='{alert_id}'][data-state='assigned']", timeout=LIVE_TIMEOUT_MS
    )
    assert "→ insp" in a.inner_text(f"#rows tr[data-id='{alert_id}'] td.state")
    a.click(f"#rows tr[data-id='{alert_id}'] button[data-act=comments]")
    a.fill(f"#rows tr[data-id='{alert_id}'] form.ask input", "called the plant")
    a.press(f"#rows tr[data-id='{alert_id}'] form.ask input", "Enter")
    wait_for(
        lambda: scalar(
            w.db_url,
            "SELECT count(*) FROM alert_events WHERE alert_id = %s "
            "AND kind = 'commented' AND note = 'called the plant' "
            "AND actor = 'reg'",
            int(alert_id),
        ),
        timeout=10,
        what="the comment stored",
    )

    # a state filter keeps only what it names, and the counts follow the database
    b.select_option("select[name=state]", "assigned")
    b.wait_for_selector(f"#rows tr[data-id='{alert_id}']")
    assert {
        s for s in b.eval_on_selector_all("#rows tr", "rs => rs.map(r => r.dataset.state)")
    } == {"assigned"}
    assigned = scalar(w.db_url, "SELECT count(*) FROM alerts WHERE state = 'assigned'")
    b.wait_for_function(
        "n => document.querySelector('#counts [data-state=assigned] b').textContent === String(n)",
        arg=assigned,
    )
    csv = b.request.get(f"{w.url}/api/export/alerts.csv?state=assigned")
    assert csv.ok and csv.text().splitlines()[0].startswith("id,rule,mn")
    assert len(csv.text().splitlines()) == 1 + assigned
    assert not a.errors and not b.errors, a.errors + b.errors

    # the alert page draws the evidence and the history, with the acknowledgement
    go(a, f"{w.url}/#/alert/{alert_id}")
    a.wait_for_selector("#chart canvas")
    assert int(a.get_attribute("#chart", "data-points")) >= 1
    history = a.inner_text("#events")
    assert "acknowledged" in history and "assigned to insp" in history
    assert "called the plant" in history
    shot(a, screenshots, "alert")
    assert not a.errors, a.errors


def test_device_chart_draws_raw_and_bucketed_data_with_capture_rate(
    world: World, browser: Any, screenshots: Path
) -> None:
    w = world
    page = signed_in(browser, w, "reg")
    go(page, f"{w.url}/#/device/{w.mn}")
    page.wait_for_selector("#chart canvas")
    raw_points = int(page.get_attribute("#chart", "data-points"))
    assert raw_points >= 50, raw_points  # the last hour of 1-minute readings
    assert page.locator("#latest tbody tr").count() >= 3
    assert "%" in page.inner_text("#capture")
    page.click("button[data-span='86400']")
    page.wait_for_function("() => /buckets/.test(document.querySelector('#rangetext').textContent)")
    page.wait_for_selector("#chart canvas")
    bucketed = int(page.get_attribute("#chart", "data-points"))
    assert 0 < bucketed <= 720
    assert "min buckets" in page.inner_text("#rangetext")
    csv = page.request.get(w.url + page.get_attribute("#csv", "href"))
    assert csv.ok and csv.text().startswith("bucket,pollutant,avg,min,max,count")
    shot(page, screenshots, "device")
    # the bucket choice: raw up to 3 h, then ≤ 720 buckets, hour/day widths UTC-aligned
    picks = page.evaluate("""async () => {
        const {chooseBucket} = await import('/static/console/chart.js');
        const t = 1764000000 + 1234;  // not on an hour
        return [3 * 3600, 86400, 7 * 86400, 30 * 86400, 400 * 86400].map(
            span => chooseBucket(t - span, t));
    }""")
    assert picks[0]["bucket"] is None
    assert [p["bucket"] for p in picks[1:]] == [120, 900, 3600, 86400]
    for p in picks[3:]:
        assert p["from"] % p["bucket"] == 0 and p["to"] % p["bucket"] == 0
        assert (p["to"] - p["from"]) / p["bucket"] <= 721
    go(page, f"{w.url}/#/devices")
    page.wait_for_selector(f"main[data-page=devices] a:text-is('{w.mn}')")
    assert not page.errors, page.errors


def test_enterprise_user_sees_its_own_pages_only(
    world: World, browser: Any, screenshots: Path
) -> None:
    w = world
    page = signed_in(browser, w, "ent")
    page.wait_for_selector("main[data-page=enterprise]")  # their site is their home page
    assert w.enterprise in page.inner_text("main h2")
    assert page.locator(f"a:text-is('{w.mn}')").count() == 1
    shot(page, screenshots, "enterprise")

    go(page, f"{w.url}/#/enterprise/{w.other_enterprise}/qr")
    page.wait_for_selector("main[data-page=error]")
    go(page, f"{w.url}/#/enterprise/{w.other_enterprise}")
    page.wait_for_selector("main[data-page=error]")
    assert "Not found" in page.inner_text("main")
    go(page, f"{w.url}/#/device/{w.other_mn}")
    page.wait_for_selector("main[data-page=error]")
    assert page.locator("#chart").count() == 0
    go(page, f"{w.url}/#/devices")
    page.wait_for_selector("main[data-page=devices]")
    assert w.other_mn not in page.inner_text("main")
    go(page, f"{w.url}/#/feed?state=")
    page.wait_for_selector("#counts .count")
    enterprises = set(
        page.eval_on_selector_all(
            "#rows tr td[data-enterprise]", "tds => tds.map(t => t.dataset.enterprise)"
        )
    )
    assert enterprises <= {w.enterprise}, enterprises
    # the API behind the pages says the same
    assert page.request.get(f"{w.url}/api/enterprises/{w.other_enterprise}").status == 404
    assert page.request.get(f"{w.url}/api/devices/{w.other_mn}/capture").status == 404
    assert page.request.get(f"{w.url}/api/export/devices/{w.other_mn}/readings.csv").status == 404

    go(page, f"{w.url}/#/enterprise/{w.enterprise}/qr")
    page.wait_for_selector("#qr")
    page.wait_for_function("() => document.querySelector('#qr').naturalWidth > 0")
    shot(page, screenshots, "qr-sheet")
    assert not page.errors, page.errors


def test_visits_list_and_detail_for_the_inspector(
    world: World, browser: Any, screenshots: Path
) -> None:
    w = world
    admin = {"Authorization": f"Bearer {token_for(w.db_url, 'admin')}"}
    scan = httpx.get(f"{w.url}/api/enterprises/{w.enterprise}/qr.svg", headers=admin)
    insp = {"Authorization": f"Bearer {token_for(w.db_url, 'inspector', user_id='insp')}"}
    alert_id = scalar(
        w.db_url,
        """SELECT a.id FROM alerts a JOIN devices d ON d.mn = a.mn
                                   JOIN points p ON p.id = d.point_id
                                   WHERE p.enterprise_id = %s ORDER BY a.id LIMIT 1""",
        w.enterprise,
    )
    visit = httpx.post(
        f"{w.url}/api/visits/check-in",
        headers=insp,
        json={
            "token": scan.headers["x-offsite-scan-url"],
            "purpose": "exceedance follow-up",
            "alert_id": alert_id,
        },
    )
    assert visit.status_code == 201, visit.text
    vid = visit.json()["id"]

    page = signed_in(browser, w, "insp")
    page.wait_for_selector("main[data-page=work]")  # an inspector lands on their work
    assert "exceedance follow-up" in page.inner_text("main")
    assert page.locator("#tasks").count() == 1
    # the alert the feed test assigned to insp is in their work
    assigned = scalar(w.db_url, "SELECT count(*) FROM alerts WHERE assignee = 'insp'")
    assert page.locator("#assigned .card[data-alert]").count() == assigned >= 1
    shot(page, screenshots, "my-work")
    go(page, f"{w.url}/#/visit/{vid}")
    page.wait_for_selector("#checkout")
    page.fill("#checkout textarea", "CEMS probe cleaned; readings back to normal")
    page.click("#checkout button")
    page.wait_for_function(
        "() => !document.querySelector('#checkout') && "
        "/probe cleaned/.test(document.querySelector('main').textContent)"
    )
    assert (
        scalar(w.db_url, "SELECT findings FROM visits WHERE id = %s", vid)
        == "CEMS probe cleaned; readings back to normal"
    )
    shot(page, screenshots, "visit")
    go(page, f"{w.url}/#/visits")
    page.wait_for_selector(f"main[data-page=visits] a:text-is('{vid}')")
    shot(page, screenshots, "visits")
    go(page, f"{w.url}/#/alert/{alert_id}")  # the alert lists the visit made for it
    page.wait_for_selector(f"main[data-page=alert] a[href='#/visit/{vid}']")
    assert not page.errors, page.errors


def test_the_scan_and_report_pages_run_under_the_strict_csp(world: World, browser: Any) -> None:
    """Their script and style come from files: nothing is refused by the policy."""
    w = world
    page = signed_in(browser, w, "ent")
    month = datetime.now(UTC).strftime("%Y-%m")
    page.goto(f"{w.url}/api/reports/page?enterprise={w.enterprise}&month={month}")
    page.wait_for_selector("#out h2")
    assert w.enterprise in page.inner_text("#title")
    page.goto(f"{w.url}/scan?token=x")
    page.wait_for_selector("#who:has-text('signed in as ent')")
    assert not page.errors, page.errors
