"""Rules files: which detector runs on which series, with what parameters and gating.

A rules file (TOML, see README "Rules") has ``[defaults]``, ``[[rule]]`` entries that
bind a detector to device types and pollutants, ``[[override]]`` entries that change a
rule for a device type, an enterprise, a monitoring point or one device (applied in
that order, so the most specific wins), ``[offline]`` and ``[[silence]]`` windows.
Everything is checked at load; an error names the line of the entry at fault.
Loading is pure (text in, ``RuleSet`` out); reading the file is the caller's job.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

from offsite.rules.detectors import CATALOG
from offsite.rules.errors import RulesFileError
from offsite.rules.findings import SEVERITY_RANK

KINDS = ("rtd", "min", "hour", "day")
FLOW_CODES = frozenset({"a00000", "w00000", "a01011"})
O2_CODE = "a19001"
_LEVELS = ("device_type", "enterprise", "point", "device")  # override cascade, weakest first
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_GATING_KEYS = {
    "severity",
    "count",
    "for",
    "clear_after",
    "clear_score",
    "cooldown",
    "critical_score",
    "mute_on_maintenance",
    "enabled",
    "warm_up",
}


@dataclass(frozen=True, slots=True)
class Gating:
    """When a detector's hits become an alert, and when the alert goes away."""

    severity: str = "warning"
    count: int = 1  # N hits in a row
    for_s: float = 0.0  # … spanning at least this long (device time)
    clear_after_s: float = 300.0  # condition absent this long → the alert clears
    clear_score: float | None = None  # hysteresis: while firing, stay on while score ≥ this
    cooldown_s: float = 0.0  # after a clear, no new alert on the same key for this long
    critical_score: float | None = None  # score at which the severity becomes critical
    mute_on_maintenance: bool = True  # mark suppressed while the device reports M/C
    warm_up: int = 0  # readings of a series the rule judges before it may fire at all


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    """What rules can be bound by: one series of one device."""

    mn: str
    pollutant: str
    kind: str
    device_type: str
    enterprise: str
    point: str
    limited: bool


@dataclass(frozen=True, slots=True)
class Bound:
    """A rule as it applies to one series: its name, detector and gating."""

    name: str
    detector: Any
    gating: Gating
    version: str

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.name, self.detector, self.gating)


@dataclass(frozen=True, slots=True)
class Silence:
    start: datetime
    end: datetime
    reason: str
    rules: frozenset[str]  # empty = all
    device_type: str | None = None
    enterprise: str | None = None
    point: str | None = None
    device: str | None = None

    def covers(self, rule: str, info: SeriesInfo, at: datetime) -> bool:
        if not (self.start <= at < self.end):
            return False
        if self.rules and rule not in self.rules and rule.split(".")[0] not in self.rules:
            return False
        return all(
            want is None or want == have
            for want, have in (
                (self.device_type, info.device_type),
                (self.enterprise, info.enterprise),
                (self.point, info.point),
                (self.device, info.mn),
            )
        )


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    detector: str
    params: Mapping[str, Any]
    gating: Gating
    enabled: bool
    device_types: frozenset[str] | None
    pollutants: tuple[str, ...]
    kinds: frozenset[str]


@dataclass(frozen=True, slots=True)
class _Override:
    rule: str
    level: str
    target: str
    pollutants: tuple[str, ...]
    params: Mapping[str, Any]
    gating: Mapping[str, Any]
    enabled: bool | None


