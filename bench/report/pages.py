"""The report as documents: one self-contained HTML page (figures embedded) and its Markdown twin.

Both show the same things in the same order: the verdict, the figures, the solvers, the glyphs,
the published references, the methods, the provenance. They only build strings.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any
from html import escape

from bench import stats
from bench.load import warning
from bench.report.items import MACHINE_ONLY, NOBODY, PEOPLE_ONLY, SHOWN, WHO, Audit, Item
from bench.report.model import HUMAN_PRICE, REFERENCES, Group, Reference, Report
from bench.report.tables import (CROSSING_HEADER, VERDICT_HEADER, all_answers, confusion_rows, crossings, glyph_rows,
                          other_rule, pct, power_line, seconds, shared_confusions, verdict_rows)
from bench.runfolder.read import Run

TITLE = "Do machines beat people at these CAPTCHAs?"
CAPTIONS = {
    "accuracy-time": "Accuracy against median solve time, per data set (log time axis; bars: 95 % intervals). "
                     "People in black (filled: first answers, open: all answers), machines in colour. Grey: "
                     "published human figures, other items and other people, never compared.",
    "accuracy-cost": "Accuracy against what 1,000 solves cost, per data set (log axis): a machine's own prices, "
                     "or its CPU time at the run's price per vCPU-hour. People: their measured accuracy at a human "
                     "solving service's published price (grey bar), not a cost measured here.",
    "times": "How long each solver took per item: the share of items solved within a time (log axis).",
    "accuracy": "Accuracy of every solver on every data set, with Wilson 95 % intervals.",
    "glyphs": "per glyph, how often it was read right: the people's hardest glyphs, people (first answers) "
              "beside each machine.",
    "sweep": "Accuracy and median time against the knob's values. Grey band: the TuringPass people's first "
             "tries (other items, other people), where a point has no people of its own.",
}
CLOCKS = ("Machines: seconds inside the solver process from decoded image in to answer out, each item alone "
          "(batch 1) with the model loaded. People: their recorded solve time, typing included (the study "
          "server's clock where captcha-bench recorded them; TuringPass's own app clock, page load to submit "
          "click, for its split).")
METHODS = ("Accuracy: Wilson 95 % intervals (statsmodels). Machine against people: paired by item on the items "
           "both attempted; each item's first human answer (the first recorded first try) is the primary "
           "analysis; the difference of accuracies with Newcombe's 95 % interval for paired proportions "
           "(method 10) and the exact McNemar test; times compared on the items both answered, as the ratio "
           "of median times with a paired bootstrap interval and the Wilcoxon signed-rank test (scipy). All "
           "answers: the same differences with intervals from a bootstrap that resamples items, an item's "
           "answers staying together (no test). Holm's correction over every test of this report (both case "
           "rules and time). Power: the smallest difference of accuracies the paired items resolve at 80 % power "
           "(Connor, Biometrics 1987), from their share of discordant items. Equivalence, where the runs stated a "
           "margin before they ran: the paired 90 % interval (Newcombe) inside plus or minus the margin (two "
           "one-sided tests, TOST), and its lower bound above minus the margin for \"not worse\". Where a study "
           "recorded who answered and one person gave several first answers, the first answers' intervals and "
           "tests resample participants, not items (Durkalski's clustered McNemar test; a participant bootstrap "
           "for both intervals; Wilcoxon over each participant's mean log ratio of times); each verdict line says "
           "which units it resampled. Bootstraps: {resamples:,} percentile resamples, seed {seed}.")


Block = tuple[str, Any]  # (kind, content): the report as a sequence that both documents render alike


def blocks(report: Report) -> list[Block]:
    """The report's content in order, once: headings, paragraphs, tables, figures, lists."""
    found: list[Block] = [("h1", TITLE), ("meta", _byline(report))]
    found += [("warn", w) for w in _warnings(report)]
    found.append(("h2", "Verdict"))
    if report.comparisons:
        found += [("table", (VERDICT_HEADER, verdict_rows(report))), ("list", _details(report))]
    found.append(("rule", stats.RULE))
    crossed = crossings(report)
    if crossed:
        found += [("h3", _crossing_title(report)), ("table", (CROSSING_HEADER, crossed))]
    found += [("p", f"Clocks. {CLOCKS}"), ("h2", "Figures"), ("figures", None)]
    for k, group in enumerate(report.groups, 1):
        found += [("h2", group.label), ("meta", _group_line(group)), ("table", _solver_table(group))]
        found += _audit_blocks(k, report.audits[k - 1] if len(report.audits) >= k else None)
        header, rows = glyph_rows(group)
        if rows:
            found += [("h3", "Hardest glyphs (read right, occurrences)"), ("table", (header, rows))]
        solvers, rows = confusion_rows(group)
        if rows:
            found += [("h3", "Most frequent confusions (answer glyph \u2192 read as, count)"), ("table", (solvers, rows))]
            found += [("p", line) for line in _shared(group)]
    found += [("h2", "Published human figures (other items, other people)"),
              ("list", [f"{r.cite}: {r.what}{_ref_numbers(r)}." for r in REFERENCES]
               + [f"{HUMAN_PRICE.cite}: the price a human solving service charges (the people's point in the "
                  "cost figure), published, not measured here."]),
              ("h2", "Methods"), ("p", _methods(report)), ("h2", "Provenance")]
    for group in report.groups:
        for run in group.runs:
            found += [("h3", run.run_id), ("table", (["", ""], _provenance_rows(run))),
                      ("details", ("run.json in full", json.dumps({**run.request, "provenance": run.provenance},
                                                                    indent=2)))]
    found.append(("meta", "This report: " + json.dumps(report.provenance)))
    return found


