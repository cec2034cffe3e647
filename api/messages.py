"""The API's human messages in the caller's language (``Accept-Language``).

Status codes, error ``type`` codes and field locations never change; only the sentence a
person reads does. English is the source text; a small table of patterns gives the
Chinese for every message the API's routes, the lifecycles (``rules/cases.py``,
``rules/alerts.py``) and QR tokens raise, the schema messages forms meet, and the case
steps the server writes (tests/unit/test_api_messages.py finds each raised message in the
source and fails when one has no pattern). A message without a pattern stays English
rather than half-translated.
Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# (pattern on the English text, Chinese template with the pattern's groups)
_ZH: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), z)
    for p, z in [
        # the request guard's answers (api/guard.py), before any route runs
        (r"^Content-Length is not a number$", "Content-Length 不是数字"),
        (r"^Content-Length is negative$", "Content-Length 不能为负数"),
        (r"^a (?:cross|same)-site request may not change anything here$", "跨站请求不能修改数据"),
        (
            r"^requests from origin (?P<o>.+) may not change anything here$",
            "来自 {o} 的请求不能修改数据",
        ),
        (
            r"^a request that changes something must send its body as application/json"
            r"(?: \(not .+\))?$",
            "修改数据的请求须以 application/json 发送请求体",
        ),
        (
            r"^the request body is larger than this route accepts \((?P<n>\d+) bytes at most\)$",
            "请求体超过此接口的上限（最多 {n} 字节）",
        ),
        (r"^the body is not UTF-8 \(JSON must be\)$", "请求体不是 UTF-8 编码（JSON 必须是）"),
        (r"^JSON decode error: (?P<e>.+)$", "JSON 解析错误：{e}"),
        (
            r"^a number must be finite \(not NaN, Infinity or 1e999\)$",
            "数字必须是有限值（不能是 NaN、Infinity 或 1e999）",
        ),
        (
            r"^a NUL character \(\\u0000\) cannot be stored as text$",
            "文本中不能含有 NUL 字符（\\u0000）",
        ),
        (
            r"^a lone surrogate \((?P<c>\\u[0-9a-f]{4})\) is not text$",
            "孤立代理项 {c} 不是有效文本",
        ),
        (r"^Internal Server Error$", "服务器内部错误"),
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
        (
            r"^device (?P<mn>\S+) is already registered; revoke it first to re-issue its "
            r"credentials$",
            "设备 {mn} 已注册；如需重新签发凭据，请先停用",
        ),
        # signing in and QR codes
        (r"^wrong user name or password$", "用户名或密码错误"),
        (r"^QR token is malformed$", "二维码内容无效"),
        (
            r"^QR token was signed with an unknown or retired key \((?P<k>.*)\)$",
            "二维码由未知或已停用的密钥签发（{k}）",
        ),
        (
            r"^QR token signature is invalid: the code is forged or altered$",
            "二维码签名无效：该码被伪造或篡改",
        ),
        (
            r"^QR code has expired: print the site's current code$",
            "二维码已过期：请打印企业当前的二维码",
        ),
        (r"^the scanned URL carries no token$", "扫描的网址不含二维码令牌"),
        (r"^QR token names an unknown enterprise \((?P<e>.*)\)$", "二维码指向未知企业（{e}）"),
        (
            r"^no enterprise of your region has this code \((?P<e>.*)\)$",
            "您的管辖区域内没有使用此二维码的企业（{e}）",
        ),
        # visits
        (r"^enterprise (?P<e>\S+) is not on the list$", "企业 {e} 不在名单上"),
        (r"^alert (?P<id>\d+) is not an alert of this site$", "告警 {id} 不属于本企业"),
        (
            r"^task (?P<id>\d+) is another inspector's: they check in first, others join their "
            r"visit$",
            "任务 {id} 属于其他检查人员：由其先登记入企，其他人员加入其检查",
        ),
        (
            r"^visit (?P<id>\d+) is not an open visit at this site$",
            "检查 {id} 不是本企业正在进行的检查",
        ),
        # users, tasks, invitations
        (
            r"^enterprise_id is required for, and only for, role 'enterprise'$",
            "企业用户必须填写所属企业（enterprise_id），其他角色不能填写",
        ),
        (
            r"^'?(?P<u>[^']+)'? is not an active inspector of the region of enterprise (?P<e>\S+)$",
            "{u} 不是企业 {e} 所在区域的在职检查人员",
        ),
        # cases and their attachments
        (
            r"^a case is about one enterprise; these alerts are of (?P<es>.+)$",
            "一个案件只涉及一家企业；所选告警分属 {es}",
        ),
        (
            r"^attachment (?P<f>.+) has (?P<n>\d+) bytes; at most (?P<m>\d+)$",
            "附件 {f} 为 {n} 字节；最多 {m} 字节",
        ),
        (r"^attachment (?P<f>.+) is not base64: (?P<why>.+)$", "附件 {f} 不是 base64 编码：{why}"),
        (
            r"^attachment quota: (?P<what>.+) holds (?P<n>\d+) bytes of attachments; (?P<m>\d+) "
            r"more would pass its (?P<q>\d+) \((?P<setting>\w+)\)$",
            "附件配额：{what} 已有附件 {n} 字节；再加 {m} 字节将超过上限 {q}（{setting}）",
        ),
        (r"^response (?P<id>\d+) was already (?P<vd_v>\w+)$", "回复 {id} 已{vd_v}"),
        (
            r"^photo (?P<f>.+) has (?P<n>\d+) bytes; at most (?P<m>\d+)$",
            "照片 {f} 为 {n} 字节；最多 {m} 字节",
        ),
        (r"^photo (?P<f>.+) is not base64: (?P<why>.+)$", "照片 {f} 不是 base64 编码：{why}"),
        (
            r"^photo (?P<f>.+) is not a PNG, JPEG, GIF or WebP image$",
            "照片 {f} 不是 PNG、JPEG、GIF 或 WebP 图片",
        ),
        # the lifecycles' refusals (rules/cases.py, rules/alerts.py)
        (
            r"^a case that is (?P<cs_from>\w+) cannot become (?P<cs_to>\w+) \(it can become: "
            r"(?P<cs_list>.+)\)$",
            "案件处于“{cs_from}”，不能转为“{cs_to}”（可转为：{cs_list}）",
        ),
        (
            r"^moving a case to (?P<cs_to>\w+) needs a note saying why$",
            "案件转为“{cs_to}”须填写理由",
        ),
        (
            r"^the case has (?P<n>\d+) open inspection task\(s\): their visits must report first$",
            "案件还有 {n} 个未完成的检查任务：须待其检查结果上报后才能办结",
        ),
        (
            r"^an alert that is (?P<as_from>\w+) cannot become (?P<as_to>\w+)$",
            "处于“{as_from}”状态的告警不能转为“{as_to}”",
        ),
        # readings, capture, files, the feed
        (
            r"^start and end need a time zone \(e\.g\. Z or \+08:00\)$",
            "开始和结束时间须带时区（如 Z 或 +08:00）",
        ),
        (r"^more than (?P<n>\d+) buckets: widen the bucket$", "分桶超过 {n} 个：请加大分桶间隔"),
        (r"^since needs a time zone \(e\.g\. Z or \+08:00\)$", "since 须带时区（如 Z 或 +08:00）"),
        (r"^at most (?P<n>\d+) days at once$", "一次最多 {n} 天"),
        (r"^no such file$", "没有此文件"),
        (r"^the server is shutting down$", "服务器正在关闭，请稍后重试"),
        # the schema's own (pydantic) messages that forms meet
        (r"^Field required$", "必填"),
        (r"^String should have at least (?P<n>\d+) characters?$", "至少 {n} 个字符"),
        (r"^String should have at most (?P<n>\d+) characters?$", "最多 {n} 个字符"),
        (r"^Input should be a valid integer.*$", "须为整数"),
        (r"^Input should be a valid number.*$", "须为数字"),
        (r"^Input should be greater than or equal to (?P<n>\S+)$", "须大于或等于 {n}"),
        (r"^Input should be less than or equal to (?P<n>\S+)$", "须小于或等于 {n}"),
        (r"^Input should be (?P<choices>'.+)$", "取值须为 {choices}"),
    ]
]
# state words inside messages, by the group's prefix: a case's (cs_…) and an alert's (as_…)
_CASE_STATES = {
    "discovered": "发现",
    "verifying": "核实",
    "rectifying": "整改",
    "feedback": "反馈",
    "closed": "办结",
    "nothing": "无",
}
_ALERT_STATES = {
    "open": "新告警",
    "acknowledged": "已确认",
    "assigned": "已指派",
    "resolved": "已办结",
    "cleared": "已消除",
}
_VERDICTS = {"accepted": "通过", "rejected": "驳回"}

# case steps the server writes (``store/cases.py``, ``api/queries/tasks.py``); a step
# a person wrote ("moved") keeps its note exactly as written
_STEP_ZH: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p, re.DOTALL), z)
    for p, z in [
        (r"^opened from alert\(s\) (?P<ids>[\d, ]+)$", "由告警 {ids} 立案"),
        (r"^response (?P<id>\d+) with (?P<n>\d+) attachment\(s\)$", "企业回复 {id}（附件 {n} 个）"),
        (r"^response (?P<id>\d+)$", "企业回复 {id}"),
        (r"^response (?P<id>\d+) accepted$", "回复 {id} 通过"),
        (r"^response (?P<id>\d+) accepted: (?P<free>.*)$", "回复 {id} 通过：{free}"),
        (r"^response (?P<id>\d+) rejected$", "回复 {id} 驳回"),
        (r"^response (?P<id>\d+) rejected: (?P<free>.*)$", "回复 {id} 驳回：{free}"),
        (r"^no response by (?P<t>\S+)$", "截至 {t} 未回复"),
        (
            r"^inspection task (?P<id>\d+) for (?P<u>\S+): (?P<free>.*)$",
            "检查任务 {id}，指派给 {u}：{free}",
        ),
        (
            r"^task (?P<id>\d+) done by visit (?P<v>\d+): (?P<free>.*)$",
            "任务 {id} 已由检查 {v} 完成：{free}",
        ),
    ]
]
SERVER_STEPS = frozenset(
    {"opened", "response", "accepted", "rejected", "escalated", "task", "task_done"}
)
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
    "photo": "照片",
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
            for k, v in groups.items():
                if k.startswith("cs_"):
                    groups[k] = ", ".join(_CASE_STATES.get(w, w) for w in v.split(", "))
                elif k.startswith("as_"):
                    groups[k] = _ALERT_STATES.get(v, v)
                elif k.startswith("vd_"):
                    groups[k] = _VERDICTS.get(v, v)
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


def localise_step(kind: str, note: str | None, accept_language: str | None) -> str | None:
    """A case step's note for the caller: the server's own sentences translated, the
    free text inside them (a reason, findings, a verdict's note) and a person's step as
    written."""
    if note is None or kind not in SERVER_STEPS or not wants_chinese(accept_language):
        return note
    for pattern, template in _STEP_ZH:
        m = pattern.match(note)
        if m:
            return template.format(**m.groupdict())
    return note


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
