"""The report: machines and people on the same items, the verdict with its statistics, the figures.

Its rooms, each importing only those listed before it: clusters.py (a study's participants as the units),
compare.py (a machine against people, paired per item), model.py (what a report holds), items.py (where
people and machines differ, item by item), build.py (runs read back into a Report), tables.py (its rows
and verdict text), between.py (two runs, machine by machine), board.py (the leaderboard's rows),
figures.py (matplotlib), pages.py (report.html and report.md), write.py (the files).
"""

from bench.report.build import build_report
from bench.report.model import Report
from bench.report.write import check_report_out, write_report

__all__ = ["Report", "build_report", "check_report_out", "write_report"]
