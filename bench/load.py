"""What else the machine was doing while a run timed its solvers: load averages, and the CPU time that
other processes took, read from the kernel (Linux's /proc; elsewhere the load averages alone).

A run's own processes (this one, its solver processes, a local Dask cluster's workers) are told apart
from the rest by walking /proc for this process's descendants, so the figure is what *others* used.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROC = Path("/proc")


@dataclass(frozen=True)
class Snapshot:
    """The machine's counters at one moment."""

    wall: float  # time.monotonic()
    loadavg: tuple[float, float, float] | None  # 1, 5, 15 minutes; None where the system has none
    busy: float | None  # CPU seconds the whole machine has spent busy since boot (None: no /proc/stat)
    niced: float | None  # of which in processes at a lower priority (nice > 0)
    own: float  # CPU seconds of this process and its descendants, the reaped ones included


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def snapshot() -> Snapshot:
    try:
        loadavg: tuple[float, float, float] | None = os.getloadavg()
    except OSError:
        loadavg = None
    busy, niced = _machine()
    return Snapshot(time.monotonic(), loadavg, busy, niced, _own())


def between(start: Snapshot, end: Snapshot) -> dict[str, Any]:
    """What was running from `start` to `end`: the provenance record of one session of a run.

    `others_cores`: the CPU that other processes used, in cores on average (1.0: one core kept busy);
    `others_niced_cores`: the part of it at a lower priority; `own_cores`: this run's processes."""
    seconds = max(end.wall - start.wall, 1e-9)
    own = max(0.0, end.own - start.own) / seconds
    record: dict[str, Any] = {"cores": cores(), "seconds": round(seconds, 3), "own_cores": round(own, 3),
                              "loadavg_start": _rounded(start.loadavg), "loadavg_end": _rounded(end.loadavg)}
    if start.busy is not None and end.busy is not None and start.niced is not None and end.niced is not None:
        busy = (end.busy - start.busy) / seconds
        record["others_cores"] = round(max(0.0, busy - own), 3)
        record["others_niced_cores"] = round(max(0.0, (end.niced - start.niced) / seconds), 3)
    return record


def warning(record: dict[str, Any]) -> str | None:
    """A line for the terminal when the machine was busy enough for times to include waiting for a core:
    other processes (a quarter of a core or more) and this run together kept nine tenths of the cores
    busy or more (or, with no CPU counters, the load average was at the cores' count when the run
    began); else None."""
    n = record.get("cores") or 1
    if "others_cores" in record:
        others, own = record["others_cores"], record["own_cores"]
        if others + own < 0.9 * n or others < 0.25:
            return None
        niced = record.get("others_niced_cores") or 0.0
        return (f"the machine was busy: other processes used {others:.1f} of its {n} cores on average during the "
                f"run ({niced:.1f} of them at low priority) while it used {own:.1f}, so solve times may include "
                "waiting for a core; time on a quieter machine, or see docs/speed.md")
    load = record.get("loadavg_start")
    if load and load[0] >= n:
        return (f"the machine was busy: its load average was {load[0]:.1f} on {n} cores when the run began, so "
                "solve times may include waiting for a core; time on a quieter machine, or see docs/speed.md")
    return None


def _rounded(values: tuple[float, ...] | None) -> list[float] | None:
    return [round(v, 2) for v in values] if values is not None else None


def _machine() -> tuple[float | None, float | None]:
    """(busy, niced) CPU seconds of the whole machine since boot, from /proc/stat; (None, None) elsewhere."""
    try:
        first = (PROC / "stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None, None
    if not first or first[0] != "cpu" or len(first) < 8:
        return None, None
    user, nice, system, idle, iowait, irq, softirq = (int(v) for v in first[1:8])
    steal = int(first[8]) if len(first) > 8 else 0
    tick = os.sysconf("SC_CLK_TCK")
    # the columns are disjoint (user leaves out nice; a guest's time is inside user): busy is their sum but idle's
    return (user + nice + system + irq + softirq + steal) / tick, nice / tick


def _own() -> float:
    """CPU seconds of this process, its reaped children, and every live descendant (with their reaped ones)."""
    times = os.times()
    total = times.user + times.system + times.children_user + times.children_system
    return total + sum(_descendant_seconds(os.getpid()))


def _descendant_seconds(root: int) -> list[float]:
    """CPU seconds (own and reaped children's) of each live descendant of `root`, from /proc/<pid>/stat."""
    try:
        entries = [p for p in PROC.iterdir() if p.name.isdigit()]
    except OSError:
        return []
    parent: dict[int, int] = {}
    spent: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in entries:
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = text[text.rfind(")") + 2 :].split()  # after "pid (comm) ": comm may hold spaces and parentheses
        try:
            parent[int(entry.name)] = int(fields[1])
            spent[int(entry.name)] = sum(int(v) for v in fields[11:15]) / tick  # utime stime cutime cstime
        except (IndexError, ValueError):
            continue
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], list(children.get(root, ()))
    while todo:
        pid = todo.pop()
        found.append(spent[pid])
        todo += children.get(pid, ())
    return found
