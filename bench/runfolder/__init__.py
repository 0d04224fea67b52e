"""A run folder and its one owner. records.py: the rows (Attempt, Timing) and the scoring of an answer;
files.py: every file's name and format, written and read there alone; resume.py: whether a folder may take
a run or continue one; read.py: finished runs read back for a report. Nothing is imported here, so
that importing one of them does not import the others."""
