"""The console as its users work in it, in headless chromium on the real stack: Chinese by
default and English on request, one time convention (the sites' zone, 24 h) even in a
browser set to another zone, every page usable on a 360 px phone, the closed loop
regulator ↔ enterprise ↔ inspector (a phone check-in for a task), the frequency guard's
refusal answered on the phone, the overview pinning a fresh critical until someone
acknowledges it, and an accessibility pass (axe-core, vendored) on every page.

Screenshots go to test-artifacts/screenshots/ (…-zh, …-en, …-phone).
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest

from tests.browser.test_console import (
    PASSWORD,
    World,
    go,
    shot,
    signed_in,
)
from tests.browser.test_console import browser as browser
from tests.browser.test_console import world as world
from tests.integration.helpers import publish_raw, scalar, token_for, topic_for, wait_for

pytestmark = pytest.mark.integration

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
CATALOGUE = Path(__file__).resolve().parents[2] / "api" / "static" / "console" / "i18n"
SHANGHAI = ZoneInfo("Asia/Shanghai")
PHONE = (360, 780)  # the narrowest phones in use: every page must work at 360 px
LIVE_MS = 10_000


def tiny_png(width: int = 4, height: int = 3) -> bytes:
    """A real PNG (the browser must draw it): one grey image, built by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def keys_shown(page: Any) -> list[str]:
    """Catalogue keys that leaked onto the page untranslated."""
    keys = json.loads((CATALOGUE / "en.json").read_text("utf-8"))
    text = page.inner_text("body")
    return [k for k in keys if re.search(rf"(?<![\w./]){re.escape(k)}(?![\w.])", text)]


def visit(page: Any, url: str) -> None:
    """Go to a console address; the same address again is a reload (no hashchange)."""
    if page.url == url:
        page.reload()
    else:
        go(page, url)


def no_overflow(page: Any, what: str) -> None:
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{what}: {width[0]} px wide in a {width[1]} px window"


def axe(page: Any, what: str) -> None:
    """No serious or critical accessibility violation (axe-core's WCAG A/AA rules)."""
    # through the DevTools protocol: a <script> tag of it would be (rightly) refused by
    # the console's strict CSP, which has no inline scripts
    page.evaluate(AXE.read_text("utf-8"))
    found = page.evaluate(
        """async () => (await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa']})).violations
             .filter(v => v.impact === 'serious' || v.impact === 'critical')
             .map(v => `${v.id}: ${v.nodes.slice(0, 3).map(n => n.target.join(' '))
                                        .join(' | ')}`)"""
    )
    assert not found, f"{what}: {found}"


def scan_url(w: World) -> str:
    admin = {"Authorization": f"Bearer {token_for(w.db_url, 'admin')}"}
    r = httpx.get(f"{w.url}/api/enterprises/{w.enterprise}/qr.svg", headers=admin)
    printed = urlsplit(r.headers["x-offsite-scan-url"])  # the public address the code carries
    return f"{w.url}{printed.path}?{printed.query}"


def publish(w: World, mn: str, ts: datetime, values: dict[str, float]) -> None:
    payload = json.dumps({"ts": ts.isoformat(), "values": values}).encode()
    publish_raw(w.mqtt_url, [(topic_for(w.topic, mn), payload)])


@pytest.fixture(scope="module")
def second(world: World) -> Iterator[tuple[str, str, float]]:
    """A device of a flue-gas point other than the first test's, and a limited pollutant
    that is not the first its limits list: (mn, pollutant, limit)."""
    mn = scalar(
        world.db_url,
        """SELECT d.mn FROM devices d JOIN point_limits l ON l.point_id = d.point_id
           WHERE d.mn <> %s AND l.pollutant = 'a21026' ORDER BY d.mn LIMIT 1""",
        world.mn,
    )
    admin = {"Authorization": f"Bearer {token_for(world.db_url, 'admin')}"}
    limits = httpx.get(f"{world.url}/api/devices/{mn}", headers=admin).json()["limits"]
    pollutant = list(limits)[-1]
    yield mn, pollutant, float(limits[pollutant])


