"""A simulated logger's side of HJ 212: one device tick → one real-time data packet. Pure.

The fleet's readings become what a field data logger uploads every interval: CN 2011
(real-time data) with ``<code>-Rtd`` / ``<code>-Flag=N`` items, the logger's password
from the registry, ST from the kind of monitoring point (31 air / 32 water pollution
source) and Flag=5 (HJ 212-2017, reply wanted), so the platform answers with CN 9014
and the TCP logger can count what went unanswered. Building goes through the
platform's own codec, so simulator and gateway cannot drift apart on the format.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, tzinfo

from offsite.core.readings import FLAGS
from offsite.core.registry import Registry
from offsite.ingest.codecs.hj212 import BEIJING, build_data_packet, qn_of
from offsite.simulators.errors import PublishError

REALTIME_CN = "2011"
# Flag V5..V0 = 000001 (2017), D = 0 (not split), A = 1 (reply wanted).
FLAG_REPLY_WANTED = 5
# ST: the system the point belongs to (DOMAIN.md, HJ 212).
ST_BY_POINT_KIND: Mapping[str, str] = {"flue_gas": "31", "wastewater": "32"}
# What a logger sends when nobody set a password (a registry without one is not checked).
DEFAULT_PASSWORD = "123456"
NORMAL = "N"


def system_code(point_kind: str) -> str:
    """ST for a registry point kind; an unknown kind is a fleet bug, not a field quirk."""
    try:
        return ST_BY_POINT_KIND[point_kind]
    except KeyError as exc:
        raise PublishError(f"no HJ 212 system code (ST) for point kind {point_kind!r}") from exc


def realtime_packet(
    *,
    mn: str,
    pw: str,
    st: str,
    values: Mapping[str, float],
    ts: datetime,
    tz: tzinfo = BEIJING,
    crc: str = "standard",
    flags: Mapping[str, str] | None = None,
) -> bytes:
    """The CN 2011 packet (Flag=5) carrying ``values`` sampled at ``ts``.

    Each value's ``<code>-Flag`` is ``flags[code]``, N where absent.

    Refused here rather than sent (``PublishError``): naive timestamps, non-finite
    values and a data segment too long to frame — ingest would only dead-letter them.
    DataTime is in ``tz`` to the second (the standard's resolution); QN keeps the
    milliseconds and is what the platform's reply echoes.
    """
    if ts.tzinfo is None:
        raise PublishError("HJ 212 packet timestamps must be timezone-aware")
    flags = flags or {}
    items = []
    for code, value in values.items():
        v = float(value)
        if not math.isfinite(v):
            raise PublishError(f"value for {code} is not finite: {value!r}")
        flag = flags.get(code, NORMAL)
        if flag not in FLAGS:
            raise PublishError(f"flag {flag!r} for {code} is not an HJ 212 data flag")
        items.append((code, v, flag))
    try:
        return build_data_packet(
            mn=mn,
            pw=pw,
            cn=REALTIME_CN,
            ts=ts,
            st=st,
            values=items,
            flag=FLAG_REPLY_WANTED,
            tz=tz,
            crc=crc,
        )
    except ValueError as exc:
        raise PublishError(f"HJ 212 packet for {mn} cannot be framed: {exc}") from exc


class Hj212Encoder:
    """Encodes a fleet's ticks as its loggers would, from what the registry says of each MN.

    Looks up password, ST and CRC flavour once per device (not per packet): a replay
    encodes thousands of packets per second. A device marked ``crc_compat`` sends the
    byte-swapped CRC-16/MODBUS its real counterpart is registered for.
    """

    def __init__(self, registry: Registry, *, tz: tzinfo = BEIJING) -> None:
        self.tz = tz
        kinds = {p.id: p.kind for p in registry.points}
        self._profile: dict[str, tuple[str, str, str]] = {
            d.mn: (
                d.password or DEFAULT_PASSWORD,
                system_code(kinds[d.point_id]),
                "modbus_swapped" if d.crc_compat else "standard",
            )
            for d in registry.devices
        }

    def packet(
        self,
        mn: str,
        values: Mapping[str, float],
        ts: datetime,
        flags: Mapping[str, str] | None = None,
    ) -> bytes:
        try:
            pw, st, crc = self._profile[mn]
        except KeyError as exc:
            raise PublishError(f"device {mn} is not in the fleet's registry") from exc
        return realtime_packet(
            mn=mn, pw=pw, st=st, values=values, ts=ts, tz=self.tz, crc=crc, flags=flags
        )

    def qn(self, ts: datetime) -> str:
        """The QN of every packet of the tick at ``ts`` (what the platform's reply echoes)."""
        return qn_of(ts, self.tz)
