"""Where people still win, item by item: on a data set with people, the items that people read (first
answer) and a machine missed, the reverse, and the items that every machine and every person missed, as a
label audit: an answer that nobody gives may be a wrong label, so accuracy is also shown over the
"solvable" items, those that anyone read. Scored by the data set's own case rule.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

from bench.report.compare import first_answers, right
from bench.report.model import Group
from bench.runfolder.records import Attempt
from captchas import dataset as ds
from captchas.images import load_image

PEOPLE_ONLY, MACHINE_ONLY, NOBODY = "people-only", "machine-only", "nobody"
WHO = (PEOPLE_ONLY, MACHINE_ONLY, NOBODY)
SHOWN = 12  # items the report shows of each list
COLUMNS = ["who", "data_set", "item_id", "file", "expected", "people_first", "people_all", "machine", "machine_answer"]


@dataclass(frozen=True)
class Item:
    """One item of an audit list, with what each side answered."""

    who: str
    item_id: str
    expected: str
    people_first: str  # the item's first human answer ("" where it had none)
    people_all: tuple[str, ...]  # every human answer, in the order recorded
    machine: str
    machine_answer: str


@dataclass(frozen=True)
class Audit:
    """One data set's lists, and each solver's accuracy over the solvable items beside its raw one."""

    group: Group
    strongest: str  # the machine with the highest accuracy: the one the report's lists are about
    items: dict[str, list[Item]]  # who -> items (people-only and machine-only: the strongest machine's)
    solvable: dict[str, tuple[float, float, int]]  # solver -> (raw accuracy, solvable-only, solvable items)


def audit(group: Group, machine: str | None = None) -> Audit | None:
    """The audit of a data set with people and machines (None otherwise). `machine`: whose people-only and
    machine-only lists (default: the most accurate machine)."""
    if not group.people or not group.machines:
        return None
    rule = group.case_sensitive
    people = [a for p in group.people for a in group.attempts[p]]
    first = first_answers(people)
    said: dict[str, list[Attempt]] = {}
    for a in people:
        said.setdefault(a.item_id, []).append(a)
    machines = {m: {a.item_id: a for a in group.attempts[m]} for m in group.machines}

    def accuracy(attempts: list[Attempt]) -> float:
        return sum(right(a, rule) for a in attempts) / len(attempts) if attempts else math.nan

    strongest = machine or max(group.machines, key=lambda m: (accuracy(list(machines[m].values())), m))
    nobody = [i for i in sorted(said) if all(not right(a, rule) for a in said[i])
              and all(i in mine and not right(mine[i], rule) for mine in machines.values())]
    missed = set(nobody)

    def item(who: str, i: str, m: str) -> Item:
        a = machines[m].get(i)
        return Item(who, i, (first.get(i) or said[i][0]).expected, first[i].predicted if i in first else "",
                    tuple(x.predicted for x in said[i]), m, a.predicted if a else "")

    mine = machines[strongest]
    lists = {
        PEOPLE_ONLY: [item(PEOPLE_ONLY, i, strongest) for i in sorted(first)
                      if i in mine and right(first[i], rule) and not right(mine[i], rule)],
        MACHINE_ONLY: [item(MACHINE_ONLY, i, strongest) for i in sorted(first)
                       if i in mine and right(mine[i], rule) and not right(first[i], rule)],
        NOBODY: [item(NOBODY, i, m) for i in nobody for m in group.machines],
    }
    solvable = {}
    for name, attempts in [*((p + " (first answers)", list(first.values())) for p in group.people[:1]),
                           *((m, list(machines[m].values())) for m in group.machines)]:
        kept = [a for a in attempts if a.item_id not in missed]
        solvable[name] = (accuracy(attempts), accuracy(kept), len({a.item_id for a in kept}))
    return Audit(group, strongest, lists, solvable)


def listed(made: Audit, who: str, machine: str | None = None) -> list[Item]:
    """An audit's list for `items --who`: people-only and machine-only for every machine unless one is named."""
    if who == NOBODY:
        return made.items[who]
    found = []
    for m in [machine] if machine else made.group.machines:
        mine = made if m == made.strongest else audit(made.group, m)
        found += mine.items[who] if mine else []
    return found


def csv_text(group_label: str, items: list[Item], files: dict[str, str]) -> str:
    """The items as CSV (COLUMNS); `files`: item id -> its image's file name in the data set."""
    buffer = io.StringIO()
    writer = ds.CsvWriter(buffer)
    for i in items:
        writer.writerow([i.who, group_label, i.item_id, files.get(i.item_id, ""), i.expected, i.people_first,
                         " | ".join(i.people_all), i.machine, i.machine_answer])
    return buffer.getvalue()


def items_of(group: Group) -> tuple[ds.Dataset, dict[str, ds.Sample]] | None:
    """The group's data set and its items by id, where it is still where its run read it and still the same
    data set (its manifest's sha256); None otherwise."""
    try:
        data = ds.read_dataset(Path(str(group.runs[0].request.get("dataset", ""))))
    except ds.DatasetError:
        return None
    return (data, {s.id: s for s in data.samples}) if data.hash == group.sha256 else None


def thumbnail(data: ds.Dataset, sample: ds.Sample, height: int = 48) -> bytes | None:
    """An item's image, checked against its sha256 (`captchas.images.load_image`), as a small PNG; None where
    it cannot be read."""
    try:
        image = load_image(data, sample)
    except ds.DatasetError:
        return None
    image.thumbnail((height * 6, height))
    out = io.BytesIO()
    image.convert("RGB").save(out, format="PNG")
    return out.getvalue()
