"""The scorer registry: an explicit list of instances, looked up by the name a benchmark's ``metric:`` gives.

Each scorer turns decoded answers and their reference answers into points (0–100); its module
documents the normalisation. Answer likelihood is not here: it reads the model's logits, not
decoded text (``dmo.evaluation.scoring``).
"""

from __future__ import annotations

from dmo.errors import ConfigError
from dmo.evaluation.scorers.anls import AverageNormalizedLevenshteinSimilarity
from dmo.evaluation.scorers.base import Scorer
from dmo.evaluation.scorers.choice import MultipleChoice
from dmo.evaluation.scorers.exact import ExactMatch
from dmo.evaluation.scorers.relaxed import RelaxedAccuracy
from dmo.evaluation.scorers.vqa import VqaAccuracy
from dmo.evaluation.scorers.yes_no import YesNo

SCORERS: dict[str, Scorer] = {
    scorer.name: scorer
    for scorer in (
        ExactMatch(),
        VqaAccuracy(),
        AverageNormalizedLevenshteinSimilarity(threshold=0.5),
        RelaxedAccuracy(tolerance=0.05),
        MultipleChoice(),
        YesNo("accuracy"),
        YesNo("f1"),
    )
}


def get_scorer(name: str, *, where: str = "metric") -> Scorer:
    """The registered scorer ``name``; an unknown name lists the known ones."""
    scorer = SCORERS.get(name)
    if scorer is None:
        raise ConfigError(f"unknown metric {name!r}", where=where, hint=f"known metrics: {', '.join(SCORERS)}")
    return scorer


__all__ = ["SCORERS", "Scorer", "get_scorer"]
