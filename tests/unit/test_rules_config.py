"""offsite.rules.rules_file: loading the rules file, refusing bad files by line, overrides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from offsite.rules.config import Gating, RuleSet, SeriesInfo
from offsite.rules.detectors import CATALOG, Flatline, Spike
from offsite.rules.errors import RuleError, RulesFileError
from offsite.rules.rules_file import default_rules_text, duration_s, load_rules, parse_rules

SO2, FLOW = "a21026", "a00000"


def info(
    mn: str = "MN1",
    pollutant: str = SO2,
    kind: str = "rtd",
    device_type: str = "flue_gas",
    enterprise: str = "E1",
    point: str = "P1",
    limited: bool = True,
) -> SeriesInfo:
    return SeriesInfo(mn, pollutant, kind, device_type, enterprise, point, limited)


def names(rs: RuleSet, **kw) -> list[str]:
    return [b.name for b in rs.resolve(info(**kw))]


# -- the default rules ------------------------------------------------------------------


def test_the_default_rules_load():
    rs = load_rules(None)
    assert rs.source == "default_rules.toml"
    assert rs.version != "unversioned" and len(rs.digest) == 64
    used = {r.detector for r in rs.rules}
    assert used == set(CATALOG), "every detector should have a default rule"
    assert rs.offline_enabled and rs.offline_intervals == 5.0
    assert rs.silences == ()


def test_default_rules_bind_sensibly():
    rs = load_rules(None)
    so2 = names(rs)
    assert {"exceedance", "exceedance_1h", "implausible", "spike", "clamp", "dilution"} <= set(so2)
    assert "exceedance_1d" not in so2 and "stat" not in so2
    assert "stat" in names(rs, pollutant="a21002", limited=False)
    assert {"false_stop", "flow_zero"} <= set(names(rs, pollutant=FLOW, limited=False))
    assert "exceedance_1d" in names(rs, device_type="wastewater")
    assert "dilution" not in names(rs, device_type="wastewater")
    assert names(rs, kind="hour") == ["exceedance", "implausible"]


def test_load_rules_reads_a_file_and_names_it_in_errors(tmp_path: Path):
    good = tmp_path / "site.toml"
    good.write_text('version = "s1"\n[[rule]]\nname = "spike"\n', "utf-8")
    rs = load_rules(good)
    assert (rs.version, rs.source, rs.names) == ("s1", str(good), ["spike"])
    bad = tmp_path / "bad.toml"
    bad.write_text('version = "s1"\n[[rule]]\nname = "spike"\nseverity = "loud"\n', "utf-8")
    with pytest.raises(RulesFileError, match=rf"^{bad}:4: "):
        load_rules(bad)
    with pytest.raises(RulesFileError, match="cannot read"):
        load_rules(tmp_path / "missing.toml")
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'version = "\xe9"\n')
    with pytest.raises(RulesFileError, match="UTF-8"):
        load_rules(latin)


def test_rules_file_error_is_a_rule_error():
    assert issubclass(RulesFileError, RuleError)


# -- bad files, by line -----------------------------------------------------------------


def refused(text: str) -> tuple[int, str]:
    """The line and message a file is refused with; the line marked ``# <-`` is expected."""
    with pytest.raises(RulesFileError) as exc:
        parse_rules(text, "site.toml")
    msg = str(exc.value)
    assert msg.startswith("site.toml:")
    line = int(msg.split(":")[1])
    return line, msg


def marked(text: str) -> int:
    (n,) = [i for i, line in enumerate(text.splitlines(), 1) if "# <-" in line]
    return n


