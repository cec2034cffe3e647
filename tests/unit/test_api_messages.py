"""The API's human messages follow Accept-Language; codes and field locations do not."""

from __future__ import annotations

from offsite.api.messages import localise, to_chinese, wants_chinese


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
