"""The report: machines and people on the same items, the verdict with its statistics, the figures.

Its rooms, each importing only those listed before it: compare.py (a machine against people, paired per
item), model.py (what a report holds), build.py (runs read back into a Report), tables.py (its rows and
verdict text), figures.py (matplotlib), pages.py (report.html and report.md), write.py (the files).
"""

from bench.report.build import build_report
from bench.report.model import Report
from bench.report.write import check_report_out, write_report

__all__ = ["Report", "build_report", "check_report_out", "write_report"]