BAD = {
    "unknown detector": (
        """version = "1"
[[rule]]
name = "spike"

[[rule]]
name = "mine"
detector = "sorcery"  # <-
""",
        "unknown detector 'sorcery'",
    ),
    "unknown param": (
        """version = "1"
[[rule]]
name = "spike"
params = { z = 6.0, zz = 1 }  # <-
""",
        "has no parameter 'zz'",
    ),
    "unknown param in a sub-table": (
        """version = "1"
[[rule]]
name = "spike"
severity = "major"

[rule.params]
z = 6.0
zz = 1  # <-
""",
        "has no parameter 'zz'",
    ),
    "bad param value": (
        """version = "1"
[[rule]]
name = "average_exceedance"
params = { period = "week" }  # <-
""",
        "period",
    ),
    "bad severity": (
        """version = "1"
[[rule]]
name = "spike"

[[rule]]
name = "flatline"
severity = "loud"  # <-
""",
        "severity must be one of",
    ),
    "bad duration": (
        """version = "1"
[[rule]]
name = "spike"
count = 2
for = "5 minutes"  # <-
""",
        "not a duration",
    ),
    "negative duration": (
        """version = "1"
[[rule]]
name = "spike"
clear_after = -5  # <-
""",
        "negative",
    ),
    "bad count": (
        """version = "1"
[[rule]]
name = "spike"
count = 0  # <-
""",
        "count must be an integer",
    ),
    "duplicate rule": (
        """version = "1"
[[rule]]
name = "spike"

[[rule]]
name = "spike"  # <-
params = { z = 5.0 }
""",
        "defined twice",
    ),
    "bad rule name": (
        """version = "1"
[[rule]]
name = "Spike Rule"  # <-
""",
        "lower-case",
    ),
    "unknown rule key": (
        """version = "1"
[[rule]]
name = "spike"
pollutant = "a21026"  # <-
""",
        "unknown key 'pollutant'",
    ),
    "unknown kind": (
        """version = "1"
[[rule]]  # <-
name = "spike"
kinds = ["rtd", "week"]
""",
        "unknown kinds",
    ),
    "override of unknown rule": (
        """version = "1"
[[rule]]
name = "spike"

[[override]]
rule = "spoke"  # <-
device = "MN1"
""",
        "unknown rule 'spoke'",
    ),
    "override naming two levels": (
        """version = "1"
[[rule]]
name = "spike"

[[override]]
rule = "spike"
device = "MN1"

[[override]]  # <-
rule = "spike"
device = "MN1"
point = "P1"
""",
        "exactly one of",
    ),
    "override naming no level": (
        """version = "1"
[[rule]]
name = "spike"

[[override]]  # <-
rule = "spike"
severity = "major"
""",
        "exactly one of",
    ),
    "override with an unknown param": (
        """version = "1"
[[rule]]
name = "spike"

[[override]]
rule = "spike"
device = "MN1"
params = { window = 3 }  # <-
""",
        "has no parameter 'window'",
    ),
    "silence without zone": (
        """version = "1"
[[rule]]
name = "spike"

[[silence]]
start = 2026-11-26T08:00:00  # <-
end = 2026-11-26T09:00:00+08:00
reason = "repair"
""",
        "with a zone",
    ),
    "silence without reason": (
        """version = "1"
[[rule]]
name = "spike"

[[silence]]  # <-
start = 2026-11-26T08:00:00+08:00
end = 2026-11-26T09:00:00+08:00
device = "MN1"
""",
        "needs a reason",
    ),
    "silence with a blank reason": (
        """version = "1"
[[silence]]
start = 2026-11-26T08:00:00+08:00
end = 2026-11-26T09:00:00+08:00
reason = "  "  # <-
""",
        "needs a reason",
    ),
    "silence ending before it starts": (
        """version = "1"
[[rule]]
name = "spike"

[[silence]]
start = 2026-11-26T08:00:00+08:00
end = 2026-11-26T07:00:00+08:00  # <-
reason = "repair"
""",
        "end must be after start",
    ),
    "silence of no length": (
        """version = "1"
[[silence]]
start = 2026-11-26T08:00:00+08:00
end = 2026-11-26T00:00:00Z  # <-
reason = "repair"
""",
        "end must be after start",
    ),
    "silence of an unknown rule": (
        """version = "1"
[[rule]]
name = "spike"

[[silence]]
start = 2026-11-26T08:00:00+08:00
end = 2026-11-26T09:00:00+08:00
reason = "repair"
rules = ["spike", "spoke"]  # <-
""",
        "unknown rule 'spoke'",
    ),
    "unknown top-level key": (
        """version = "1"
rulez = 3  # <-

[[rule]]
name = "spike"
""",
        "unknown top-level key 'rulez'",
    ),
    "unknown top-level table": (
        """version = "1"

[[rule]]
name = "spike"

[[rulez]]  # <-
name = "flatline"
""",
        "unknown top-level key 'rulez'",
    ),
    "bad base": (
        """base = "site"  # <-
version = "1"
""",
        "base must be",
    ),
    "bad offline": (
        """version = "1"
[[rule]]
name = "spike"

[offline]  # <-
intervals = 0
""",
        "offline.intervals",
    ),
    "bad defaults": (
        """version = "1"

[defaults]
count = 1
severity = "urgent"  # <-
""",
        "severity must be one of",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD), ids=str)
