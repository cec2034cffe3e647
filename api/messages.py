"""The API's human messages in the caller's language (``Accept-Language``).

Status codes, error ``type`` codes and field locations never change; only the sentence a
person reads does. English is the source text; a small table of patterns gives the
Chinese for the messages users meet in the console (not found, refused, conflicts, the
frequency guard). A message without a pattern stays English rather than half-translated.
Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# (pattern on the English text, Chinese template with the pattern's groups)
_ZH: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), z)
    for p, z in [
        (
            r"^visit refused \(recorded as refusal (?P<n>\d+)\): (?P<why>.+)$",
            "检查被拒绝（已记录为第 {n} 号拒绝）：{why}",
        ),
        (
            r"^visited (?P<n>\d+) time\(s\) in the last (?P<d>[\d.]+) days \(at most (?P<m>\d+) "
            r"without a reason\)$",
            "近 {d} 天已检查 {n} 次（无事由时最多 {m} 次）",
        ),
        (r"^the enterprise is on the no-disturbance list$", "该企业在“无事不扰”名单上"),
        (r"^give an open case, task or complaint$", "请提供在办案件、检查任务或投诉事由"),
        (r"^(?P<what>.+) not found$", "未找到{what}"),
        (r"^alert\(s\) not found: (?P<ids>.+)$", "未找到告警：{ids}"),
        (r"^visit (?P<id>\d+) is already rated$", "检查 {id} 已评价，不能重复评价"),
        (r"^visit (?P<id>\d+) is already checked out$", "检查 {id} 已离开登记"),
        (r"^no active user (?P<u>.+)$", "没有在职用户 {u}"),
        (
            r"^user (?P<u>\S+) is (?P<r>\w+): only (?P<roles>.+) may be assigned$",
            "用户 {u} 的角色是 {r}：只能指派给检查人员或监管人员",
        ),
        (r"^'(?P<u>.+)' is not an active inspector$", "{u} 不是在职检查人员"),
        (r"^case (?P<id>\d+) is closed$", "案件 {id} 已办结"),
        (r"^case (?P<id>\d+) is not an open case of this site$", "案件 {id} 不是本企业的在办案件"),
        (r"^task (?P<id>\d+) is not a task at this site$", "任务 {id} 不属于本企业"),
        (r"^task (?P<id>\d+) is already done$", "任务 {id} 已完成"),
        (r"^alert (?P<id>\d+) belongs to another enterprise$", "告警 {id} 属于其他企业"),
        (r"^enterprise (?P<e>\S+) is outside your region$", "企业 {e} 不在您的管辖区域"),
        (
            r"^this printed QR code was revoked: the site has a newer one$",
            "此二维码已作废：企业已有新的二维码",
        ),
        (r"^only an inspector who checked in can check out$", "只有登记入企的检查人员可以离开登记"),
        (r"^role (?P<r>\w+) may not do this \(needs (?P<n>.+)\)$", "角色 {r} 无权执行此操作"),
        (r"^the token is unknown, expired or revoked: sign in again$", "登录已失效，请重新登录"),
        (r"^sign in: send 'Authorization: Bearer <token>'$", "请先登录"),
        (r"^too many requests: retry in (?P<s>\d+) s$", "请求过于频繁，请 {s} 秒后重试"),
        (r"^start must be before end$", "开始时间必须早于结束时间"),
        (r"^invitation (?P<id>\d+) is (?P<s>\w+)$", "邀约 {id} 当前状态为 {s}"),
        (r"^device (?P<mn>\S+) is already revoked$", "设备 {mn} 已停用"),
    ]
]
# nouns inside "… not found"
_NOUNS = {
    "alert": "告警",
    "visit": "检查",
    "case": "案件",
    "task": "任务",
    "device": "设备",
    "enterprise": "企业",
    "user": "用户",
    "attachment": "附件",
    "monitoring point": "监测点",
    "response": "回复",
    "invitation": "邀约",
}


def wants_chinese(accept_language: str | None) -> bool:
    """True when Chinese ranks above English in the header (q-values honoured)."""
    best: dict[str, float] = {}
    for part in (accept_language or "").split(","):
        bits = part.strip().split(";")
        tag = bits[0].strip().lower()
        if not tag:
            continue
        q = 1.0
        for b in bits[1:]:
            k, _, v = b.strip().partition("=")
            if k == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        base = tag.split("-")[0]
        best[base] = max(best.get(base, 0.0), q)
    return best.get("zh", 0.0) > best.get("en", 0.0) and best.get("zh", 0.0) > 0


def _noun(what: str) -> str:
    for en, zh in sorted(_NOUNS.items(), key=lambda kv: -len(kv[0])):
        if what.startswith(en + " "):
            return f"{zh} {what[len(en) + 1 :]}"
    return what


def to_chinese(text: str) -> str:
    """The Chinese sentence for an English message; parts joined by '; ' or ': ' are
    translated one by one; the text itself when no pattern knows it."""
    for pattern, template in _ZH:
        m = pattern.match(text)
        if m:
            groups = {k: v for k, v in m.groupdict().items()}
            if "what" in groups:
                groups["what"] = _noun(groups["what"])
            if "why" in groups:
                groups["why"] = to_chinese(groups["why"])
            return template.format(**groups)
    for sep, zh_sep in (("; ", "；"), (": ", "：")):
        if sep in text:
            parts = text.split(sep)
            done = [to_chinese(p) for p in parts]
            if done != parts:
                return zh_sep.join(done)
    return text


def localise(detail: object, accept_language: str | None) -> object:
    """``detail`` for the caller: a string, or FastAPI-style error items whose ``msg``
    is translated (``loc`` and ``type`` stay as they are)."""
    if not wants_chinese(accept_language):
        return detail
    tr: Callable[[str], str] = to_chinese
    if isinstance(detail, str):
        return tr(detail)
    if isinstance(detail, list):
        return [
            {**d, "msg": tr(d["msg"])}
            if isinstance(d, dict) and isinstance(d.get("msg"), str)
            else d
            for d in detail
        ]
    return detail
