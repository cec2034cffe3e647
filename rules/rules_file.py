"""Rules files: the TOML that says which detector runs on which series, with what
parameters and gating (README "Rules", docs/rules.md).

A rules file has ``[defaults]``, ``[[rule]]`` entries that bind a detector to device
types and pollutants, ``[[override]]`` entries that change a rule for a device type, an
enterprise, a monitoring point or one device, ``[offline]``, ``[cases]`` and
``[[silence]]`` windows. Everything is checked at load: the file's shape and value types
by pydantic models (unknown keys refused everywhere), then what spans entries
(duplicates, references, detector parameters). An error names the line of the entry or
key at fault. Loading is pure (text in, ``RuleSet`` out); reading the file is the
caller's job.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import fields
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from offsite.rules.config import (
    GATING_KEYS,
    KINDS,
    LEVELS,
    Gating,
    OverrideDef,
    RuleDef,
    RuleSet,
    Silence,
    apply_gating,
)
from offsite.rules.detectors import CATALOG
from offsite.rules.errors import RulesFileError
from offsite.rules.findings import SEVERITY_RANK

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class _Where:
    """Line numbers of ``[[table]]`` headers and keys, for error messages."""

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.lines = text.splitlines()
        self.headers: dict[str, list[int]] = {}
        for i, line in enumerate(self.lines, 1):
            m = re.match(r"^\s*\[\[\s*([A-Za-z_]+)\s*\]\]", line)
            if m:
                self.headers.setdefault(m.group(1), []).append(i)
            m = re.match(r"^\s*\[\s*([A-Za-z_]+)\s*\]\s*(#.*)?$", line)
            if m:
                self.headers.setdefault(m.group(1), []).append(i)

    def line(self, table: str, index: int = 0, key: str | None = None) -> int:
        starts = self.headers.get(table, [])
        if index >= len(starts):
            return 1
        start = starts[index]
        if key:
            for j in range(start, len(self.lines)):
                if (
                    j > start
                    and re.match(r"^\s*\[", self.lines[j])
                    and not re.match(rf"^\s*\[\s*{re.escape(table)}\s*\.", self.lines[j])
                ):
                    break  # the next table, but not this entry's own [table.params]
                if re.match(rf"^\s*{re.escape(key)}\s*=", self.lines[j]) or re.search(
                    rf"[{{,]\s*{re.escape(key)}\s*=", self.lines[j]
                ):
                    return j + 1
        return start

    def key_line(self, key: str) -> int:
        """The line of a top-level key: ``key = …``, or a ``[key]``/``[[key]]`` header."""
        for i, line in enumerate(self.lines, 1):
            if re.match(rf"^\s*{re.escape(key)}\s*=", line) or re.match(
                rf"^\s*\[\[?\s*{re.escape(key)}\s*[\].]", line
            ):
                return i
        return 1

    def error(self, table: str, index: int, key: str | None, msg: str) -> RulesFileError:
        return RulesFileError(f"{self.source}:{self.line(table, index, key)}: {msg}")


def duration_s(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative: {value!r}")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _UNIT_S[m.group(2)]
    raise ValueError(f'not a duration: {value!r} (use e.g. 30, "90s", "5m", "1h")')


def _strings(val: Any, what: str) -> tuple[str, ...]:
    if isinstance(val, str):
        return (val,)
    if isinstance(val, list) and all(isinstance(v, str) for v in val):
        return tuple(val)
    raise ValueError(f"{what} must be a string or a list of strings, not {val!r}")


def _check_params(
    detector: str, params: Mapping[str, Any], where: _Where, table: str, idx: int
) -> None:
    cls = CATALOG[detector]
    known = {f.name for f in fields(cls)}
    for k in params:
        if k not in known:
            raise where.error(
                table,
                idx,
                k,
                f"detector {detector!r} has no parameter {k!r} "
                f"(it has: {', '.join(sorted(known)) or 'none'})",
            )
    try:
        cls(**params)
    except (TypeError, ValueError) as exc:
        raise where.error(table, idx, "params", f"bad params for {detector!r}: {exc}") from exc


# -- the file's shape, as pydantic models ----------------------------------------------
# Each value is checked by a "before" validator that raises ValueError with the message
# the file's author reads (pydantic's own wording would name Python types); ``_refusal``
# turns the first error into "file:line: message" with the line lookup of ``_Where``.
# What needs more than one entry (a rule defined twice, an override of an unknown rule,
# params against the detector) is checked after the shape, in ``parse_rules``.


def _severity(v: Any) -> str:
    if not isinstance(v, str) or v not in SEVERITY_RANK:
        raise ValueError(f"severity must be one of {sorted(SEVERITY_RANK)}, not {v!r}")
    return v


def _count(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ValueError(f"count must be an integer ≥ 1, not {v!r}")
    return v


def _warm_up(v: Any, info: ValidationInfo) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ValueError(f"{info.field_name} must be an integer ≥ 0, not {v!r}")
    return v


def _number(v: Any, info: ValidationInfo) -> float:
    if not isinstance(v, int | float) or isinstance(v, bool):
        raise ValueError(f"{info.field_name} must be a number, not {v!r}")
    return float(v)


def _flag(v: Any, info: ValidationInfo) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"{info.field_name} must be true or false, not {v!r}")
    return v


def _string_list(v: Any, info: ValidationInfo) -> tuple[str, ...]:
    return _strings(v, str(info.field_name))


def _kinds(v: Any) -> frozenset[str]:
    kinds = frozenset(_strings(v, "kinds"))
    bad = kinds - set(KINDS)
    if bad:
        raise ValueError(f"unknown kinds {sorted(bad)} (known: {', '.join(KINDS)})")
    return kinds


def _rule_name(v: Any) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", v):
        raise ValueError(f"rule needs a name of lower-case letters, digits and _ (got {v!r})")
    return v


def _unknown_detector(v: Any) -> ValueError:
    return ValueError(f"unknown detector {v!r} (known: {', '.join(sorted(CATALOG))})")


def _detector(v: Any) -> str:
    if not isinstance(v, str) or v not in CATALOG:
        raise _unknown_detector(v)
    return v


def _table(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ValueError("params must be a table")
    return v


def _zoned(v: Any, info: ValidationInfo) -> datetime:
    if not isinstance(v, datetime) or v.tzinfo is None:
        raise ValueError(
            f"{info.field_name} must be a TOML date-time with a zone, "
            "e.g. 2026-11-26T08:00:00+08:00"
        )
    return v


def _reason(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ValueError("a silence needs a reason (it is recorded on every alert it mutes)")
    return v.strip()


def _intervals(v: Any) -> float:
    try:
        out = float(v)
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc)) from exc
    if out <= 0:
        raise ValueError("offline.intervals must be > 0")
    return out


def _offline_severity(v: Any) -> str:
    if not isinstance(v, str) or v not in SEVERITY_RANK:
        raise ValueError(f"offline.severity must be one of {sorted(SEVERITY_RANK)}")
    return v


def _offline_enabled(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("offline.enabled must be true or false")
    return v


def _case_severity(v: Any) -> str | None:
    if v == "none":
        return None
    if not isinstance(v, str) or v not in SEVERITY_RANK:
        raise ValueError(
            f'cases.open_for_severity must be "none" or one of {sorted(SEVERITY_RANK)}, not {v!r}'
        )
    return v


def _base(v: Any) -> str:
    if v != "default":
        raise ValueError(f'base must be "default" (the packaged rules), not {v!r}')
    return "default"


Severity = Annotated[str | None, BeforeValidator(_severity)]
Count = Annotated[int | None, BeforeValidator(_count)]
WarmUp = Annotated[int | None, BeforeValidator(_warm_up)]
Score = Annotated[float | None, BeforeValidator(_number)]
Flag = Annotated[bool | None, BeforeValidator(_flag)]
Duration = Annotated[float | None, BeforeValidator(duration_s)]
Strings = Annotated[tuple[str, ...] | None, BeforeValidator(_string_list)]
Kinds = Annotated[frozenset[str] | None, BeforeValidator(_kinds)]
Selector = Annotated[str | None, BeforeValidator(lambda v: str(v))]
Table = Annotated[dict[str, Any], BeforeValidator(_table)]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _GatingKeys(_Shape):
    """The gating keys, allowed in ``[defaults]``, a rule and an override."""

    severity: Severity = None
    count: Count = None
    warm_up: WarmUp = None
    routine: WarmUp = None
    routine_window: Duration = None
    warm_up_for: Duration = None
    for_: Duration = Field(default=None, alias="for")
    clear_after: Duration = None
    clear_readings: WarmUp = None
    clear_score: Score = None
    cooldown: Duration = None
    critical_score: Score = None
    mute_on_maintenance: Flag = None
    enabled: Flag = None

    def gating(self) -> dict[str, Any]:
        """The gating keys given, by their names in the file."""
        given = self.model_dump(by_alias=True, exclude_none=True)
        return {k: v for k, v in given.items() if k in GATING_KEYS}


class _Defaults(_GatingKeys):
    kinds: Kinds = None


class _RuleEntry(_GatingKeys):
    name: Annotated[str, BeforeValidator(_rule_name)] = Field(default=None, validate_default=True)
    detector: Annotated[str | None, BeforeValidator(_detector)] = None
    params: Table = Field(default_factory=dict)
    device_types: Strings = None
    pollutants: Strings = None
    kinds: Kinds = None

    @model_validator(mode="after")
    def _named_detector(self) -> _RuleEntry:
        if self.detector is None and self.name not in CATALOG:  # detector defaults to name
            raise _unknown_detector(self.name)
        return self


_LIFECYCLE = ("clear_after", "clear_readings", "cooldown")


class _OverrideEntry(_GatingKeys):
    rule: Any = None
    device_type: Selector = None
    enterprise: Selector = None
    point: Selector = None
    device: Selector = None
    params: Table = Field(default_factory=dict)
    pollutants: Strings = None

    @model_validator(mode="after")
    def _one_level(self) -> _OverrideEntry:
        if len(self.levels) != 1:
            raise ValueError(f"an override names exactly one of {', '.join(LEVELS)}")
        return self

    @model_validator(mode="after")
    def _no_lifecycle(self) -> _OverrideEntry:
        # the alert book clears and cools down by rule, for every series it binds
        given = [k for k in _LIFECYCLE if getattr(self, k) is not None]
        if given:
            raise ValueError(
                f"an override cannot set {', '.join(given)}: when an alert clears or may "
                "open again is its rule's, for every series the rule binds (set it on "
                "the [[rule]] or in [defaults])"
            )
        return self

    @property
    def levels(self) -> list[str]:
        return [lv for lv in LEVELS if getattr(self, lv) is not None]


class _SilenceEntry(_Shape):
    start: Annotated[datetime, BeforeValidator(_zoned)] = Field(default=None, validate_default=True)
    end: Annotated[datetime, BeforeValidator(_zoned)] = Field(default=None, validate_default=True)
    reason: Annotated[str, BeforeValidator(_reason)] = Field(default=None, validate_default=True)
    rules: Strings = None
    device_type: Selector = None
    enterprise: Selector = None
    point: Selector = None
    device: Selector = None

    @field_validator("end")
    @classmethod
    def _after_start(cls, end: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("start")
        if start is not None and end <= start:
            raise ValueError("end must be after start")
        return end


class _Offline(_Shape):
    intervals: Annotated[float, BeforeValidator(_intervals)] = 5.0
    severity: Annotated[str, BeforeValidator(_offline_severity)] = "major"
    clear_after: Annotated[float, BeforeValidator(duration_s)] = 0.0
    enabled: Annotated[bool, BeforeValidator(_offline_enabled)] = True


class _Cases(_Shape):
    # the severity from which the engine opens a case by itself; "none": people only
    open_for_severity: Annotated[str | None, BeforeValidator(_case_severity)] = None


_M = TypeVar("_M", bound=_Shape)


class _Document(_Shape):
    """The top level; each entry and table is checked by its own model, in the order the
    file is read, so a file with several errors is refused for the one it always was."""

    version: Any = None
    base: Annotated[str | None, BeforeValidator(_base)] = None
    defaults: dict[str, Any] = Field(default_factory=dict)
    rule: list[dict[str, Any]] = Field(default_factory=list)
    override: list[dict[str, Any]] = Field(default_factory=list)
    silence: list[dict[str, Any]] = Field(default_factory=list)
    offline: dict[str, Any] = Field(default_factory=dict)
    cases: dict[str, Any] = Field(default_factory=dict)


_TOP_KEYS = tuple(_Document.model_fields)
_TABLES: dict[str, type[_Shape]] = {"defaults": _Defaults, "offline": _Offline, "cases": _Cases}
_GATING_FIELDS = tuple(f.alias or n for n, f in _GatingKeys.model_fields.items())
# within one entry, the order its keys were always checked in (params against the
# detector, a check of code, comes after "params" and before what follows it)
_ORDER = {
    "rule": (
        "name",
        "detector",
        None,
        "*extra*",
        "params",
        "kinds",
        "pollutants",
        "device_types",
        "*gating*",
    ),
    "override": ("*extra*", "params", "*gating*", "pollutants"),
    "silence": ("start", "end", "reason", "rules"),
    "defaults": ("*gating*", "kinds"),
    "offline": ("intervals", "severity", "clear_after", "enabled"),
    "cases": ("*extra*",),
}
_AFTER_PARAMS = {
    "rule": {"kinds", "pollutants", "device_types", *_GATING_FIELDS},
    "override": {*_GATING_FIELDS, "pollutants"},
}


def _key(e: Any) -> str | None:
    """The file's key an error is about (None: the entry or table as a whole)."""
    if e["type"] == "extra_forbidden":
        return "*extra*"
    rest = [x for x in e["loc"] if not isinstance(x, int)]
    return str(rest[0]) if rest else None


