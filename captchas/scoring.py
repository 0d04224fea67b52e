"""The one scoring rule, used by every reader (the runner, training, the study's replay, the report).

Scoring compares after removing white space, case-folded unless the data set is case-sensitive; the
character error rate is the Levenshtein distance over the expected answer's length.
"""

from __future__ import annotations

from collections.abc import Sequence


def normalise(text: str, case_sensitive: bool) -> str:
    """The comparison form: white space removed, case folded unless case-sensitive."""
    text = "".join(text.split())
    return text if case_sensitive else text.casefold()


def is_correct(expected: str, predicted: str, case_sensitive: bool = False) -> bool:
    """The one scoring rule."""
    return expected == predicted or normalise(expected, case_sensitive) == normalise(predicted, case_sensitive)


def cer(expected: str, predicted: str, case_sensitive: bool = False) -> float:
    """Character error rate: Levenshtein distance over the expected length, after normalise()."""
    a, b = normalise(expected, case_sensitive), normalise(predicted, case_sensitive)
    return 0.0 if a == b else edit_table(a, b)[-1][-1] / max(len(a), 1)


def edit_table(a: Sequence[str], b: Sequence[str]) -> list[list[int]]:
    """Levenshtein distances between every prefix of `a` and of `b`: row i, column j is a[:i] to b[:j]."""
    d = [list(range(len(b) + 1))]
    for i, ca in enumerate(a, 1):
        above, row = d[-1], [i]
        left = i
        for j, cb in enumerate(b, 1):
            # the smallest of deleting, inserting and keeping or substituting (written out: min() costs more)
            best = above[j] + 1
            if left + 1 < best:
                best = left + 1
            diagonal = above[j - 1] + (ca != cb)
            if diagonal < best:
                best = diagonal
            row.append(best)
            left = best
        d.append(row)
    return d