def item_images(report: Report) -> dict[str, tuple[int, str]]:
    """The item images the report shows: name -> (group number, item id)."""
    found = {}
    for k, a in enumerate(report.audits, 1):
        if a is not None:
            for who in WHO:
                for i in _shown(a, who):
                    found[_item_name(k, i.item_id)] = (k, i.item_id)
    return found


def _item_name(k: int, item_id: str) -> str:
    return f"item-{k}-{item_id}"


def _shown(a: Audit, who: str) -> list[Item]:
    """The items of a list the report shows: the first SHOWN (the nobody list has a row per machine)."""
    if who != NOBODY:
        return a.items[who][:SHOWN]
    return [i for i in a.items[who] if i.machine == a.group.machines[0]][:SHOWN]


def _audit_blocks(k: int, a: Audit | None) -> list[Block]:
    """Where people still win on this data set, item by item, and the label audit."""
    if a is None:
        return []
    titles = {PEOPLE_ONLY: f"People read it, {a.strongest} did not", MACHINE_ONLY: f"{a.strongest} read it, people did not",
              NOBODY: "Nobody read it: every machine and every person missed (a label to check)"}
    found: list[Block] = [("h3", f"Where people still win, item by item (against {a.strongest}, the most accurate "
                                 "machine here)")]
    for who in WHO:
        total = len({i.item_id for i in a.items[who]})
        shown = _shown(a, who)
        found.append(("p", f"{titles[who]}: {total:,} item(s){f', the first {len(shown)} shown' if total > len(shown) else ''}. "
                           f"All of them: captcha-bench items RUN --who {who}."))
        if shown:
            cells = []
            for i in shown:
                answers = ("; ".join(f"{x.machine}: {x.machine_answer!r}" for x in a.items[NOBODY]
                                     if x.item_id == i.item_id) if who == NOBODY
                           else f"{i.machine}: {i.machine_answer!r}")
                cells.append((_item_name(k, i.item_id), f"{i.item_id}: truth {i.expected!r}; people first "
                              f"{i.people_first!r} (all: {', '.join(map(repr, i.people_all))}); {answers}"))
            found.append(("gallery", cells))
    rows = [[name, pct(raw), pct(kept), f"{n:,}"] for name, (raw, kept, n) in a.solvable.items()]
    found += [("p", "Accuracy over every item, and over the solvable items only (those that any machine or person "
                    "read; the nobody items may carry wrong labels):"),
              ("table", (["solver", "accuracy", "solvable-only accuracy", "solvable items"], rows))]
    return found