def test_chinese_by_default_english_on_request_one_time_convention(
    world: World,
    browser: Any,
    screenshots: Path,
) -> None:
    w = world
    page = signed_in(browser, w, "reg", locale="zh-CN")
    page.wait_for_selector("main[data-page=overview]")  # a regulator lands on the overview
    assert page.get_attribute("html", "lang") == "zh-CN"
    assert "总览" in page.inner_text("#nav") and "异常告警" in page.inner_text("#nav")
    shot(page, screenshots, "overview-zh")
    for url, marker in [
        (f"#/device/{w.mn}", "device"),
        ("#/feed?state=", "feed"),
        (f"#/enterprise/{w.enterprise}", "enterprise"),
        ("#/devices", "devices"),
    ]:
        go(page, f"{w.url}/{url}")
        page.wait_for_selector(f"main[data-page={marker}]")
        if marker == "device":
            page.wait_for_selector("#chart canvas")
        text = page.inner_text("main")
        assert not re.search(r"\b(AM|PM)\b|上午|下午", text), marker
        assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:", text), f"{marker}: raw ISO time"
        assert not keys_shown(page), (marker, keys_shown(page))
        shot(page, screenshots, f"{marker}-zh")
        if marker == "device":
            latest = page.inner_text("#latest")
            assert "二氧化硫" in latest or "化学需氧量" in latest, latest
            assert "mg/m³" in latest or "mg/L" in latest, latest
            assert "正常" in latest  # the HJ 212 flag N by name
            # the browser runs in London; the page shows the sites' local time
            last = scalar(w.db_url, "SELECT last_ts FROM device_status WHERE mn = %s", w.mn)
            shown = last.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")
            assert page.inner_text("#lastts") == f"{shown} 北京时间"
            legend = page.inner_text("#chart .u-legend")
            assert re.search(r"\((mg/m³|mg/L)\)", legend), legend
    assert not page.errors, page.errors

    # the switch is kept for this user: English until changed back
    page.select_option("#lang", "en")
    page.wait_for_selector("html[lang=en]")
    page.wait_for_selector("#nav a:text-is('Overview')")
    go(page, f"{w.url}/#/device/{w.mn}")
    page.wait_for_selector("#chart canvas")
    assert "Latest values" in page.inner_text("main")
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\+8", page.inner_text("#lastts"))
    shot(page, screenshots, "device-en")
    again = page.context.new_page()
    again.goto(f"{w.url}/")
    again.wait_for_selector("html[lang=en]")
    # and the API answers in the chosen language too
    zh = page.request.get(f"{w.url}/api/alerts/99999999", headers={"Accept-Language": "zh-CN"})
    assert zh.status == 404 and zh.json()["detail"] == "未找到告警 99999999"
    # the choice is the user's, kept on the server; forgotten again for the tests after this
    assert page.request.get(f"{w.url}/auth/me").json()["lang"] == "en"
    reset = page.request.put(f"{w.url}/auth/me/language", data={"lang": None})
    assert reset.ok and reset.json()["lang"] is None, reset.text()


def test_a_language_picked_on_the_sign_in_form_becomes_the_users(
    world: World, browser: Any
) -> None:
    """Picked before signing in, English is that person's choice: kept on the server and
    shown on another browser they sign in on (a Chinese one)."""
    w = world
    ctx = browser.new_context(locale="zh-CN", timezone_id="Europe/London")
    try:
        page = ctx.new_page()
        page.goto(f"{w.url}/")
        page.wait_for_selector("#login input[name=username]")
        assert page.get_attribute("html", "lang") == "zh-CN"
        page.select_option("#lang", "en")
        page.wait_for_selector("html[lang=en]")
        page.fill("input[name=username]", "reg")
        page.fill("input[name=password]", PASSWORD)
        page.click("#login button")
        page.wait_for_selector("#who:has-text('reg')")
        assert page.get_attribute("html", "lang") == "en"
        assert page.request.get(f"{w.url}/auth/me").json()["lang"] == "en"
        other = signed_in(browser, w, "reg", locale="zh-CN")
        other.wait_for_selector("html[lang=en]")
        other.context.close()
    finally:
        reset = ctx.request.put(f"{w.url}/auth/me/language", data={"lang": None})
        forgotten = reset.ok and reset.json()["lang"] is None
        ctx.close()
    assert forgotten  # for the tests after this one


