"""Where the machine's CPU went during a benchmark phase, by process group (Linux /proc).

On a 2-core box the publishers, the broker, the subscriber and PostgreSQL all share the
same cores, so a throughput ratio means little without this: if both phases keep the
machine busy, the ratio is bounded by how much CPU each side spends per message, and
the figures show which process spends it.

A process's figure is its own CPU time plus that of the children it has reaped
(``cutime``/``cstime``) plus its live children's: for PostgreSQL's postmaster, that is
every backend, including those that exited during the phase.
"""

from __future__ import annotations

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[int, float, float] | None:
    """(parent pid, own CPU s, reaped children's CPU s) of a process, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return ppid, (utime + stime) / TICK, (cutime + cstime) / TICK


def tree_cpu_s(root: int) -> float:
    """CPU seconds of ``root`` and all its descendants, living or reaped; NaN if gone."""
    parents: dict[int, int] = {}
    own: dict[int, float] = {}
    reaped: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        s = _stat(int(entry.name))
        if s is not None:
            pid = int(entry.name)
            parents[pid], own[pid], reaped[pid] = s
    if root not in own:
        return float("nan")
    total, todo = 0.0, [root]
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    while todo:
        pid = todo.pop()
        total += own[pid] + reaped[pid]
        todo.extend(children.get(pid, ()))
    return total


def postmaster_pid(conn: object) -> int | None:
    """The PostgreSQL server's main process, when it runs on this machine."""
    row = conn.execute("SELECT pg_backend_pid()").fetchone()  # type: ignore[attr-defined]
    s = _stat(int(row[0])) if row else None
    return s[0] if s is not None else None


def available() -> bool:
    return Path("/proc/self/stat").exists()