@dataclass(frozen=True, slots=True)
class RuleSet:
    version: str
    digest: str  # sha256 of the file's text: what the audit log and evidence refer to
    source: str
    rules: tuple[_Rule, ...]
    overrides: tuple[_Override, ...] = ()
    silences: tuple[Silence, ...] = ()
    offline_intervals: float = 5.0
    offline_severity: str = "major"
    offline_clear_after_s: float = 0.0
    offline_enabled: bool = True
    # [cases] open_for_severity: alerts opened at this severity or worse open a case
    # (store/cases.py open_cases_for); None: the engine opens no cases
    case_open_severity: str | None = None
    _cache: dict[SeriesInfo, tuple[Bound, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )
    # one object per distinct binding, shared by every series it applies to: tens of
    # thousands of series otherwise each held their own equal detectors (60+ MB at
    # 10,000 devices)
    _interned: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rules]

    def resolve(self, info: SeriesInfo) -> tuple[Bound, ...]:
        """The rules that run on a series, after the override cascade."""
        hit = self._cache.get(info)
        if hit is not None:
            return hit
        out: list[Bound] = []
        for rule in self.rules:
            if info.kind not in rule.kinds:
                continue
            if rule.device_types is not None and info.device_type not in rule.device_types:
                continue
            if not _pollutant_matches(rule.pollutants, info):
                continue
            params, gating, enabled = dict(rule.params), rule.gating, rule.enabled
            for level in _LEVELS:
                for ov in self.overrides:
                    if ov.rule != rule.name or ov.level != level:
                        continue
                    if ov.target != _level_value(level, info):
                        continue
                    if ov.pollutants and not _pollutant_matches(ov.pollutants, info):
                        continue
                    params.update(ov.params)
                    gating = _apply_gating(gating, ov.gating)
                    if ov.enabled is not None:
                        enabled = ov.enabled
            if not enabled:
                continue
            det = CATALOG[rule.detector](**params)
            bound = Bound(rule.name, det, gating, self.version)
            out.append(self._interned.setdefault(bound, bound))
        res = tuple(out)
        res = self._interned.setdefault(res, res)
        self._cache[info] = res
        return res

    def silenced(self, rule: str, info: SeriesInfo, at: datetime) -> str | None:
        for s in self.silences:
            if s.covers(rule, info, at):
                return s.reason
        return None


def _level_value(level: str, info: SeriesInfo) -> str:
    return {
        "device_type": info.device_type,
        "enterprise": info.enterprise,
        "point": info.point,
        "device": info.mn,
    }[level]


def _pollutant_matches(patterns: Sequence[str], info: SeriesInfo) -> bool:
    for p in patterns:
        if p == "*" or p == info.pollutant:
            return True
        if p == "@limited" and info.limited:
            return True
        if p == "@flow" and info.pollutant in FLOW_CODES:
            return True
        if p == "@concentration" and info.limited and info.pollutant not in FLOW_CODES:
            return True
        if p == "@unlimited" and not info.limited:
            return True
    return False


def _apply_gating(g: Gating, raw: Mapping[str, Any]) -> Gating:
    names = {"for": "for_s", "clear_after": "clear_after_s", "cooldown": "cooldown_s"}
    return replace(g, **{names.get(k, k): v for k, v in raw.items() if k != "enabled"})


# -- parsing --------------------------------------------------------------------------
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


