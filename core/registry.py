"""The registry: enterprises → monitoring points → devices, with permit limits.

Pure model and parser. The store persists it (``store.registry``); the rules read
limits from it; the simulators generate one for the demo. A registry file is TOML
or JSON of this shape::

    [[enterprises]]
    id = "E0001"
    name = "Hengda Thermal Power"
    region = "Jiangsu/Nanjing"
      [[enterprises.points]]
      id = "E0001-P1"
      name = "1# boiler stack"
      kind = "flue_gas"          # or "wastewater"
      o2_ref = 6.0               # reference O2 % (flue gas only)
      limits = { a21026 = 35.0, a21002 = 50.0, a34013 = 10.0 }
        [[enterprises.points.devices]]
        mn = "010000A8900016F000169DC0"
        interval_s = 60          # expected reporting interval

Limits are validated here once so that nothing downstream has to doubt them.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offsite.core.errors import RegistryError

POINT_KINDS = ("flue_gas", "wastewater")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
# HJ 212 MN: 24 hex characters in the standard; field data is often shorter, so
# accept 1–24 characters of [0-9A-Za-z] and match the registry exactly.
MN_RE = re.compile(r"[0-9A-Za-z]{1,24}\Z")  # use with .match: \Z, unlike $, refuses "\n"
POLLUTANT_RE = re.compile(r"(?:[a-z][0-9]{5}|[A-Z]?[0-9]{2,3})\Z")


@dataclass(frozen=True, slots=True)
class Device:
    mn: str
    point_id: str
    interval_s: float = 60.0
    password: str | None = None  # HJ 212 PW the logger must send; None: not checked
    crc_compat: bool = False  # accept a byte-swapped CRC-16/MODBUS (vendor deviation)

    def __post_init__(self) -> None:
        if not MN_RE.match(self.mn):
            raise RegistryError(f"device MN {self.mn!r} is not 1–24 letters/digits")
        if not self.interval_s > 0:
            raise RegistryError(f"device {self.mn}: interval_s must be > 0")
        if self.password is not None and not re.fullmatch(r"[\x21-\x7e]{1,64}", self.password):
            raise RegistryError(
                f"device {self.mn}: password must be 1–64 printable ASCII characters without spaces"
            )


@dataclass(frozen=True, slots=True)
class Point:
    id: str
    enterprise_id: str
    name: str
    kind: str
    o2_ref: float | None = None
    limits: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _ID_RE.match(self.id):
            raise RegistryError(f"point id {self.id!r} is not a valid identifier")
        if self.kind not in POINT_KINDS:
            raise RegistryError(f"point {self.id}: kind must be one of {POINT_KINDS}")
        for code, limit in self.limits.items():
            if not POLLUTANT_RE.match(code):
                raise RegistryError(f"point {self.id}: {code!r} is not an HJ 212 pollutant code")
            if (
                not isinstance(limit, int | float)
                or isinstance(limit, bool)
                or not math.isfinite(limit)
                or limit <= 0
            ):
                raise RegistryError(f"point {self.id}: limit for {code} must be a positive number")
        if self.o2_ref is not None and not 0 <= self.o2_ref < 21:
            raise RegistryError(f"point {self.id}: o2_ref must be in [0, 21)")


@dataclass(frozen=True, slots=True)
class Enterprise:
    id: str
    name: str
    region: str = ""

    def __post_init__(self) -> None:
        if not _ID_RE.match(self.id):
            raise RegistryError(f"enterprise id {self.id!r} is not a valid identifier")
        if not self.name.strip():
            raise RegistryError(f"enterprise {self.id}: name is empty")


@dataclass(frozen=True, slots=True)
class Registry:
    enterprises: tuple[Enterprise, ...]
    points: tuple[Point, ...]
    devices: tuple[Device, ...]

    def __post_init__(self) -> None:
        ent_ids = {e.id for e in self.enterprises}
        if len(ent_ids) != len(self.enterprises):
            raise RegistryError("duplicate enterprise id")
        point_ids = {p.id for p in self.points}
        if len(point_ids) != len(self.points):
            raise RegistryError("duplicate point id")
        mns = {d.mn for d in self.devices}
        if len(mns) != len(self.devices):
            raise RegistryError("duplicate device MN")
        for p in self.points:
            if p.enterprise_id not in ent_ids:
                raise RegistryError(f"point {p.id}: unknown enterprise {p.enterprise_id}")
        for d in self.devices:
            if d.point_id not in point_ids:
                raise RegistryError(f"device {d.mn}: unknown point {d.point_id}")

    def point_of(self, mn: str) -> Point | None:
        by_point = {p.id: p for p in self.points}
        dev = next((d for d in self.devices if d.mn == mn), None)
        return by_point.get(dev.point_id) if dev else None

    def device_limits(self) -> Iterator[tuple[str, str, float]]:
        """Yield (mn, pollutant, limit) for every device under a limited point."""
        by_point = {p.id: p for p in self.points}
        for d in self.devices:
            for code, limit in by_point[d.point_id].limits.items():
                yield d.mn, code, float(limit)

    def to_dict(self) -> dict[str, Any]:
        out: list[dict[str, Any]] = []
        for e in self.enterprises:
            points = []
            for p in self.points:
                if p.enterprise_id != e.id:
                    continue
                pd: dict[str, Any] = {
                    "id": p.id,
                    "name": p.name,
                    "kind": p.kind,
                    "limits": dict(p.limits),
                }
                if p.o2_ref is not None:
                    pd["o2_ref"] = p.o2_ref
                pd["devices"] = [
                    {
                        "mn": d.mn,
                        "interval_s": d.interval_s,
                        **({"password": d.password} if d.password is not None else {}),
                        **({"crc_compat": True} if d.crc_compat else {}),
                    }
                    for d in self.devices
                    if d.point_id == p.id
                ]
                points.append(pd)
            out.append({"id": e.id, "name": e.name, "region": e.region, "points": points})
        return {"enterprises": out}


def registry_from_dict(data: Mapping[str, Any]) -> Registry:
    """Build a registry from parsed TOML/JSON, naming the offending entry on error."""
    try:
        enterprises, points, devices = [], [], []
        for e in data.get("enterprises", []):
            ent = Enterprise(id=str(e["id"]), name=str(e["name"]), region=str(e.get("region", "")))
            enterprises.append(ent)
            for p in e.get("points", []):
                point = Point(
                    id=str(p["id"]),
                    enterprise_id=ent.id,
                    name=str(p.get("name", p["id"])),
                    kind=str(p.get("kind", "flue_gas")),
                    o2_ref=float(p["o2_ref"]) if p.get("o2_ref") is not None else None,
                    limits={str(k): v for k, v in dict(p.get("limits", {})).items()},
                )
                points.append(point)
                for d in p.get("devices", []):
                    pw = d.get("password")
                    compat = d.get("crc_compat", False)
                    if not isinstance(compat, bool):
                        raise RegistryError(f"device {d['mn']}: crc_compat must be true/false")
                    devices.append(
                        Device(
                            mn=str(d["mn"]),
                            point_id=point.id,
                            interval_s=float(d.get("interval_s", 60)),
                            password=None if pw is None else str(pw),
                            crc_compat=compat,
                        )
                    )
    except KeyError as exc:
        raise RegistryError(f"registry entry is missing the field {exc.args[0]!r}") from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise RegistryError(f"registry entry is malformed: {exc}") from exc
    return Registry(tuple(enterprises), tuple(points), tuple(devices))


def load_registry_file(path: Path) -> Registry:
    """Read a ``.toml`` or ``.json`` registry file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RegistryError(f"cannot read registry file {path}: {exc.strerror}") from exc
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(raw.decode("utf-8"))
        elif path.suffix == ".json":
            data = json.loads(raw)
        else:
            raise RegistryError(f"registry file {path} must end in .toml or .json")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RegistryError(f"registry file {path} does not parse: {exc}") from exc
    return registry_from_dict(data)
