"""The API's human messages follow Accept-Language; codes and field locations do not."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from offsite.api.messages import SERVER_STEPS, localise, localise_step, to_chinese, wants_chinese

CJK = re.compile(r"[\u4e00-\u9fff]")


def test_language_choice_honours_q_values() -> None:
    assert wants_chinese("zh-CN,zh;q=0.9,en;q=0.8")
    assert wants_chinese("zh")
    assert not wants_chinese("en-US,en;q=0.9,zh-CN;q=0.8")
    assert not wants_chinese(None) and not wants_chinese("") and not wants_chinese("fr")
    assert not wants_chinese("zh;q=0")


def test_messages_users_meet_are_translated() -> None:
    assert to_chinese("alert 12 not found") == "未找到告警 12"
    assert to_chinese("monitoring point P-1 not found") == "未找到监测点 P-1"
    assert to_chinese("visit 3 is already rated") == "检查 3 已评价，不能重复评价"
    refused = (
        "visit refused (recorded as refusal 7): visited 2 time(s) in the last 90 days "
        "(at most 2 without a reason): give an open case, task or complaint"
    )
    assert to_chinese(refused) == (
        "检查被拒绝（已记录为第 7 号拒绝）：近 90 天已检查 2 次（无事由时最多 2 次）："
        "请提供在办案件、检查任务或投诉事由"
    )
    # unknown text stays English rather than half-translated
    assert to_chinese("something new happened") == "something new happened"


def test_codes_and_fields_stay_stable() -> None:
    items = [{"loc": ["body", "assignee"], "msg": "no active user bob", "type": "unknown_user"}]
    zh = localise(items, "zh-CN")
    assert zh == [{"loc": ["body", "assignee"], "msg": "没有在职用户 bob", "type": "unknown_user"}]
    assert localise(items, "en") is items
    assert localise("alert 1 not found", "en") == "alert 1 not found"
    assert localise({"odd": 1}, "zh") == {"odd": 1}


# -- every message the API raises has its Chinese -------------------------------------------
ROOT = Path(__file__).resolve().parents[2]
# where people's messages are raised: the routes and auth (HTTPException), QR tokens
# (TokenError), the lifecycles' refusals (InvalidTransition)
SOURCES = [*sorted((ROOT / "api" / "routes").glob("*.py")), ROOT / "api" / "auth.py"]
RAISERS = {
    ROOT / "api" / "qr.py": "TokenError",
    ROOT / "rules" / "cases.py": "InvalidTransition",
    ROOT / "rules" / "alerts.py": "InvalidTransition",
}
SAMPLE = "7"  # what each {placeholder} becomes: a number fits every id, count and name


def _text(node: ast.expr) -> str | None:
    """The message a literal or f-string builds, its placeholders filled with SAMPLE."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else SAMPLE for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left), _text(node.right)
        return None if left is None or right is None else left + right
    return None


def _raised(path: Path, name: str) -> list[tuple[str, str]]:
    out = []
    for n in ast.walk(ast.parse(path.read_text("utf-8"))):
        if not isinstance(n, ast.Call):
            continue
        called = getattr(n.func, "id", None) or getattr(n.func, "attr", None)
        if called != name:
            continue
        args = n.args[1:2] if name == "HTTPException" else n.args[:1]
        args += [k.value for k in n.keywords if k.arg == "detail"]
        for a in args:
            text = _text(a)
            if text is not None:
                out.append((f"{path.relative_to(ROOT)}:{n.lineno}", text))
    return out


def _all_raised() -> list[tuple[str, str]]:
    found = [m for p in SOURCES for m in _raised(p, "HTTPException")]
    found += [m for p, name in RAISERS.items() for m in _raised(p, name)]
    return found


def test_the_scan_finds_the_messages_it_must_check() -> None:
    texts = [t for _, t in _all_raised()]
    assert len(texts) > 50
    assert "QR token is malformed" in texts and "wrong user name or password" in texts
    assert any(t.startswith("a case that is 7 cannot become") for t in texts)


def test_every_message_the_api_raises_reads_in_chinese() -> None:
    untranslated = [
        f"{where}: {text}" for where, text in _all_raised() if not CJK.search(to_chinese(text))
    ]
    assert not untranslated, "no Chinese in api/messages.py for:\n" + "\n".join(untranslated)


def test_state_words_inside_refusals_are_translated() -> None:
    assert (
        to_chinese(
            "a case that is verifying cannot become feedback (it can become: closed, rectifying)"
        )
        == "案件处于“核实”，不能转为“反馈”（可转为：办结, 整改）"
    )
    assert to_chinese("an alert that is resolved cannot become acknowledged") == (
        "处于“已办结”状态的告警不能转为“已确认”"
    )
    assert to_chinese("response 4 was already rejected") == "回复 4 已驳回"
    assert to_chinese("Field required") == "必填"


def test_case_steps_the_server_wrote_follow_the_language_and_peoples_words_do_not() -> None:
    zh = "zh-CN,zh;q=0.9"
    assert localise_step("opened", "opened from alert(s) 3, 4", zh) == "由告警 3, 4 立案"
    assert localise_step("response", "response 9 with 2 attachment(s)", zh) == (
        "企业回复 9（附件 2 个）"
    )
    assert localise_step("rejected", "response 9 rejected: photo unreadable", zh) == (
        "回复 9 驳回：photo unreadable"  # the regulator's note as written
    )
    assert localise_step("task", "inspection task 5 for insp: check the probe", zh) == (
        "检查任务 5，指派给 insp：check the probe"
    )
    assert localise_step("task_done", "task 5 done by visit 8: alert 3 not found", zh) == (
        "任务 5 已由检查 8 完成：alert 3 not found"  # findings are not translated
    )
    assert localise_step("escalated", "no response by 2026-12-06T10:00+00:00", zh) == (
        "截至 2026-12-06T10:00+00:00 未回复"
    )
    # a person's step, English asked for, or no note: unchanged
    assert localise_step("moved", "response 9", zh) == "response 9"
    assert localise_step("opened", "opened from alert(s) 3", "en") == "opened from alert(s) 3"
    assert localise_step("opened", None, zh) is None


def test_every_step_the_server_writes_has_a_translation() -> None:
    """The notes store/cases.py and api/queries/tasks.py build, as the code writes them."""
    for kind, note in [
        ("opened", "opened from alert(s) 1"),
        ("response", "response 1"),
        ("accepted", "response 1 accepted"),
        ("accepted", "response 1 accepted: fine"),
        ("rejected", "response 1 rejected"),
        ("task", "inspection task 1 for a: b"),
        ("task_done", "task 1 done by visit 2: c"),
        ("escalated", "no response by 2026-01-01T00:00+00:00"),
    ]:
        assert CJK.search(localise_step(kind, note, "zh") or ""), (kind, note)
    assert {"opened", "response", "accepted", "rejected", "task", "task_done"} <= SERVER_STEPS