def test_device_page_from_an_alert_shows_the_alerts_pollutant(
    world: World,
    browser: Any,
    second: tuple[str, str, float],
) -> None:
    w = world
    mn, pollutant, limit = second
    page = signed_in(browser, w, "reg")
    first = page.evaluate(
        "async mn => Object.keys((await (await fetch('/api/devices/' + mn)).json()).limits)[0]",
        mn,
    )
    assert first != pollutant  # else the page would show it by luck
    go(page, f"{w.url}/#/feed?state=")
    page.wait_for_selector("#status.live")
    publish(w, mn, datetime.now(UTC), {pollutant: limit * 1.3})
    row = f"#rows tr:has(td[data-mn='{mn}']):has(td[data-rule='exceedance'])"
    page.wait_for_selector(row, timeout=LIVE_MS)
    page.click(f"{row} td[data-mn] a")
    page.wait_for_selector("main[data-page=device] #chart")
    assert page.eval_on_selector("select[name=pollutant]", "s => s.value") == pollutant
    assert not page.errors, page.errors


def test_the_closed_loop_regulator_enterprise_inspector_with_a_phone_check_in(
    world: World,
    browser: Any,
    screenshots: Path,
) -> None:
    w = world
    reg = signed_in(browser, w, "reg", locale="zh-CN")
    # the regulator opens a case from an alert selected in the feed
    publish(w, w.mn, datetime.now(UTC), {w.pollutant: w.limit * 2})
    go(reg, f"{w.url}/#/feed?state=&enterprise={w.enterprise}")
    reg.wait_for_selector("#rows input[data-pick]", timeout=LIVE_MS)
    free = scalar(
        w.db_url,
        """SELECT a.id FROM alerts a JOIN devices d ON d.mn = a.mn
           JOIN points p ON p.id = d.point_id
           WHERE p.enterprise_id = %s AND a.id NOT IN (SELECT alert_id FROM case_alerts)
           ORDER BY a.id LIMIT 1""",
        w.enterprise,
    )
    reg.check(f"#rows input[data-pick='{free}']")
    reg.click("#opencase")
    reg.wait_for_selector("main[data-page=case]")
    case_id = int(reg.url.rsplit("/", 1)[1])
    assert scalar(w.db_url, "SELECT state FROM cases WHERE id = %s", case_id) == "discovered"
    assert "剩余" in reg.inner_text("#deadline")  # a countdown to the response deadline
    reg.select_option("#move select[name=to]", "verifying")
    reg.fill("#move input[name=note]", "远程核查数据")
    reg.click("#move button")
    reg.wait_for_selector("h2 [data-state=verifying]")
    # an inspection task, the inspector picked from a list
    reg.select_option("#newtask select[name=assignee]", "insp")
    reg.fill("#newtask input[name=reason]", "现场核查分析仪")
    reg.click("#newtask button")
    reg.wait_for_selector("li[data-task]")
    task_id = int(reg.get_attribute("li[data-task]", "data-task"))
    shot(reg, screenshots, "case-regulator-zh")

    # the enterprise learns of it and answers with an attachment
    ent = signed_in(browser, w, "ent", locale="zh-CN")
    go(ent, f"{w.url}/#/cases")
    ent.wait_for_selector(f"#caselist tr[data-case='{case_id}']")
    go(ent, f"{w.url}/#/case/{case_id}")
    ent.wait_for_selector("#respond")
    ent.fill("#respond textarea", "探头已清洗，数据恢复正常")
    ent.set_input_files(
        "#respond input[type=file]",
        files=[{"name": "照片.png", "mimeType": "image/png", "buffer": b"\x89PNG\r\n\x1a\n0000"}],
    )
    ent.click("#respond button")
    ent.wait_for_selector("[data-response] a[download='照片.png']")
    shot(ent, screenshots, "case-enterprise-zh")
    assert not ent.errors, ent.errors

    # the regulator accepts the response
    reg.reload()  # the same address: a reload draws the case afresh
    reg.click("form.verdict button[data-accept='1']")
    reg.wait_for_selector("[data-verdict=accepted]")

    # the inspector, on a phone, scans the site's code and checks in for the task
    phone = browser.new_context(
        viewport={"width": PHONE[0], "height": PHONE[1]}, locale="zh-CN", is_mobile=True
    ).new_page()
    phone.errors = []
    phone.on("pageerror", lambda e: phone.errors.append(str(e)))
    phone.goto(scan_url(w))
    phone.fill("#username", "insp")
    phone.fill("#password", PASSWORD)
    phone.click("#login button")
    phone.wait_for_selector("#checkin")
    assert phone.is_checked(f"input[name=basis][value='task:{task_id}']")  # preselected
    phone.fill("#purpose", "核查分析仪")
    no_overflow(phone, "scan page")
    shot(phone, screenshots, "scan-phone-zh")
    phone.click("#checkinbtn")
    phone.wait_for_selector("#result[data-kind=task]")
    result = phone.inner_text("#result")
    assert "{" not in result and f"任务 #{task_id}" in result  # readable, not JSON
    visit_id = int(phone.get_attribute("#result", "data-visit"))
    assert scalar(w.db_url, "SELECT task_id FROM visits WHERE id = %s", visit_id) == task_id
    shot(phone, screenshots, "checked-in-phone-zh")
    phone.fill("#findings", "分析仪校准正常，探头已清洗")
    # a photo of the findings, from the phone's camera
    assert phone.get_attribute("#photos", "accept") == "image/*"
    assert phone.get_attribute("#photos", "capture") == "environment"
    phone.set_input_files(
        "#photos", files=[{"name": "探头.png", "mimeType": "image/png", "buffer": tiny_png()}]
    )
    no_overflow(phone, "check-out form")
    axe(phone, "check-out form")
    phone.click("#checkout button")
    phone.wait_for_selector("#doneout")
    assert phone.inner_text("#photocount") == "1 张"
    assert scalar(w.db_url, "SELECT state FROM inspection_tasks WHERE id = %s", task_id) == "done"
    assert not phone.errors, phone.errors

    # the regulator carries the case to its end
    for to in ("rectifying", "feedback", "closed"):
        reg.reload()
        reg.wait_for_selector("#move")
        reg.select_option("#move select[name=to]", to)
        reg.fill("#move input[name=note]", f"→ {to}")
        reg.click("#move button")
        reg.wait_for_selector(f"h2 [data-state={to}]")
    assert scalar(w.db_url, "SELECT state FROM cases WHERE id = %s", case_id) == "closed"
    assert reg.locator("#timeline li").count() >= 6
    # the inspector's photo is on the timeline, and loads (an image, not a broken link)
    reg.wait_for_function(
        "() => { const i = document.querySelector('#timeline img.photo');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    assert "现场照片" in reg.inner_text("#timeline")
    shot(reg, screenshots, "case-closed-zh")

    # the enterprise rates the visit once: the form goes, a second rating is refused
    go(ent, f"{w.url}/#/visit/{visit_id}")
    ent.select_option("#rate select[name=rating]", "4")
    ent.fill("#rate input[name=comment]", "专业高效")
    with ent.expect_response(lambda r: r.url.endswith(f"/api/visits/{visit_id}/rating")) as sent:
        ent.click("#rate button")
    assert sent.value.status == 204, sent.value.text()
    ent.wait_for_selector("#rated")
    assert ent.locator("#rate").count() == 0
    again = ent.request.post(f"{w.url}/api/visits/{visit_id}/rating", data={"rating": 1})
    assert again.status == 409
    assert (
        scalar(w.db_url, "SELECT rating_comment FROM visits WHERE id = %s", visit_id) == "专业高效"
    )
    assert not reg.errors and not ent.errors, reg.errors + ent.errors


def test_the_guards_refusal_is_answered_on_the_phone(
    world: World,
    browser: Any,
    screenshots: Path,
) -> None:
    w = world
    reg = signed_in(browser, w, "reg", locale="zh-CN")
    go(reg, f"{w.url}/#/guard")
    reg.select_option("#addlisted select[name=enterprise]", w.enterprise)
    reg.fill("#addlisted input[name=reason]", "信用良好，无事不扰")
    reg.click("#addlisted button")
    reg.wait_for_selector(f"tr[data-enterprise='{w.enterprise}']")

    phone = signed_in(browser, w, "insp", locale="zh-CN", viewport=PHONE)
    phone.goto(scan_url(w))
    phone.wait_for_selector("#checkin")
    phone.check("input[name=basis][value=own]")
    phone.fill("#purpose", "例行检查")
    phone.fill("#complaint", "")
    phone.click("#checkinbtn")
    phone.wait_for_selector("#guardnote:has-text('拒绝')")  # the 409, as a question
    no_overflow(phone, "refused scan page")
    shot(phone, screenshots, "scan-refused-phone-zh")
    assert phone.input_value("#purpose") == "例行检查"  # what was typed survives the refusal
    phone.check("input[name=basis][value=own]")
    phone.fill("#purpose", "群众投诉核查")
    phone.fill("#complaint", "居民反映夜间冒黑烟")
    phone.click("#checkinbtn")
    phone.wait_for_selector("#result")
    vid = int(phone.get_attribute("#result", "data-visit"))
    assert "居民反映夜间冒黑烟" in scalar(
        w.db_url, "SELECT justification FROM visits WHERE id = %s", vid
    )
    phone.fill("#findings", "未发现异常")
    phone.click("#checkout button")
    phone.wait_for_selector("#doneout")
    reg.reload()
    reg.wait_for_selector("#refusals tbody tr")
    assert not phone.errors and not reg.errors, phone.errors + reg.errors


def test_every_page_fits_a_phone_and_passes_axe(
    world: World,
    browser: Any,
    screenshots: Path,
) -> None:
    w = world
    case_id = scalar(w.db_url, "SELECT max(id) FROM cases")
    alert_id = scalar(w.db_url, "SELECT max(id) FROM alerts")
    visit_id = scalar(w.db_url, "SELECT max(id) FROM visits")
    pages = {
        "adm": [
            "overview",
            "feed?state=",
            "enterprises",
            f"enterprise/{w.enterprise}",
            f"device/{w.mn}",
            "devices",
            f"alert/{alert_id}",
            "visits",
            f"visit/{visit_id}",
            "cases",
            f"case/{case_id}",
            "tasks",
            "invitations",
            "guard",
            "admin",
            f"enterprise/{w.enterprise}/qr",
        ],
        "insp": ["work", "tasks", "visits"],
        "ent": [f"enterprise/{w.enterprise}", "cases", "invitations"],
    }
    for user, routes in pages.items():
        page = signed_in(browser, w, user, locale="zh-CN", viewport=PHONE)
        for route in routes:
            visit(page, f"{w.url}/#/{route}")
            page.wait_for_selector("main:not([data-page=stale]):not([data-page=''])")
            marker = page.get_attribute("main", "data-page")
            assert marker != "error", (user, route, page.inner_text("main"))
            no_overflow(page, f"{user} #/{route}")
            axe(page, f"{user} #/{route}")
        shot(page, screenshots, f"{user}-{routes[0].split('/')[0]}-phone-zh")
        page.goto(f"{w.url}/api/reports/page?enterprise={w.enterprise}")
        if user != "insp":
            page.wait_for_selector("#out h2")
            no_overflow(page, f"{user} report")
            axe(page, f"{user} report")
        assert not page.errors, (user, page.errors)
    # the sign-in and scan pages, signed out
    anon = browser.new_context(viewport={"width": PHONE[0], "height": PHONE[1]}).new_page()
    for url in (f"{w.url}/", scan_url(w)):
        anon.goto(url)
        anon.wait_for_selector("form#login:not([hidden])")
        no_overflow(anon, url)
        axe(anon, url)


def test_overview_pins_a_fresh_critical_until_someone_acknowledges_it(
    world: World,
    browser: Any,
    screenshots: Path,
    second: tuple[str, str, float],
) -> None:
    w = world
    mn, pollutant, _ = second
    page = signed_in(browser, w, "reg", locale="zh-CN")
    page.wait_for_selector("main[data-page=overview]")
    page.wait_for_selector("#status.live")
    # a fresh critical on the other channel of the device (3× its limit)
    # six minutes ago in device time, so that a reading now ends it (clear_after 5 min)
    t0 = datetime.now(UTC) - timedelta(minutes=6)
    other = next(p for p in ("a21026", "a21002", "a34013") if p != pollutant)
    lim = scalar(
        w.db_url,
        """SELECT l.limit_value FROM point_limits l JOIN devices d ON d.point_id = l.point_id
           WHERE d.mn = %s AND l.pollutant = %s""",
        mn,
        other,
    )
    publish(w, mn, t0, {other: lim * 3})
    pinned = f"#pinned .pinned:has(a[href='#/device/{mn}?pollutant={other}'])"
    page.wait_for_selector(pinned, timeout=LIVE_MS)
    aid = int(page.get_attribute(pinned, "data-id"))
    assert page.is_visible("#critical")
    shot(page, screenshots, "overview-critical-zh")
    # it survives a reload, and the engine clearing it (the condition gone for 6 min)
    page.reload()
    page.wait_for_selector(f"#pinned .pinned[data-id='{aid}']")
    assert int(page.get_attribute("#critical", "data-count")) >= 1
    publish(w, mn, t0 + timedelta(minutes=6), {other: lim * 0.2})
    wait_for(
        lambda: scalar(w.db_url, "SELECT state FROM alerts WHERE id = %s", aid) == "cleared",
        timeout=15,
        what="the critical cleared by the engine",
    )
    page.reload()
    page.wait_for_selector(f"#pinned .pinned[data-id='{aid}'][data-state=cleared]")
    page.click(f"#pinned .pinned[data-id='{aid}'] button[data-ack]")
    page.wait_for_selector(f"#pinned .pinned[data-id='{aid}']", state="detached")
    assert scalar(w.db_url, "SELECT acknowledged_by FROM alerts WHERE id = %s", aid) == "reg"
    assert scalar(w.db_url, "SELECT state FROM alerts WHERE id = %s", aid) == "cleared"
    # tiles and device statuses
    assert page.locator("#sites .tile").count() >= 2
    assert page.locator("#devstatus [data-status=online]").count() >= 1
    assert not page.errors, page.errors


def test_a_long_unbroken_name_does_not_widen_a_phone_page(world: World, browser: Any) -> None:
    # names come from registries: a long one without a space (a registered name in Latin
    # letters, a code) must wrap, not push the page past a 360 px phone
    w = world
    long_id = "ent-long-name"
    long_name = "ZhejiangProvincialEnvironmentalTechnologyCompanyLimited" * 2
    with psycopg.connect(w.db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO enterprises (id, name) VALUES (%s, %s)", (long_id, long_name))
    try:
        page = signed_in(browser, w, "adm", locale="zh-CN", viewport=PHONE)
        for route in ("admin", "enterprises", f"enterprise/{long_id}"):
            visit(page, f"{w.url}/#/{route}")
            page.wait_for_selector("main:not([data-page=stale]):not([data-page=''])")
            assert long_name in page.inner_text("main"), route
            no_overflow(page, f"adm #/{route} with a long name")
            # the body clips what overflows it (overflow-x: hidden): cut off is not wrapped
            body = page.evaluate("() => [document.body.scrollWidth, window.innerWidth]")
            assert body[0] <= body[1], f"#/{route}: the name runs {body[0]} px wide"
        assert not page.errors, page.errors
    finally:
        with psycopg.connect(w.db_url, autocommit=True) as conn:
            conn.execute("DELETE FROM enterprises WHERE id = %s", (long_id,))
