"""The console's live parts and its per-user language, in headless chromium on the real
stack: the alert stream resumes after the server ends it (from the last event id, so an
alert raised meanwhile still arrives) and a session that ended goes to the sign-in form;
the device page takes new readings without a reload; the language chosen is kept on the
server and follows the user to another browser, while a new user follows the browser.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from offsite.api.feed import FEED_APPLICATION_NAME
from offsite.store.users import create_user
from tests.browser.test_console import PASSWORD, World, go, inject_exceedance, signed_in
from tests.browser.test_console import browser as browser
from tests.browser.test_console import world as world
from tests.browser.test_console_loop import axe, no_overflow, publish
from tests.integration.helpers import scalar, wait_for

pytestmark = pytest.mark.integration

LIVE_MS = 15_000
PHONE = (360, 780)


def _user(w: World, user_id: str, role: str = "regulator") -> str:
    with psycopg.connect(w.db_url) as conn:
        create_user(conn, user_id, role, PASSWORD)
    return user_id


def test_the_alert_stream_resumes_after_the_server_ends_it_and_a_dead_session_signs_in(
    world: World, browser: Any
) -> None:
    w = world
    page = signed_in(browser, w, _user(w, "live-reg"), locale="zh-CN")
    go(page, f"{w.url}/#/feed?state=")
    page.wait_for_selector("main[data-page=feed]")
    page.wait_for_selector("body[data-stream=live]", timeout=LIVE_MS)
    stood = int(page.get_attribute("body", "data-stream-after") or "-1")
    assert stood >= 0  # the server said where the stream stands

    # the database drops the feed: the server ends every stream with where to resume
    with page.expect_request(
        lambda r: "/api/alerts/stream?after=" in r.url, timeout=LIVE_MS
    ) as resumed:
        with psycopg.connect(w.db_url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (FEED_APPLICATION_NAME,),
            )
        inject_exceedance(w, factor=4.0)  # an alert raised while the console is away
    assert int(resumed.value.url.rsplit("after=", 1)[1]) >= stood
    wait_for(
        lambda: scalar(w.db_url, "SELECT count(*) FROM alert_events WHERE id > %s", stood) > 0,
        timeout=30,
        what="the alert event of the injected fault",
    )
    alert_id = scalar(w.db_url, "SELECT alert_id FROM alert_events WHERE id > %s LIMIT 1", stood)
    # drawn live (the .new mark), so it came over the resumed stream, not a reload
    page.wait_for_selector(f"#rows tr.new[data-id='{alert_id}']", timeout=LIVE_MS)
    page.wait_for_selector("body[data-stream=live]", timeout=LIVE_MS)
    assert page.locator(f"#rows tr[data-id='{alert_id}']").count() == 1

    # the session is revoked: the stream ends with signed_out, the console goes to sign-in
    with psycopg.connect(w.db_url) as conn:
        conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE user_id = 'live-reg'")
        conn.commit()
    page.wait_for_selector("form#login:not([hidden])", timeout=LIVE_MS)
    assert not page.errors, page.errors


def test_the_language_is_the_users_and_follows_them_to_another_browser(
    world: World, browser: Any
) -> None:
    w = world
    user = _user(w, "lang-reg")
    first = signed_in(browser, w, user, locale="en-US")
    first.wait_for_selector("html[lang=en]")  # a new user follows the browser
    assert first.request.get(f"{w.url}/auth/me").json()["lang"] is None
    first.select_option("#lang", "zh-CN")
    first.wait_for_selector("html[lang=zh-CN]")
    assert first.request.get(f"{w.url}/auth/me").json()["lang"] == "zh-CN"

    # another browser, set to English and never used by this user: the user's choice wins
    other = signed_in(browser, w, user, locale="en-US")
    other.wait_for_selector("html[lang=zh-CN]")
    assert "总览" in other.inner_text("#nav")
    # and another user in that browser still follows the browser
    newcomer = signed_in(browser, w, _user(w, "lang-new"), locale="en-US")
    newcomer.wait_for_selector("html[lang=en]")
    assert not first.errors and not other.errors, first.errors + other.errors


def test_the_device_page_takes_new_readings_without_a_reload(world: World, browser: Any) -> None:
    w = world
    page = signed_in(browser, w, "reg", locale="zh-CN", viewport=PHONE)
    go(page, f"{w.url}/#/device/{w.mn}?pollutant={w.pollutant}")
    page.wait_for_selector("main[data-page=device]")
    page.wait_for_selector("#chart canvas")
    page.evaluate("() => { window.sameDocument = true; }")
    before = page.inner_text("#lastts")
    value = 17.25  # four digits: shown as sent
    publish(w, w.mn, datetime.now(UTC).replace(microsecond=0), {w.pollutant: value})
    row = f"#latest tr[data-pollutant='{w.pollutant}']"
    page.wait_for_function(
        "([sel, v]) => document.querySelector(sel)?.innerText.includes(v)",
        arg=[row, str(value)],
        timeout=LIVE_MS,
    )
    assert page.inner_text("#lastts") != before
    assert page.evaluate("() => window.sameDocument === true")  # no reload happened
    no_overflow(page, "device page at 360 px")
    axe(page, "device page")
    assert not page.errors, page.errors
