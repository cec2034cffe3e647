"""Archive HJ 212 packets as received; a redelivered packet (same MN, CN, QN, PNO) once."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from offsite.core.readings import RawPacket


def insert_packets(conn: psycopg.Connection, packets: Sequence[RawPacket]) -> None:
    if not packets:
        return
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO packets (received_at, transport, source, mn, qn, st, cn, flag, pnum,
                                    pno, raw, crc_variant)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT DO NOTHING""",
            [
                (
                    p.received_at,
                    p.transport,
                    p.source,
                    p.mn,
                    p.qn,
                    p.st,
                    p.cn,
                    p.flag,
                    p.pnum,
                    p.pno,
                    p.raw,
                    p.crc_variant,
                )
                for p in packets
            ],
        )
