"""VQA accuracy (Antol et al., 2015; the official VQA evaluation script's form).

Each question has (usually ten) annotator answers. A prediction matching ``m`` of the other
annotators earns ``min(m / 3, 1)``; the score averages that over the ten leave-one-annotator-out
subsets of nine, so three matching annotators of ten give 0.9, four or more give 1. With one
reference there is no subset to leave one out of: the credit is a normalised exact match.

Both the prediction and the references go through the script's normalisation first: newlines
and tabs become spaces; punctuation is removed where it touches a space (or the text has a
digit comma like ``1,000``) and becomes a space elsewhere; a period not followed by a digit is
removed; then, word by word, lower case, number words "none" … "ten" as digits, the articles
a/an/the dropped, and contractions written without their apostrophes restored (``dont`` →
``don't``). The contraction table is derived from the script's list of contracted forms: each
form with some apostrophes missing maps to the full form, except spellings that are words of
their own (its, well, were, ill, id, …), which the script's table also leaves alone or lists
only capitalised (so never matches lowercase text).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

from dmo.evaluation.scorers.base import Scorer

PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",",
               "?", "!")
_PERIOD = re.compile(r"\.(?!\d)")
_DIGIT_COMMA = re.compile(r"\d,\d")
NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = frozenset({"a", "an", "the"})
CONTRACTED = (  # noqa: SIM905 - one string reads like the script's table
    "ain't aren't can't could've couldn't couldn't've didn't doesn't don't hadn't hadn't've hasn't haven't he'd "
    "he'd've he's how'd how'll how's isn't it'd it'd've it'll let's ma'am mightn't mightn't've might've mustn't "
    "must've needn't not've o'clock oughtn't shan't she'd've she's should've shouldn't shouldn't've somebody'd "
    "somebody'd've somebody'll somebody's someone'd someone'd've someone'll someone's something'd something'd've "
    "something'll that's there'd there'd've there're there's they'd they'd've they'll they're they've wasn't "
    "we'd've we've weren't what'll what're what's what've when's where'd where's where've who'd who'd've who'll "
    "who's who've why'll why're why's won't would've wouldn't wouldn't've y'all y'all'll y'all'd've you'd "
    "you'd've you'll you're you've"
).split()
_WORDS = frozenset({"its", "well", "were", "ill", "id", "im", "ive", "wed", "shed", "hell", "shell"})


def _contractions() -> dict[str, str]:
    table = {}
    for full in CONTRACTED:
        parts = full.split("'")
        for kept in itertools.product(("'", ""), repeat=len(parts) - 1):
            spelled = parts[0] + "".join(mark + part for mark, part in zip(kept, parts[1:]))
            if spelled != full and spelled not in _WORDS:
                table[spelled] = full
    return table


CONTRACTIONS = _contractions()


def normalize_answer(text: str) -> str:
    """The official VQA script's answer normalisation (see the module docstring)."""
    text = text.replace("\n", " ").replace("\t", " ").strip()
    out = text
    digit_comma = _DIGIT_COMMA.search(text) is not None
    for mark in PUNCTUATION:
        if f"{mark} " in text or f" {mark}" in text or digit_comma:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    out = _PERIOD.sub("", out)
    words = [NUMBER_WORDS.get(word, word) for word in out.lower().split()]
    return " ".join(CONTRACTIONS.get(word, word) for word in words if word not in ARTICLES)


class VqaAccuracy(Scorer):
    name = "vqa_accuracy"
    description = "min(#matching annotators / 3, 1), averaged over the leave-one-out annotator subsets"

    def sample(self, prediction: str, references: Sequence[str]) -> float:
        answer = normalize_answer(prediction)
        matches = [normalize_answer(reference) == answer for reference in references]
        if len(matches) == 1:
            return float(matches[0])
        total = sum(matches)
        return sum(min(1.0, (total - own) / 3.0) for own in matches) / len(matches)