def _first(exc: ValidationError, table: str, raw: Any) -> Any:
    """The error the entry is refused for: its keys in the order they were always
    checked, the gating keys in the order the file writes them."""
    order = _ORDER.get(table, ())
    written = list(raw) if isinstance(raw, dict) else []

    def rank(e: Any) -> tuple[int, int, str]:
        key = _key(e)
        slot = "*gating*" if key in _GATING_FIELDS and "*gating*" in order else key
        at = written.index(key) if slot == "*gating*" and key in written else 0
        extra_name = str(e["loc"][-1]) if key == "*extra*" else ""
        return (order.index(slot) if slot in order else len(order), at, extra_name)

    return min(exc.errors(), key=rank)


def _refusal(e: Any, raw: Any, where: _Where, table: str, idx: int = 0) -> RulesFileError:
    """One error of an entry's or table's shape, as ``file:line: message``."""
    err = e.get("ctx", {}).get("error")
    key = _key(e)
    if key == "*extra*":
        key = str(e["loc"][-1])
        if table == "rule":
            name = raw.get("name") if isinstance(raw, dict) else None
            msg = f"rule {name!r}: unknown key {key!r}"
        elif table in ("override", "silence"):
            msg = f"{table}: unknown key {key!r}"
        else:
            expected = sorted(f.alias or n for n, f in _TABLES[table].model_fields.items())
            msg = f"unknown key {key!r} in [{table}] (expected: {', '.join(expected)})"
        return where.error(table, idx, key, msg)
    if isinstance(err, ValueError):
        msg = str(err)
    elif e["type"] in ("model_type", "dict_type"):
        msg = f"{key or table} must be a table"
    else:
        msg = f"{key or table}: {e['msg']}"
    if table == "rule" and key in ("kinds", "pollutants", "device_types"):
        name = raw.get("name") if isinstance(raw, dict) else None
        key, msg = None, f"rule {name!r}: {msg}"
    elif table == "offline":
        key = None
    return where.error(table, idx, key, msg)