def _gating(
    raw: Mapping[str, Any], base: Gating, where: _Where, table: str, idx: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, val in raw.items():
        if key not in _GATING_KEYS:
            continue
        try:
            if key == "severity":
                if val not in SEVERITY_RANK:
                    raise ValueError(
                        f"severity must be one of {sorted(SEVERITY_RANK)}, not {val!r}"
                    )
                out[key] = val
            elif key == "count":
                if not isinstance(val, int) or isinstance(val, bool) or val < 1:
                    raise ValueError(f"count must be an integer ≥ 1, not {val!r}")
                out[key] = val
            elif key == "warm_up":
                if not isinstance(val, int) or isinstance(val, bool) or val < 0:
                    raise ValueError(f"warm_up must be an integer ≥ 0, not {val!r}")
                out[key] = val
            elif key in ("for", "clear_after", "cooldown"):
                out[key] = duration_s(val)
            elif key in ("clear_score", "critical_score"):
                if not isinstance(val, int | float) or isinstance(val, bool):
                    raise ValueError(f"{key} must be a number, not {val!r}")
                out[key] = float(val)
            elif key in ("mute_on_maintenance", "enabled"):
                if not isinstance(val, bool):
                    raise ValueError(f"{key} must be true or false, not {val!r}")
                out[key] = val
        except ValueError as exc:
            raise where.error(table, idx, key, str(exc)) from exc
    return out


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


def _strings(val: Any, what: str) -> tuple[str, ...]:
    if isinstance(val, str):
        return (val,)
    if isinstance(val, list) and all(isinstance(v, str) for v in val):
        return tuple(val)
    raise ValueError(f"{what} must be a string or a list of strings, not {val!r}")


def _entries(doc: Mapping[str, Any], table: str, where: _Where) -> list[tuple[Any, _Where, int]]:
    return [(raw, where, i) for i, raw in enumerate(doc.get(table, []))]


def parse_rules(text: str, source: str = "<rules>") -> RuleSet:
    """Check and load a rules file's text; raise RulesFileError naming line and reason.

    ``base = "default"`` at the top starts from the packaged default rules: the file's
    rules replace defaults of the same name, its overrides and silences are added, its
    ``[defaults]`` and ``[offline]`` keys win — so a site file holds only what differs.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesFileError(f"{source}: not valid TOML: {exc}") from exc
    where = _Where(source, text)
    known_top = {"version", "base", "defaults", "rule", "override", "silence", "offline", "cases"}
    for k in doc:
        if k not in known_top:
            raise RulesFileError(
                f"{source}:{where.key_line(k)}: unknown top-level key {k!r} "
                f"(expected: {', '.join(sorted(known_top))})"
            )
    rule_entries = _entries(doc, "rule", where)
    override_entries = _entries(doc, "override", where)
    silence_entries = _entries(doc, "silence", where)
    defaults_raw = dict(doc.get("defaults", {}))
    offline_raw = dict(doc.get("offline", {}))
    cases_raw = dict(doc.get("cases", {}))
    base_name = doc.get("base")
    if base_name is not None:
        if base_name != "default":
            raise RulesFileError(
                f"{source}:{where.key_line('base')}: base must be "
                f'"default" (the packaged rules), not {base_name!r}'
            )
        btext = default_rules_text()
        bdoc = tomllib.loads(btext)
        bwhere = _Where("default_rules.toml", btext)
        mine = {raw.get("name") for raw, _, _ in rule_entries}
        rule_entries = [
            e for e in _entries(bdoc, "rule", bwhere) if e[0].get("name") not in mine
        ] + rule_entries
        override_entries = _entries(bdoc, "override", bwhere) + override_entries
        silence_entries = _entries(bdoc, "silence", bwhere) + silence_entries
        defaults_raw = {**bdoc.get("defaults", {}), **defaults_raw}
        offline_raw = {**bdoc.get("offline", {}), **offline_raw}
        cases_raw = {**bdoc.get("cases", {}), **cases_raw}
    version = str(doc.get("version", "unversioned"))
    base = _apply_gating(Gating(), _gating(defaults_raw, Gating(), where, "defaults", 0))
    default_kinds = defaults_raw.get("kinds", ["rtd", "min"])

    rules: list[_Rule] = []
    for raw, wh, i in rule_entries:
        name = raw.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise wh.error(
                "rule",
                i,
                "name",
                f"rule needs a name of lower-case letters, digits and _ (got {name!r})",
            )
        if name in {r.name for r in rules}:
            raise wh.error("rule", i, "name", f"rule {name!r} is defined twice")
        det = raw.get("detector", name)
        if det not in CATALOG:
            raise wh.error(
                "rule",
                i,
                "detector",
                f"unknown detector {det!r} (known: {', '.join(sorted(CATALOG))})",
            )
        unknown = (
            set(raw)
            - _GATING_KEYS
            - {"name", "detector", "params", "device_types", "pollutants", "kinds"}
        )
        if unknown:
            k = sorted(unknown)[0]
            raise wh.error("rule", i, k, f"rule {name!r}: unknown key {k!r}")
        params = raw.get("params", {})
        if not isinstance(params, dict):
            raise wh.error("rule", i, "params", "params must be a table")
        _check_params(det, params, wh, "rule", i)
        try:
            kinds = frozenset(_strings(raw.get("kinds", default_kinds), "kinds"))
            bad = kinds - set(KINDS)
            if bad:
                raise ValueError(f"unknown kinds {sorted(bad)} (known: {', '.join(KINDS)})")
            pollutants = _strings(raw.get("pollutants", "*"), "pollutants")
            types = raw.get("device_types")
            device_types = None if types is None else frozenset(_strings(types, "device_types"))
        except ValueError as exc:
            raise wh.error("rule", i, None, f"rule {name!r}: {exc}") from exc
        g = _gating(raw, base, wh, "rule", i)
        rules.append(
            _Rule(
                name,
                det,
                params,
                _apply_gating(base, g),
                g.get("enabled", True),
                device_types,
                pollutants,
                kinds,
            )
        )

    by_name = {r.name: r for r in rules}
    overrides: list[_Override] = []
    for raw, wh, i in override_entries:
        rule = raw.get("rule")
        if rule not in by_name:
            raise wh.error("override", i, "rule", f"override of unknown rule {rule!r}")
        levels = [lv for lv in _LEVELS if lv in raw]
        if len(levels) != 1:
            raise wh.error(
                "override", i, None, f"an override names exactly one of {', '.join(_LEVELS)}"
            )
        unknown = set(raw) - _GATING_KEYS - {"rule", "params", "pollutants", *_LEVELS}
        if unknown:
            k = sorted(unknown)[0]
            raise wh.error("override", i, k, f"override: unknown key {k!r}")
        params = raw.get("params", {})
        if not isinstance(params, dict):
            raise wh.error("override", i, "params", "params must be a table")
        _check_params(by_name[rule].detector, {**by_name[rule].params, **params}, wh, "override", i)
        g = _gating(raw, base, wh, "override", i)
        try:
            pollutants = (
                _strings(raw["pollutants"], "pollutants")
                if raw.get("pollutants") is not None
                else ()
            )
        except ValueError as exc:
            raise wh.error("override", i, "pollutants", str(exc)) from exc
        overrides.append(
            _Override(
                rule,
                levels[0],
                str(raw[levels[0]]),
                pollutants,
                params,
                {k: v for k, v in g.items() if k != "enabled"},
                g.get("enabled"),
            )
        )

    silences: list[Silence] = []
    for raw, wh, i in silence_entries:
        start, end, reason = raw.get("start"), raw.get("end"), raw.get("reason")
        for key, val in (("start", start), ("end", end)):
            if not isinstance(val, datetime) or val.tzinfo is None:
                raise wh.error(
                    "silence",
                    i,
                    key,
                    f"{key} must be a TOML date-time with a zone, e.g. 2026-11-26T08:00:00+08:00",
                )
        assert isinstance(start, datetime) and isinstance(end, datetime)
        if end <= start:
            raise wh.error("silence", i, "end", "end must be after start")
        if not isinstance(reason, str) or not reason.strip():
            raise wh.error(
                "silence",
                i,
                "reason",
                "a silence needs a reason (it is recorded on every alert it mutes)",
            )
        try:
            names = frozenset(_strings(raw.get("rules", []), "rules")) - {"*"}
        except ValueError as exc:
            raise wh.error("silence", i, "rules", str(exc)) from exc
        for n in names:
            if n not in by_name and n != "offline":
                raise wh.error("silence", i, "rules", f"silence of unknown rule {n!r}")
        sel = {lv: str(raw[lv]) for lv in _LEVELS if lv in raw}
        silences.append(Silence(start, end, reason.strip(), names, **sel))

    try:
        intervals = float(offline_raw.get("intervals", 5.0))
        if intervals <= 0:
            raise ValueError("offline.intervals must be > 0")
        off_sev = offline_raw.get("severity", "major")
        if off_sev not in SEVERITY_RANK:
            raise ValueError(f"offline.severity must be one of {sorted(SEVERITY_RANK)}")
        off_clear = duration_s(offline_raw.get("clear_after", 0))
        off_enabled = offline_raw.get("enabled", True)
        if not isinstance(off_enabled, bool):
            raise ValueError("offline.enabled must be true or false")
    except (TypeError, ValueError) as exc:
        raise where.error("offline", 0, None, str(exc)) from exc
    case_sev = _case_severity(cases_raw, where)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return RuleSet(
        version,
        digest,
        source,
        tuple(rules),
        tuple(overrides),
        tuple(silences),
        intervals,
        off_sev,
        off_clear,
        off_enabled,
        case_sev,
    )


def _case_severity(raw: Mapping[str, Any], where: _Where) -> str | None:
    """``[cases] open_for_severity``: the severity from which the engine opens a case
    by itself; absent or ``"none"``: only people open cases."""
    for k in raw:
        if k != "open_for_severity":
            raise where.error(
                "cases", 0, k, f"unknown key {k!r} in [cases] (expected: open_for_severity)"
            )
    sev = raw.get("open_for_severity", "none")
    if sev == "none":
        return None
    if sev not in SEVERITY_RANK:
        raise where.error(
            "cases",
            0,
            "open_for_severity",
            f'cases.open_for_severity must be "none" or one of '
            f"{sorted(SEVERITY_RANK)}, not {sev!r}",
        )
    return str(sev)


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
