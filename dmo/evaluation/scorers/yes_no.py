"""Yes/no questions, POPE's metrics (Li et al., 2023).

An answer means "no" when its first sentence contains the word "no" or "not", else "yes" (POPE's
own reading: it keeps the text before the first period and counts a hedged or empty answer as "yes"). Accuracy is the share read right; F1 takes
"yes" as the positive class, over the whole benchmark, so it is a set-level score.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from dmo.evaluation.scorers.base import Scorer, _check_lengths


def reads_yes(answer: str) -> bool:
    words = set(re.findall(r"[a-z]+", answer.split(".")[0].lower()))
    return not ({"no", "not"} & words)


class YesNo(Scorer):
    description = "POPE: answers read as yes/no ('no' or 'not' means no); accuracy, or F1 with yes as positive"

    def __init__(self, kind: Literal["accuracy", "f1"]):
        self.kind = kind
        self.name = f"yes_no_{kind}"

    def sample(self, prediction: str, references: Sequence[str]) -> float:
        return float(reads_yes(prediction) == reads_yes(references[0]))

    def aggregate(self, predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
        if self.kind == "accuracy":
            return super().aggregate(predictions, references)
        _check_lengths(predictions, references)
        said = [reads_yes(p) for p in predictions]
        truth = [reads_yes(r[0]) for r in references]
        true_pos = sum(s and t for s, t in zip(said, truth))
        said_yes, truly_yes = sum(said), sum(truth)
        if true_pos == 0:
            return 0.0
        precision, recall = true_pos / said_yes, true_pos / truly_yes
        return 100.0 * 2 * precision * recall / (precision + recall)