def test_bad_files_are_refused_naming_the_line(case):
    text, words = BAD[case]
    line, msg = refused(text)
    assert words in msg
    assert line == marked(text), msg


# refused since the file's shape is checked by pydantic models: before, these crashed
# (a table of the wrong shape) or were silently ignored (a typo in [defaults])
BAD_SHAPES = {
    "rule that is not an array of tables": (
        """version = "1"
rule = 3  # <-
""",
        "rule must be an array of tables ([[rule]])",
    ),
    "defaults as an array of tables": (
        """version = "1"
[[defaults]]  # <-
count = 2
""",
        "defaults must be a table",
    ),
    "unknown key in defaults": (
        """version = "1"
[defaults]
count = 2
sevrity = "major"  # <-
""",
        "unknown key 'sevrity' in [defaults]",
    ),
    "unknown key in offline": (
        """version = "1"
[offline]
intervals = 5
intervalls = 6  # <-
""",
        "unknown key 'intervalls' in [offline]",
    ),
    "unknown key in a silence": (
        """version = "1"
[[silence]]
start = 2026-11-26T08:00:00+08:00
end = 2026-11-26T09:00:00+08:00
reason = "repair"
mn = "MN1"  # <-
""",
        "silence: unknown key 'mn'",
    ),
    "bad kinds in defaults": (
        """version = "1"
[defaults]
kinds = ["rtd", "week"]  # <-

[[rule]]
name = "spike"
""",
        "unknown kinds ['week']",
    ),
    "params that are not a table in an override": (
        """version = "1"
[[rule]]
name = "spike"

[[override]]
rule = "spike"
device = "MN1"
params = [1]  # <-
""",
        "params must be a table",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SHAPES), ids=str)
def test_bad_shapes_are_refused_naming_the_line(case):
    text, words = BAD_SHAPES[case]
    line, msg = refused(text)
    assert words in msg
    assert line == marked(text), msg


@pytest.mark.parametrize(
    ("text", "words"),
    [
        # the rule's own name is checked before its other keys
        ('[[rule]]\nname = "spike"\n\n[[rule]]\nname = "spike"  # <-\nseverity = "x"\n', "twice"),
        # params against the detector before the gating keys
        ('[[rule]]\nname = "spike"\nseverity = "x"\nparams = { zz = 1 }  # <-\n', "'zz'"),
        # the gating keys in the order they are written
        ('[[rule]]\nname = "spike"\nclear_score = "a"  # <-\ncount = 0\n', "clear_score"),
        # an earlier entry before a later one
        (
            '[[rule]]\nname = "spike"\nparams = { zz = 1 }  # <-\n\n'
            '[[rule]]\nname = "flatline"\nseverity = "x"\n',
            "'zz'",
        ),
    ],
)
def test_a_file_with_several_errors_is_refused_for_the_first_as_read(text, words):
    line, msg = refused(text)
    assert words in msg
    assert line == marked(text), msg


def test_invalid_toml_is_refused_with_its_line():
    text = 'version = "1"\n\n[[rule]]\nname = "spike\n'
    with pytest.raises(RulesFileError) as exc:
        parse_rules(text, "site.toml")
    msg = str(exc.value)
    assert msg.startswith("site.toml: not valid TOML")
    assert "line 4" in msg
    assert exc.value.__cause__ is not None


# -- what loads -------------------------------------------------------------------------


def test_defaults_apply_to_every_rule_and_rules_override_them():
    rs = parse_rules("""version = "1"
[defaults]
severity = "major"
count = 2
clear_after = "10m"
kinds = ["rtd"]

[[rule]]
name = "spike"

[[rule]]
name = "flatline"
severity = "info"
for = "90s"
""")
    spike, flat = rs.rules
    assert spike.gating == Gating(severity="major", count=2, clear_after_s=600.0)
    assert flat.gating == Gating(severity="info", count=2, for_s=90.0, clear_after_s=600.0)
    assert spike.kinds == frozenset({"rtd"})
    assert rs.version == "1"


def test_a_file_without_version_is_unversioned_and_digest_follows_the_text():
    a = parse_rules('[[rule]]\nname = "spike"\n')
    b = parse_rules('[[rule]]\nname = "spike"\n\n')
    assert a.version == "unversioned"
    assert a.digest != b.digest and a.rules == b.rules


