"""offsite.core.registry: enterprises → points → devices, with permit limits."""

from __future__ import annotations

import copy
import json

import pytest

from offsite.core.errors import OffsiteError, RegistryError
from offsite.core.registry import Device, Registry, load_registry_file, registry_from_dict

MN1, MN2, MN3 = "010000A8900016F000169DC0", "MN2", "MN3"

DATA = {
    "enterprises": [
        {
            "id": "E0001",
            "name": "Hengda Thermal Power",
            "region": "Jiangsu/Nanjing",
            "points": [
                {
                    "id": "E0001-P1",
                    "name": "1# boiler stack",
                    "kind": "flue_gas",
                    "o2_ref": 6.0,
                    "limits": {"a21026": 35.0, "a21002": 50, "a34013": 10.0},
                    "devices": [{"mn": MN1, "interval_s": 60.0}, {"mn": MN2, "interval_s": 30.0}],
                },
                {
                    "id": "E0001-W1",
                    "name": "outfall",
                    "kind": "wastewater",
                    "limits": {"w01018": 50.0},
                    "devices": [{"mn": MN3, "interval_s": 300.0}],
                },
            ],
        },
        {"id": "E0002", "name": "Quiet Works", "region": "", "points": []},
    ]
}

TOML = f"""
[[enterprises]]
id = "E0001"
name = "Hengda Thermal Power"
region = "Jiangsu/Nanjing"
  [[enterprises.points]]
  id = "E0001-P1"
  name = "1# boiler stack"
  kind = "flue_gas"
  o2_ref = 6.0
  limits = {{ a21026 = 35.0, a21002 = 50, a34013 = 10.0 }}
    [[enterprises.points.devices]]
    mn = "{MN1}"
    interval_s = 60
    [[enterprises.points.devices]]
    mn = "{MN2}"
    interval_s = 30
  [[enterprises.points]]
  id = "E0001-W1"
  name = "outfall"
  kind = "wastewater"
  limits = {{ w01018 = 50.0 }}
    [[enterprises.points.devices]]
    mn = "{MN3}"
    interval_s = 300

[[enterprises]]
id = "E0002"
name = "Quiet Works"
"""


def data() -> dict:
    return copy.deepcopy(DATA)


def point(d: dict, i: int = 0) -> dict:
    return d["enterprises"][0]["points"][i]


def refused(d: object) -> str:
    with pytest.raises(RegistryError) as info:
        registry_from_dict(d)  # type: ignore[arg-type]
    assert isinstance(info.value, OffsiteError)
    return str(info.value)


def test_from_dict_builds_the_tree():
    reg = registry_from_dict(DATA)
    assert [e.id for e in reg.enterprises] == ["E0001", "E0002"]
    assert [(p.id, p.enterprise_id, p.kind) for p in reg.points] == [
        ("E0001-P1", "E0001", "flue_gas"),
        ("E0001-W1", "E0001", "wastewater"),
    ]
    assert reg.points[0].o2_ref == 6.0 and reg.points[1].o2_ref is None
    assert reg.devices == (
        Device(MN1, "E0001-P1", 60.0),
        Device(MN2, "E0001-P1", 30.0),
        Device(MN3, "E0001-W1", 300.0),
    )
    assert reg.point_of(MN3).id == "E0001-W1"
    assert reg.point_of("nope") is None


def test_defaults_for_optional_fields():
    reg = registry_from_dict(
        {
            "enterprises": [
                {"id": "E1", "name": "n", "points": [{"id": "P1", "devices": [{"mn": "M1"}]}]}
            ]
        }
    )
    p = reg.points[0]
    assert (p.name, p.kind, p.o2_ref, dict(p.limits)) == ("P1", "flue_gas", None, {})
    assert reg.devices[0].interval_s == 60.0
    assert reg.enterprises[0].region == ""


def test_empty_registry():
    assert registry_from_dict({}) == Registry((), (), ())


def test_device_limits():
    got = sorted(registry_from_dict(DATA).device_limits())
    assert got == sorted(
        [
            (MN1, "a21026", 35.0),
            (MN1, "a21002", 50.0),
            (MN1, "a34013", 10.0),
            (MN2, "a21026", 35.0),
            (MN2, "a21002", 50.0),
            (MN2, "a34013", 10.0),
            (MN3, "w01018", 50.0),
        ]
    )
    assert all(type(lim) is float for *_, lim in got)


def test_to_dict_round_trip():
    reg = registry_from_dict(DATA)
    again = registry_from_dict(reg.to_dict())
    assert again == reg
    assert reg.to_dict() == again.to_dict()
    assert json.loads(json.dumps(reg.to_dict())) == reg.to_dict()


def test_to_dict_omits_missing_o2_ref():
    out = registry_from_dict(DATA).to_dict()
    points = out["enterprises"][0]["points"]
    assert points[0]["o2_ref"] == 6.0 and "o2_ref" not in points[1]


# -- files ----------------------------------------------------------------------------


def test_load_toml_and_json_agree(tmp_path):
    t = tmp_path / "reg.toml"
    t.write_text(TOML, encoding="utf-8")
    j = tmp_path / "reg.json"
    j.write_text(json.dumps(DATA), encoding="utf-8")
    assert load_registry_file(t) == load_registry_file(j) == registry_from_dict(DATA)


