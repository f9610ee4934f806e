"""Multiple choice: the option letter read from a free-form answer, compared with the reference letter.

The letter is, in this order: the whole answer when it is one letter, either case (``B``, ``(b)``,
``B.``); the letter after "answer"/"option" (``The answer is (C)``, ``Option A``); a letter opening
the answer followed by ``)``, ``.`` or ``:`` (``C. blue``); else the first standalone capital
letter among the allowed ones, past an opening article "A" (``A dog is …``). No letter found scores
0, as in lmms-eval's MMStar and MMBench parsers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from dmo.evaluation.scorers.base import Scorer


class MultipleChoice(Scorer):
    name = "multiple_choice"
    description = "the option letter extracted from the answer equals the reference letter"

    def __init__(self, letters: str = "ABCDEFGH"):
        self.letters = letters
        allowed = f"[{letters}]"
        self._patterns = (
            re.compile(rf"^\(?({allowed})\)?[.:]?$", re.IGNORECASE),
            re.compile(rf"\b(?i:answer|option)\b[^A-Za-z(]*(?i:is\s*)?:?\s*\(?({allowed})\b"),
            re.compile(rf"^\(?({allowed})[).:]"),
            re.compile(rf"(?<![A-Za-z])({allowed})(?![A-Za-z])"),
        )

    def letter(self, prediction: str) -> str | None:
        text = prediction.strip()
        for index, pattern in enumerate(self._patterns):
            # The fallback skips an opening article: "A dog is …" names no option.
            subject = re.sub(r"^A(?= [a-z])", "", text) if index == len(self._patterns) - 1 else text
            found = pattern.search(subject)
            if found:
                return found.group(1).upper()
        return None

    def sample(self, prediction: str, references: Sequence[str]) -> float:
        letter = self.letter(prediction)
        return float(letter is not None and any(letter == self.letter(r) for r in references))