def test_detector_defaults_to_the_rule_name_and_params_build_it():
    rs = parse_rules(
        '[[rule]]\nname = "spike"\nparams = { z = 5.5 }\n'
        '[[rule]]\nname = "quick_flat"\ndetector = "flatline"\n'
        "params = { count = 4 }\n"
    )
    bound = rs.resolve(info())
    assert [(b.name, b.detector) for b in bound] == [
        ("spike", Spike(z=5.5)),
        ("quick_flat", Flatline(count=4)),
    ]


@pytest.mark.parametrize(
    ("pattern", "hits"),
    [
        ("*", {SO2, FLOW, "a21002"}),
        ("@limited", {SO2, FLOW}),
        ("@unlimited", {"a21002"}),
        ("@flow", {FLOW}),
        ("@concentration", {SO2}),
        (SO2, {SO2}),
    ],
)
def test_pollutant_patterns(pattern, hits):
    rs = parse_rules(f'[[rule]]\nname = "spike"\npollutants = "{pattern}"\n')
    got = {
        p
        for p, lim in ((SO2, True), (FLOW, True), ("a21002", False))
        if rs.resolve(info(pollutant=p, limited=lim))
    }
    assert got == hits


def test_device_types_and_kinds_restrict_a_rule():
    rs = parse_rules('[[rule]]\nname = "spike"\ndevice_types = ["wastewater"]\nkinds = ["hour"]\n')
    assert rs.resolve(info(device_type="wastewater", kind="hour"))
    assert not rs.resolve(info(device_type="wastewater", kind="rtd"))
    assert not rs.resolve(info(device_type="flue_gas", kind="hour"))


@pytest.mark.parametrize("key", ['clear_after = "2h"', 'cooldown = "1h"', "clear_readings = 60"])
def test_an_override_cannot_change_when_an_alert_clears(key: str) -> None:
    # the alert book clears and cools down per rule: an override of these was accepted
    # and silently did nothing
    text = f'base = "default"\n\n[[override]]\nrule = "spike"\ndevice = "M1"\n{key}\n'
    with pytest.raises(RulesFileError, match=r"rules:3: an override cannot set " + key[:8]):
        parse_rules(text, "rules")


def test_overrides_apply_in_cascade_order_and_merge_params():
    rs = parse_rules("""
[[rule]]
name = "spike"
params = { z = 8.0, history = 20 }

[[override]]
rule = "spike"
device = "MN1"
params = { z = 12.0 }
count = 4

[[override]]
rule = "spike"
device_type = "flue_gas"
params = { z = 6.0, min_history = 5 }
severity = "major"
""")
    (b,) = rs.resolve(info())
    assert b.detector == Spike(z=12.0, history=20, min_history=5)
    assert (b.gating.count, b.gating.severity) == (4, "major")
    (b,) = rs.resolve(info(mn="MN2"))
    assert b.detector == Spike(z=6.0, history=20, min_history=5)
    (b,) = rs.resolve(info(mn="MN2", device_type="wastewater"))
    assert b.detector == Spike(z=8.0, history=20) and b.gating.severity == "warning"


def test_disabled_rule_can_be_enabled_for_one_device():
    rs = parse_rules(
        '[[rule]]\nname = "spike"\nenabled = false\n'
        '[[override]]\nrule = "spike"\ndevice = "MN1"\nenabled = true\n'
    )
    assert names(rs) == ["spike"]
    assert names(rs, mn="MN2") == []


# -- base = "default" -------------------------------------------------------------------


def test_base_default_merges_with_the_packaged_rules():
    rs = parse_rules(
        """base = "default"
version = "site-3"

[defaults]
clear_after = "20m"

[[rule]]
name = "spike"
params = { z = 12.0 }

[[rule]]
name = "quick_flat"
detector = "flatline"
params = { count = 3 }

[[override]]
rule = "exceedance"
device = "MN1"
severity = "critical"

[offline]
intervals = 10
""",
        "site.toml",
    )
    default = load_rules(None)
    assert rs.version == "site-3"
    assert set(rs.names) == set(default.names) | {"quick_flat"}
    assert len(rs.names) == len(default.names) + 1
    spike = next(r for r in rs.rules if r.name == "spike")
    assert dict(spike.params) == {"z": 12.0}
    assert spike.gating.clear_after_s == 1200.0  # the site's defaults win
    assert rs.offline_intervals == 10 and rs.offline_severity == "major"
    by = {b.name: b for b in rs.resolve(info())}
    assert by["exceedance"].gating.severity == "critical"
    assert {b.name: b.gating.severity for b in rs.resolve(info(mn="MN2"))}["exceedance"] == "major"


