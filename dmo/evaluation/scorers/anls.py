"""ANLS, DocVQA's and InfoVQA's metric (Biten et al., 2019).

Per question, the best over references of ``1 − NL`` where ``NL`` is the Levenshtein distance
divided by the longer string's length, counted 0 when ``NL ≥ τ`` (τ = 0.5): a near miss earns
partial credit, a wrong answer none. Strings are compared after :func:`collapse`.
"""

from __future__ import annotations

from collections.abc import Sequence

from dmo.evaluation.scorers.base import Scorer, collapse


def levenshtein(a: str, b: str) -> int:
    """Edits (insert, delete, substitute one character) turning ``a`` into ``b``."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


class AverageNormalizedLevenshteinSimilarity(Scorer):
    name = "anls"
    description = "1 − normalised edit distance to the closest reference, 0 when that distance is ≥ 0.5"

    def __init__(self, threshold: float = 0.5):
        self.threshold = threshold

    def sample(self, prediction: str, references: Sequence[str]) -> float:
        answer = collapse(prediction)
        best = 0.0
        for reference in map(collapse, references):
            longest = max(len(answer), len(reference))
            distance = levenshtein(answer, reference) / longest if longest else 0.0
            best = max(best, 0.0 if distance >= self.threshold else 1.0 - distance)
        return best
