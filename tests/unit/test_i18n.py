"""Every string the console shows has a translation in both languages.

The catalogues (api/static/console/i18n/<lang>.json) must hold the same keys with
non-empty text and the same {placeholders}; every key the pages use — literal t('…')
calls in the modules, data-i18n attributes in the HTML, and the families built from
codes (pollutants, HJ 212 flags, rules, severities, states, roles) — must be in both.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[2] / "api" / "static"
I18N = STATIC / "console" / "i18n"
LANGS = ("zh-CN", "en")
SOURCES = [*sorted((STATIC / "console").glob("*.js")), *sorted(STATIC.glob("*.html"))]

# families of keys the pages build from codes, and where the codes come from
FAMILIES = {
    "severity": ("critical", "major", "warning", "info"),
    "state": ("open", "acknowledged", "assigned", "resolved", "cleared"),
    "role": ("admin", "regulator", "inspector", "enterprise"),
    "casestate": ("discovered", "verifying", "rectifying", "feedback", "closed"),
    "taskstate": ("open", "done"),
    "invitationstate": ("requested", "scheduled", "done", "declined"),
    "visitkind": ("unscheduled", "task", "advisory"),
    "pointkind": ("flue_gas", "wastewater"),
    "status": ("online", "offline", "never", "revoked"),
    "lang": LANGS,
    "act": ("acknowledge", "assign", "resolve", "reopen", "comments"),
    "event": (
        "opened",
        "updated",
        "acknowledged",
        "assigned",
        "resolved",
        "cleared",
        "reopened",
        "commented",
    ),
    "casestep": (
        "opened",
        "moved",
        "response",
        "accepted",
        "rejected",
        "escalated",
        "task",
        "task_done",
    ),
    "kind": ("min", "hour", "day"),
}


def catalogue(lang: str) -> dict[str, str]:
    return json.loads((I18N / f"{lang}.json").read_text("utf-8"))


def i18n_list(name: str) -> list[str]:
    """A constant list or the keys of a constant object in i18n.js."""
    src = (STATIC / "console" / "i18n.js").read_text("utf-8")
    m = re.search(rf"const {name} = (\[[^\]]*\]|\{{[^}}]*\}})", src, re.S)
    assert m, name
    body = m.group(1)
    if body.startswith("["):
        return re.findall(r"'([^']+)'", body)
    return re.findall(r"(\w+):", body)


def used_keys() -> set[str]:
    """Literal t('…') keys, data-i18n attributes, and quoted strings shaped like a key of
    a known group ('act.assignnote' in a table the page passes to t later)."""
    groups = {k.split(".")[0] for k in catalogue("en")}
    keys: set[str] = set()
    for path in SOURCES:
        text = path.read_text("utf-8")
        keys |= set(re.findall(r"\bt\(\s*'([a-z][\w.-]*)'", text))
        keys |= set(re.findall(r'data-i18n(?:-[a-z-]+)?="([^"]+)"', text))
        for m in re.findall(r"'([a-z]+)\.([a-z_][\w-]*)'", text):
            if m[0] in groups:
                keys.add(f"{m[0]}.{m[1]}")
    return keys


def family_keys() -> set[str]:
    keys = {f"{fam}.{code}" for fam, codes in FAMILIES.items() for code in codes}
    keys |= {f"pollutant.{c}" for c in i18n_list("UNITS")}
    keys |= {f"flag.{f}" for f in i18n_list("FLAGS")}
    keys |= {f"rule.{r}" for r in i18n_list("RULES")}
    keys |= {f"msg.{r}" for r in i18n_list("RULES")}
    visits = (STATIC / "console" / "visits.js").read_text("utf-8")
    fields = re.search(r"const FIELDS = \[([^\]]*)\]", visits, re.S)
    assert fields
    keys |= {f"visitfield.{f}" for f in re.findall(r"'([^']+)'", fields.group(1))}
    return keys


@pytest.mark.parametrize("lang", LANGS)
def test_every_used_key_is_translated(lang: str) -> None:
    cat = catalogue(lang)
    missing = sorted((used_keys() | family_keys()) - set(cat))
    assert not missing, f"{lang}.json lacks {missing}"


def test_catalogues_hold_the_same_keys_and_placeholders() -> None:
    zh, en = catalogue("zh-CN"), catalogue("en")
    assert set(zh) == set(en), sorted(set(zh) ^ set(en))
    for key in zh:
        assert zh[key].strip() and en[key].strip(), key
        assert set(re.findall(r"\{(\w+)\}", zh[key])) == set(re.findall(r"\{(\w+)\}", en[key])), key


def test_chinese_is_chinese() -> None:
    """A key copied over from English untranslated shows up here (codes and units aside)."""
    zh = catalogue("zh-CN")
    latin = {k: v for k, v in zh.items() if not re.search(r"[\u4e00-\u9fff]", v)}
    allowed = {"common.csv", "lang.en", "lang.zh-CN", "app.title", "time.zone", "common.ok"}
    allowed |= {k for k in zh if k.startswith(("range.", "flag.", "kind."))}
    assert set(latin) <= allowed, sorted(set(latin) - allowed)


def test_the_fixture_catches_a_missing_key(tmp_path: Path) -> None:
    """The scan itself works: a t('…') call with an unknown key is reported."""
    text = "x = t('no.such.key'); y = t('feed.title', {n: 1});"
    found = set(re.findall(r"\bt\(\s*'([a-z][\w.-]*)'", text))
    assert found == {"no.such.key", "feed.title"}
    assert "no.such.key" not in catalogue("en")


def test_pages_set_their_language_and_use_no_inline_script() -> None:
    """A strict CSP is coming: no inline event handlers, no inline script bodies."""
    for page in sorted(STATIC.glob("*.html")):
        html = page.read_text("utf-8")
        assert re.search(r'<html lang="zh-CN"', html), page.name
        assert not re.search(r"\son[a-z]+=", html), page.name
        for m in re.finditer(r"<script([^>]*)>(.*?)</script>", html, re.S):
            assert "src=" in m.group(1) and not m.group(2).strip(), page.name


def test_every_packaged_rule_is_in_the_console_list() -> None:
    """A rule the engine ships raises alerts the console must name in both languages
    (its name and message come from RULES, which the translation tests check)."""
    from offsite.rules.rules_file import load_rules

    shipped = {r.name for r in load_rules(None).rules}
    assert shipped <= set(i18n_list("RULES")), shipped - set(i18n_list("RULES"))