def test_base_default_errors_in_the_site_file_name_the_site_file():
    line, msg = refused('base = "default"\n[[rule]]\nname = "spike"\nz = 3  # <-\n')
    assert line == 4 and "unknown key 'z'" in msg


def test_default_rules_text_is_the_packaged_file():
    assert "[[rule]]" in default_rules_text()
    assert parse_rules(default_rules_text()).names == load_rules(None).names


# -- silences ---------------------------------------------------------------------------


def test_silences_cover_their_window_rules_and_target():
    rs = parse_rules("""
[[rule]]
name = "spike"

[[rule]]
name = "exceedance"

[[silence]]
start = 2026-11-26T08:00:00+08:00
end = 2026-11-26T09:00:00+08:00
reason = " stack repair "
enterprise = "E1"
rules = ["exceedance"]
""")
    (s,) = rs.silences
    assert (s.reason, s.rules, s.enterprise, s.device) == (
        "stack repair",
        frozenset({"exceedance"}),
        "E1",
        None,
    )
    start = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)
    assert rs.silenced("exceedance", info(), start) == "stack repair"
    assert rs.silenced("exceedance.hour", info(), start) == "stack repair"
    assert rs.silenced("exceedance", info(), start + timedelta(minutes=59)) == "stack repair"
    assert rs.silenced("exceedance", info(), start + timedelta(hours=1)) is None  # end: open
    assert rs.silenced("exceedance", info(), start - timedelta(seconds=1)) is None
    assert rs.silenced("spike", info(), start) is None
    assert rs.silenced("exceedance", info(enterprise="E2"), start) is None


def test_a_silence_without_rules_or_target_covers_everything():
    rs = parse_rules("""
[[rule]]
name = "spike"

[[silence]]
start = 2026-11-26T08:00:00+08:00
end = 2026-11-26T09:00:00+08:00
reason = "network outage"
rules = "*"
""")
    at = datetime(2026, 11, 26, 0, 30, tzinfo=UTC)
    assert rs.silenced("spike", info(mn="MNX", enterprise="E9"), at) == "network outage"
    assert rs.silenced("offline", info(), at) == "network outage"


# -- durations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        (30, 30.0),
        (2.5, 2.5),
        ("45", 45.0),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1.5h", 5400.0),
        ("2d", 172800.0),
        ("250ms", 0.25),
        (" 10 m ", 600.0),
        (0, 0.0),
    ],
)
def test_durations_parse(raw, seconds):
    assert duration_s(raw) == pytest.approx(seconds)


@pytest.mark.parametrize("raw", [-1, "-5s", "5 minutes", "h", "", True, None, [5]])
def test_bad_durations_are_refused(raw):
    with pytest.raises(ValueError):
        duration_s(raw)


def test_series_share_a_resolution_only_where_no_override_tells_them_apart():
    """Resolutions are cached by what overrides name (10,000 devices resolve as a few
    kinds of series): every series still gets its own cascade, in any order."""
    rs = parse_rules("""
[[rule]]
name = "spike"
params = { z = 5.0 }

[[override]]
rule = "spike"
enterprise = "E1"
params = { z = 6.0 }

[[override]]
rule = "spike"
point = "P1"
params = { z = 7.0 }

[[override]]
rule = "spike"
device = "MN1"
params = { z = 8.0 }
""")
    grid = [(mn, ent, pt) for mn in ("MN2", "MN1") for ent in ("E2", "E1") for pt in ("P2", "P1")]
    for mn, ent, pt in grid:  # the unnamed ones first: their entries exist when named come
        (bound,) = rs.resolve(info(mn=mn, enterprise=ent, point=pt))
        want = 8.0 if mn == "MN1" else 7.0 if pt == "P1" else 6.0 if ent == "E1" else 5.0
        assert bound.detector.z == want, (mn, ent, pt)
    again = rs.resolve(info(mn="MN3", enterprise="E3", point="P3"))
    assert again is rs.resolve(info(mn="MN2", enterprise="E2", point="P2"))  # one resolution
