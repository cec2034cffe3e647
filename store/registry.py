"""Persist and load the registry (enterprises → points → devices, with limits)."""

from __future__ import annotations

import hashlib
from typing import Any

import psycopg
from psycopg import AsyncConnection

from offsite.core.registry import Device, Enterprise, Point, Registry
from offsite.store.audit import append_sync, canonical_data


def _digest(reg: Registry) -> str:
    """SHA-256 of the registry's canonical JSON without device passwords (a hash of a
    six-digit PW beside everything else known would give the PW away)."""

    def strip(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k != "password"}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    return hashlib.sha256(canonical_data(strip(reg.to_dict())).encode()).hexdigest()


def save_registry(conn: psycopg.Connection, reg: Registry, actor: str = "system") -> None:
    """Upsert every entry in one transaction; entries not in ``reg`` are left alone.

    The audit log records the load (counts and a digest of what was loaded)."""
    with conn.transaction(), conn.cursor() as cur:
        append_sync(
            conn,
            actor,
            "registry.load",
            "registry",
            {
                "enterprises": len(reg.enterprises),
                "points": len(reg.points),
                "devices": len(reg.devices),
                "sha256": _digest(reg),
            },
        )
        cur.executemany(
            """INSERT INTO enterprises (id, name, region) VALUES (%s, %s, %s)
               ON CONFLICT (id) DO UPDATE SET name = excluded.name, region = excluded.region""",
            [(e.id, e.name, e.region) for e in reg.enterprises],
        )
        cur.executemany(
            """INSERT INTO points (id, enterprise_id, name, kind, o2_ref)
               VALUES (%s, %s, %s, %s, %s)
               ON CONFLICT (id) DO UPDATE SET enterprise_id = excluded.enterprise_id,
                   name = excluded.name, kind = excluded.kind, o2_ref = excluded.o2_ref""",
            [(p.id, p.enterprise_id, p.name, p.kind, p.o2_ref) for p in reg.points],
        )
        if reg.points:
            cur.execute(
                "DELETE FROM point_limits WHERE point_id = ANY(%s)", ([p.id for p in reg.points],)
            )
        cur.executemany(
            "INSERT INTO point_limits (point_id, pollutant, limit_value) VALUES (%s, %s, %s)",
            [(p.id, code, float(v)) for p in reg.points for code, v in p.limits.items()],
        )
        cur.executemany(
            """INSERT INTO devices (mn, point_id, interval_s, password, crc_compat)
               VALUES (%s, %s, %s, %s, %s)
               ON CONFLICT (mn) DO UPDATE SET point_id = excluded.point_id,
                   interval_s = excluded.interval_s, password = excluded.password,
                   crc_compat = excluded.crc_compat""",
            [(d.mn, d.point_id, d.interval_s, d.password, d.crc_compat) for d in reg.devices],
        )


def load_registry(conn: psycopg.Connection) -> Registry:
    """The active part of the registry as stored."""
    ents = tuple(
        Enterprise(i, n, r)
        for i, n, r in conn.execute("SELECT id, name, region FROM enterprises ORDER BY id")
    )
    limits: dict[str, dict[str, float]] = {}
    for pid, code, v in conn.execute("SELECT point_id, pollutant, limit_value FROM point_limits"):
        limits.setdefault(pid, {})[code] = v
    points = tuple(
        Point(i, e, n, k, o, limits.get(i, {}))
        for i, e, n, k, o in conn.execute(
            "SELECT id, enterprise_id, name, kind, o2_ref FROM points ORDER BY id"
        )
    )
    devices = tuple(
        Device(mn, p, iv, pw, compat)
        for mn, p, iv, pw, compat in conn.execute(
            "SELECT mn, point_id, interval_s, password, crc_compat FROM devices "
            "WHERE active ORDER BY mn"
        )
    )
    return Registry(ents, points, devices)


def load_revoked(conn: psycopg.Connection) -> dict[str, str]:
    """Revoked devices and why: ingest dead-letters their data as ``device_revoked``."""
    return {
        mn: reason or "no reason given"
        for mn, reason in conn.execute(
            "SELECT mn, revoked_reason FROM devices WHERE revoked_at IS NOT NULL"
        )
    }


def device_mqtt_hashes(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """(mn, Mosquitto hash) of every active, unrevoked device that has MQTT credentials."""
    return [
        (mn, h)
        for mn, h in conn.execute(
            "SELECT mn, mqtt_password_hash FROM devices WHERE active AND revoked_at IS NULL "
            "AND mqtt_password_hash IS NOT NULL ORDER BY mn"
        )
    ]


def set_device_mqtt_hash(
    conn: psycopg.Connection, mn: str, mqtt_hash: str, actor: str = "system"
) -> bool:
    with conn.transaction():
        cur = conn.execute(
            "UPDATE devices SET mqtt_password_hash = %s WHERE mn = %s AND revoked_at IS NULL",
            (mqtt_hash, mn),
        )
        if cur.rowcount:
            append_sync(conn, actor, "device.mqtt_password", f"device:{mn}", {})
    return cur.rowcount > 0


async def onboard_device(
    conn: AsyncConnection,
    mn: str,
    point_id: str,
    interval_s: float,
    password: str | None,
    mqtt_hash: str,
) -> bool:
    """Insert a new device, or re-admit a revoked one; False if it exists and is active."""
    cur = await conn.execute(
        """INSERT INTO devices (mn, point_id, interval_s, password, mqtt_password_hash)
           VALUES (%s, %s, %s, %s, %s)
           ON CONFLICT (mn) DO UPDATE SET point_id = excluded.point_id,
               interval_s = excluded.interval_s, password = excluded.password,
               mqtt_password_hash = excluded.mqtt_password_hash, active = true,
               revoked_at = NULL, revoked_reason = NULL
           WHERE devices.revoked_at IS NOT NULL""",
        (mn, point_id, interval_s, password, mqtt_hash),
    )
    return cur.rowcount > 0


async def revoke_device(conn: AsyncConnection, mn: str, reason: str) -> bool | None:
    """Revoke; None if no such device, False if it was already revoked."""
    cur = await conn.execute(
        """UPDATE devices SET active = false, revoked_at = now(), revoked_reason = %s,
               mqtt_password_hash = NULL
           WHERE mn = %s AND revoked_at IS NULL""",
        (reason, mn),
    )
    if cur.rowcount:
        return True
    cur = await conn.execute("SELECT 1 FROM devices WHERE mn = %s", (mn,))
    return False if await cur.fetchone() else None


async def bump_qr_generation(conn: AsyncConnection, enterprise_id: str) -> int | None:
    cur = await conn.execute(
        "UPDATE enterprises SET qr_generation = qr_generation + 1 "
        "WHERE id = %s RETURNING qr_generation",
        (enterprise_id,),
    )
    row = await cur.fetchone()
    return int(row[0]) if row else None
