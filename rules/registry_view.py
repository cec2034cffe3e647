"""The registry as the rule engine sees it: one ``DeviceMeta`` per device."""

from __future__ import annotations

from offsite.core.registry import Registry
from offsite.rules.engine import DeviceMeta


def device_meta(reg: Registry) -> dict[str, DeviceMeta]:
    points = {p.id: p for p in reg.points}
    out = {}
    for d in reg.devices:
        p = points[d.point_id]
        out[d.mn] = DeviceMeta(
            p.kind, p.enterprise_id, p.id, d.interval_s, p.o2_ref, dict(p.limits)
        )
    return out