def html(report: Report, images: dict[str, str], items: dict[str, str] | None = None) -> str:
    """The HTML page; `images` maps figure stems to their src (data: URIs), `items` item images' names to theirs."""
    shown = items or {}

    def gallery(cells: list[tuple[str, str]]) -> str:
        rows = "".join(f"<tr><td>{_img(shown.get(name), text)}</td><td>{escape(text)}</td></tr>" for name, text in cells)
        return f"<table class=items><tbody>{rows}</tbody></table>"

    def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
        head = "".join(f"<th>{escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def figure(stem: str, src: str) -> str:
        caption = escape(_caption(stem, report))
        return f'<figure><img src="{src}" alt="{caption}"><figcaption>{caption}</figcaption></figure>'

    rendered: dict[str, Callable[[Any], str]] = {
        "h1": lambda c: f"<h1>{escape(c)}</h1>", "h2": lambda c: f"<h2>{escape(c)}</h2>",
        "h3": lambda c: f"<h3>{escape(c)}</h3>", "p": lambda c: f"<p>{escape(c)}</p>",
        "meta": lambda c: f"<p class=meta>{escape(c)}</p>", "warn": lambda c: f"<p class=warn>{escape(c)}</p>",
        "rule": lambda c: f"<p class=rule><strong>Rule.</strong> {escape(c)}</p>",
        "list": lambda c: "<ul>" + "".join(f"<li>{escape(line)}</li>" for line in c) + "</ul>",
        "table": lambda c: table(*c),
        "figures": lambda _: "\n".join(figure(stem, src) for stem, src in images.items()),
        "details": lambda c: f"<details><summary>{escape(c[0])}</summary><pre>{escape(c[1])}</pre></details>",
        "gallery": gallery,
    }
    body = "\n".join(rendered[kind](content) for kind, content in blocks(report))
    return (f"<!doctype html>\n<html lang=en><head><meta charset=utf-8><title>{escape(TITLE)}</title>"
            f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")


def _img(src: str | None, text: str) -> str:
    return f'<img src="{src}" alt="{escape(text)}">' if src else "(image not found: the data set is not where the run read it)"


def markdown(report: Report, images: dict[str, str], items: dict[str, str] | None = None) -> str:
    """The Markdown twin; `images` maps figure stems to relative paths of their PNG files, `items` item images'."""
    shown = items or {}

    def gallery(cells: list[tuple[str, str]]) -> str:
        return "\n".join(f"- {f'![{name}]({shown[name]}) ' if name in shown else ''}{text}" for name, text in cells)

    def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
        def cell(c: str) -> str:
            return c.replace("|", "\\|")
        return "\n".join(["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header),
                          *("| " + " | ".join(cell(c) for c in r) + " |" for r in rows)])

    rendered: dict[str, Callable[[Any], str]] = {
        "h1": lambda c: f"# {c}", "h2": lambda c: f"## {c}", "h3": lambda c: f"### {c}", "p": str, "meta": str,
        "warn": lambda c: f"> **{c}**", "rule": lambda c: f"**Rule.** {c}",
        "list": lambda c: "\n".join(f"- {line}" for line in c), "table": lambda c: table(*c),
        "figures": lambda _: "\n\n".join(f"![{_caption(stem, report)}]({path})\n\n*{_caption(stem, report)}*"
                                         for stem, path in images.items()),
        "details": lambda c: "",  # run.json sits beside the report; the HTML page folds it in
        "gallery": gallery,
    }
    return "\n\n".join(text for kind, content in blocks(report) if (text := rendered[kind](content))) + "\n"


def _byline(report: Report) -> str:
    runs = sum(len(g.runs) for g in report.groups)
    return (f"captcha-bench {report.provenance['versions'].get('captcha-bench', '?')}, {report.created}: "
            f"{runs} run(s) on {len(report.groups)} data set(s).")


def _warnings(report: Report) -> list[str]:
    found = []
    if not report.has_people:
        found.append("No human answers in these runs: nothing here compares machines with people on the same "
                     "items. The published human figures (other items, other people) are shown as references only.")
    found += [f"Run {path} did not finish (no summary.json): it is reported as far as it went; resume it with "
              f"captcha-bench run --out {path} --resume." for path in report.unfinished]
    return found


def _details(report: Report) -> list[str]:
    lines = []
    for c in report.comparisons:
        lines.append(f"{c.machine} on {c.group}, {other_rule(c)}")
        lines.append(f"{c.machine} on {c.group}, {all_answers(c)}")
        lines.append(f"{c.machine} on {c.group}: {power_line(c)}")
    return lines


def _crossing_title(report: Report) -> str:
    ref = report.people_reference
    if ref is None:
        return "Where each machine falls below the people"
    return (f"Where each machine falls below the people: TuringPass people's first tries, {pct(ref.accuracy)} "
            f"[{pct(ref.low)}, {pct(ref.high)}] of {ref.answers:,} answers (other items, other people)")


def _caption(stem: str, report: Report) -> str:
    if stem.startswith("glyphs-"):
        group = report.groups[int(stem.split("-")[1]) - 1]
        if not group.people:
            return f"{group.label}: per glyph, how often each machine read it right (no people on these items)."
        return f"{group.label}: {CAPTIONS['glyphs']}"
    if stem.startswith("sweep-"):
        return f"{stem[len('sweep-'):]}: {CAPTIONS['sweep']}"
    return CAPTIONS.get(stem, stem)


def _group_line(group: Group) -> str:
    rule = "case-sensitive" if group.case_sensitive else "case-insensitive"
    people = f"people: {', '.join(group.people)}" if group.people else "no human answers on these items"
    return (f"Data set sha256 {group.sha256}, scored {rule} as the data set says (the other rule beside it); "
            f"runs {', '.join(r.run_id for r in group.runs)}; {people}.")


def _solver_table(group: Group) -> tuple[list[str], list[list[str]]]:
    rule = "case-sensitive" if group.case_sensitive else "case-insensitive"
    other = "case-insensitive" if group.case_sensitive else "case-sensitive"
    header = ["solver", "n", "items", f"accuracy [95% CI], {rule}", f"accuracy, {other}", "CER",
              "median time [95% CI]", "IQR", "items/s", "cold start", "errors / skips", "$ / 1,000 solves"]
    rows = []
    for row, alt in zip(group.rows(group.case_sensitive), group.rows(not group.case_sensitive)):
        s, m = row.summary, row.spread
        rows.append([
            row.name, f"{s.n:,}", f"{s.items:,}", f"{pct(s.accuracy)} [{pct(s.accuracy_low)}, {pct(s.accuracy_high)}]",
            f"{pct(alt.summary.accuracy)} [{pct(alt.summary.accuracy_low)}, {pct(alt.summary.accuracy_high)}]",
            f"{s.cer:.3f}", f"{seconds(m.median)} [{seconds(m.low)}, {seconds(m.high)}]" if m else "-",
            f"{seconds(m.q1)} - {seconds(m.q3)}" if m else "-",
            f"{s.throughput:,.0f}" if s.throughput else "-",
            f"{s.cold_start:.2f} s" if s.cold_start is not None else "-",
            f"{s.errors} / {s.skipped}" + (f" (could not run: {s.failure})" if s.failure else ""),
            f"{s.usd_per_1000:.3g} ({s.cost_basis})" if s.usd_per_1000 is not None else "-",
        ])
    return header, rows


def _shared(group: Group) -> list[str]:
    lines = []
    for machine in group.machines if group.people else []:
        shared, of = shared_confusions(group, machine)
        if of:
            lines.append(f"{machine} shares {shared} of the people's {of} most frequent confusions among its own {of}.")
    return lines


def _ref_numbers(ref: Reference) -> str:
    low, high = ref.accuracy
    text = f"; accuracy {low:.0%}" + (f"-{high:.0%}" if high != low else "")
    return text + (f", {ref.seconds[0]:.0f}-{ref.seconds[1]:.0f} s" if ref.seconds else ", no times")


def _methods(report: Report) -> str:
    boot = report.provenance["bootstrap"]
    return METHODS.format(resamples=boot["resamples"], seed=boot["seed"])


def _provenance_rows(run: Run) -> list[list[str]]:
    r = run.provenance.get
    request = run.request
    git = r("git") or {}
    machine = r("machine") or {}
    solvers = "; ".join(f"{s['name']} {json.dumps(s['options'])} ({(r('solver_versions') or {}).get(s['name'], '?')})"
                        for s in request["solvers"])
    files = "; ".join(f"{k}: {key} {sha[:12]}" for k, v in (r("solver_files") or {}).items() for key, sha in v.items())
    libraries = ", ".join(f"{k} {v}" for k, v in (r("libraries") or {}).items() if v != "absent")
    return [["data set", f"{request.get('dataset', '')} (sha256 {request['dataset_sha256']})"],
            ["scored", "case-sensitive" if request.get("case_sensitive") else "case-insensitive"],
            ["solvers (options, version)", solvers], ["files solvers loaded (sha256)", files or "-"],
            ["libraries", libraries], ["git", f"{git.get('commit', '?')}{' (dirty tree)' if git.get('dirty') else ''}"],
            ["machine", f"{machine.get('node', '?')}: {machine.get('platform', '?')}, {machine.get('cpus', '?')} CPUs"],
            ["load while it ran", _load(r("load") or [])],
            ["started", str(r("started") or "?")], ["command", " ".join(map(str, r("command") or []))]]


def _load(sessions: list[dict[str, object]]) -> str:
    """Each session's record of what else the machine ran (bench.load), with its warning where it had one."""
    said = []
    for s in sessions:
        others = f"other processes {s['others_cores']} cores" if "others_cores" in s else "no CPU counters"
        line = f"{s.get('seconds')} s on {s.get('cores')} cores: this run {s.get('own_cores')} cores, {others}, load " \
               f"average {s.get('loadavg_start')} to {s.get('loadavg_end')}"
        said.append(line + (f" ({warning(s)})" if warning(s) else ""))
    return "; ".join(said) or "not recorded (a run from before 2026-12-06)"


STYLE = """
body{font:15px/1.45 system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#111}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.8em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}.meta{color:#555;font-size:13px}
.warn{background:#fff3cd;border:1px solid #e0c36a;padding:.6em}.rule{background:#eef4ff;padding:.6em}
figure{margin:1.5em 0}img{max-width:100%}figcaption{color:#444;font-size:13px}
pre{font-size:12px;overflow:auto}
"""