def _document(text: str, source: str, where: _Where) -> tuple[_Document, dict[str, Any]]:
    """The TOML text and its top level: known keys, tables and arrays of tables."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesFileError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return _Document.model_validate(raw), raw
    except ValidationError as exc:
        errors = exc.errors()
        extra = [e for e in errors if e["type"] == "extra_forbidden"]
        if extra:
            k = str(extra[0]["loc"][0])
            raise RulesFileError(
                f"{source}:{where.key_line(k)}: unknown top-level key {k!r} "
                f"(expected: {', '.join(sorted(_TOP_KEYS))})"
            ) from exc
        e = min(errors, key=lambda e: _TOP_KEYS.index(str(e["loc"][0])))
        top = str(e["loc"][0])
        err = e.get("ctx", {}).get("error")
        if isinstance(err, ValueError):
            msg = str(err)
        elif e["type"] == "list_type" or (top in ("rule", "override", "silence")):
            msg = f"{top} must be an array of tables ([[{top}]])"
        else:
            msg = f"{top} must be a table"
        raise RulesFileError(f"{source}:{where.key_line(top)}: {msg}") from exc


def _check(
    model: type[_M], raw: Any, where: _Where, table: str, idx: int = 0
) -> tuple[_M | None, Any]:
    """The entry as its model, or None and the error it is refused for first."""
    try:
        return model.model_validate(raw), None
    except ValidationError as exc:
        return None, _first(exc, table, raw)


def _table_of(model: type[_M], raw: Mapping[str, Any], where: _Where, table: str) -> _M:
    entry, e = _check(model, raw, where, table)
    if entry is None:
        raise _refusal(e, raw, where, table) from None
    return entry


def parse_rules(text: str, source: str = "<rules>") -> RuleSet:
    """Check and load a rules file's text; raise RulesFileError naming line and reason.

    ``base = "default"`` at the top starts from the packaged default rules: the file's
    rules replace defaults of the same name, its overrides and silences are added, its
    ``[defaults]`` and ``[offline]`` keys win — so a site file holds only what differs.
    """
    where = _Where(source, text)
    doc, raw = _document(text, source, where)
    rule_entries = [(r, where, i) for i, r in enumerate(doc.rule)]
    override_entries = [(o, where, i) for i, o in enumerate(doc.override)]
    silence_entries = [(s, where, i) for i, s in enumerate(doc.silence)]
    defaults_raw, offline_raw, cases_raw = doc.defaults, doc.offline, doc.cases
    if doc.base is not None:
        btext = default_rules_text()
        bwhere = _Where("default_rules.toml", btext)
        bdoc, _ = _document(btext, "default_rules.toml", bwhere)
        mine = {r.get("name") for r in doc.rule}
        rule_entries = [
            (r, bwhere, i) for i, r in enumerate(bdoc.rule) if r.get("name") not in mine
        ] + rule_entries
        override_entries = [(o, bwhere, i) for i, o in enumerate(bdoc.override)] + override_entries
        silence_entries = [(s, bwhere, i) for i, s in enumerate(bdoc.silence)] + silence_entries
        defaults_raw = {**bdoc.defaults, **defaults_raw}
        offline_raw = {**bdoc.offline, **offline_raw}
        cases_raw = {**bdoc.cases, **cases_raw}
    version = str(raw.get("version", "unversioned"))
    defaults = _table_of(_Defaults, defaults_raw, where, "defaults")
    base = apply_gating(Gating(), defaults.gating())
    default_kinds = defaults.kinds if defaults.kinds is not None else frozenset({"rtd", "min"})

    rules: list[RuleDef] = []
    for rraw, wh, i in rule_entries:
        rule, e = _check(_RuleEntry, rraw, wh, "rule", i)
        name = rraw.get("name")
        if (e is None or _key(e) != "name") and name in {r.name for r in rules}:
            raise wh.error("rule", i, "name", f"rule {name!r} is defined twice")
        if e is not None:
            det, params = rraw.get("detector", name), rraw.get("params", {})
            if _key(e) in _AFTER_PARAMS["rule"] and det in CATALOG and isinstance(params, dict):
                _check_params(det, params, wh, "rule", i)
            raise _refusal(e, rraw, wh, "rule", i)
        assert rule is not None
        det = rule.detector or rule.name
        _check_params(det, rule.params, wh, "rule", i)
        g = rule.gating()
        rules.append(
            RuleDef(
                rule.name,
                det,
                rule.params,
                apply_gating(base, g),
                g.get("enabled", True),
                None if rule.device_types is None else frozenset(rule.device_types),
                rule.pollutants if rule.pollutants is not None else ("*",),
                rule.kinds if rule.kinds is not None else default_kinds,
            )
        )

    by_name = {r.name: r for r in rules}
    overrides: list[OverrideDef] = []
    for oraw, wh, i in override_entries:
        target = oraw.get("rule")
        if not isinstance(target, str) or target not in by_name:
            raise wh.error("override", i, "rule", f"override of unknown rule {target!r}")
        if len([lv for lv in LEVELS if lv in oraw]) != 1:
            raise wh.error(
                "override", i, None, f"an override names exactly one of {', '.join(LEVELS)}"
            )
        ov, e = _check(_OverrideEntry, oraw, wh, "override", i)
        params = oraw.get("params", {})
        merged = {**by_name[target].params, **params} if isinstance(params, dict) else None
        if e is not None:
            if _key(e) in _AFTER_PARAMS["override"] and merged is not None:
                _check_params(by_name[target].detector, merged, wh, "override", i)
            raise _refusal(e, oraw, wh, "override", i)
        assert ov is not None
        _check_params(
            by_name[target].detector, {**by_name[target].params, **ov.params}, wh, "override", i
        )
        g = ov.gating()
        level = ov.levels[0]
        overrides.append(
            OverrideDef(
                target,
                level,
                str(getattr(ov, level)),
                ov.pollutants or (),
                ov.params,
                {k: v for k, v in g.items() if k != "enabled"},
                g.get("enabled"),
            )
        )

    silences: list[Silence] = []
    for sraw, wh, i in silence_entries:
        si, e = _check(_SilenceEntry, sraw, wh, "silence", i)
        if si is None:
            raise _refusal(e, sraw, wh, "silence", i)
        names = frozenset(si.rules or ()) - {"*"}
        for n in names:
            if n not in by_name and n != "offline":
                raise wh.error("silence", i, "rules", f"silence of unknown rule {n!r}")
        sel = {lv: getattr(si, lv) for lv in LEVELS if getattr(si, lv) is not None}
        silences.append(Silence(si.start, si.end, si.reason, names, **sel))

    offline = _table_of(_Offline, offline_raw, where, "offline")
    cases = _table_of(_Cases, cases_raw, where, "cases")
    digest = hashlib.sha256(text.encode()).hexdigest()
    return RuleSet(
        version,
        digest,
        source,
        tuple(rules),
        tuple(overrides),
        tuple(silences),
        offline.intervals,
        offline.severity,
        offline.clear_after,
        offline.enabled,
        cases.open_for_severity,
    )


def default_rules_text() -> str:
    return resources.files("offsite.rules").joinpath("default_rules.toml").read_text("utf-8")


def load_rules(path: Path | None) -> RuleSet:
    """The rules file at ``path``, or the packaged defaults when None."""
    if path is None:
        return parse_rules(default_rules_text(), "default_rules.toml")
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise RulesFileError(f"{path}: cannot read the rules file: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise RulesFileError(f"{path}: not UTF-8 text: {exc}") from exc
    return parse_rules(text, str(path))