@pytest.mark.parametrize("name", ["reg.yaml", "reg.txt", "reg", "reg.toml.bak"])
def test_wrong_extension(tmp_path, name):
    f = tmp_path / name
    f.write_text(TOML, encoding="utf-8")
    with pytest.raises(RegistryError, match=r"\.toml or \.json"):
        load_registry_file(f)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("reg.toml", b"[[enterprises]\nid = "),
        ("reg.toml", b'id = "\xff\xfe"'),
        ("reg.json", b'{"enterprises": ['),
        ("reg.json", b"\xff\xfe\x00{"),
    ],
)
def test_unparsable_file(tmp_path, name, content):
    f = tmp_path / name
    f.write_bytes(content)
    with pytest.raises(RegistryError, match="does not parse"):
        load_registry_file(f)


def test_missing_file(tmp_path):
    with pytest.raises(RegistryError, match="cannot read"):
        load_registry_file(tmp_path / "absent.toml")


def test_json_top_level_not_an_object(tmp_path):
    f = tmp_path / "reg.json"
    f.write_text("[1, 2]")
    with pytest.raises(RegistryError):
        load_registry_file(f)


# -- refusals -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (("enterprises", 0, "id"), "id"),
        (("enterprises", 0, "name"), "name"),
        (("enterprises", 0, "points", 0, "id"), "id"),
        (("enterprises", 0, "points", 0, "devices", 0, "mn"), "mn"),
    ],
)
def test_missing_field(path, field):
    d = data()
    node = d
    for step in path[:-1]:
        node = node[step]
    del node[path[-1]]
    assert f"missing the field '{field}'" in refused(d)


def test_duplicate_enterprise_id():
    d = data()
    d["enterprises"][1]["id"] = "E0001"
    assert "duplicate enterprise" in refused(d)


def test_duplicate_point_id_across_enterprises():
    d = data()
    d["enterprises"][1]["points"] = [{"id": "E0001-P1"}]
    assert "duplicate point" in refused(d)


def test_duplicate_device_mn_across_points():
    d = data()
    point(d, 1)["devices"].append({"mn": MN1})
    assert "duplicate device" in refused(d)


@pytest.mark.parametrize("mn", ["", "A" * 25, "MN-1", "MN 1", "МН1"])
def test_bad_mn(mn):
    d = data()
    point(d)["devices"][0]["mn"] = mn
    assert "MN" in refused(d)


def test_mn_with_trailing_newline_is_refused():
    d = data()
    point(d)["devices"][0]["mn"] = "MN1\n"
    refused(d)


@pytest.mark.parametrize("interval", [0, -60, float("nan"), "soon"])
def test_bad_interval(interval):
    d = data()
    point(d)["devices"][0]["interval_s"] = interval
    refused(d)


@pytest.mark.parametrize("limit", [0, -1.0, float("inf"), "35", True, None, [35]])
def test_bad_limit(limit):
    d = data()
    point(d)["limits"]["a21026"] = limit
    assert "a21026" in refused(d) or "malformed" in refused(d)


def test_nan_limit_is_refused():
    d = data()
    point(d)["limits"]["a21026"] = float("nan")
    refused(d)


@pytest.mark.parametrize("code", ["SO2", "a2102", "", "a21026\t"])
def test_bad_pollutant_code_in_limits(code):
    d = data()
    point(d)["limits"][code] = 10.0
    assert "pollutant code" in refused(d)


@pytest.mark.parametrize("kind", ["chimney", "", "FLUE_GAS"])
def test_unknown_kind(kind):
    d = data()
    point(d)["kind"] = kind
    assert "kind must be one of" in refused(d)


@pytest.mark.parametrize("o2", [-0.1, 21, 21.0, 50, "six", float("nan")])
def test_bad_o2_ref(o2):
    d = data()
    point(d)["o2_ref"] = o2
    refused(d)


@pytest.mark.parametrize("o2", [0, 0.0, 6, 20.9])
def test_good_o2_ref(o2):
    d = data()
    point(d)["o2_ref"] = o2
    assert registry_from_dict(d).points[0].o2_ref == float(o2)


@pytest.mark.parametrize("ident", ["", "-E1", "E 1", "E" * 65])
def test_bad_ids(ident):
    d = data()
    d["enterprises"][0]["id"] = ident
    refused(d)
    d = data()
    point(d)["id"] = ident
    refused(d)


def test_blank_enterprise_name():
    d = data()
    d["enterprises"][0]["name"] = "   "
    assert "name is empty" in refused(d)


@pytest.mark.parametrize(
    "doc",
    [
        {"enterprises": [5]},
        {"enterprises": ["E1"]},
        {"enterprises": [{"id": "E1", "name": "n", "points": [7]}]},
        {"enterprises": [{"id": "E1", "name": "n", "points": [{"id": "P", "limits": [1]}]}]},
        {"enterprises": [{"id": "E1", "name": "n", "points": [{"id": "P", "devices": ["M"]}]}]},
    ],
)
def test_wrong_shapes_are_registry_errors(doc):
    refused(doc)


def test_registry_checks_references():
    from offsite.core.registry import Enterprise, Point

    e = Enterprise("E1", "n")
    p = Point("P1", "E1", "p", "flue_gas")
    with pytest.raises(RegistryError, match="unknown enterprise"):
        Registry((), (p,), ())
    with pytest.raises(RegistryError, match="unknown point"):
        Registry((e,), (p,), (Device("M1", "P9"),))
