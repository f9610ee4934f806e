"""Each scorer on hand-made cases worked out from its metric's definition."""

from __future__ import annotations

import pytest

from dmo.errors import ConfigError
from dmo.evaluation.scorers import SCORERS, get_scorer
from dmo.evaluation.scorers.anls import levenshtein
from dmo.evaluation.scorers.vqa import normalize_answer


def test_the_registry_holds_the_field_s_metrics_and_names_them_on_a_typo():
    assert set(SCORERS) == {"exact_match", "vqa_accuracy", "anls", "relaxed_accuracy", "multiple_choice",
                            "yes_no_accuracy", "yes_no_f1"}
    assert all(name == scorer.name for name, scorer in SCORERS.items())
    with pytest.raises(ConfigError, match="unknown metric 'vqa'") as caught:
        get_scorer("vqa", where="benchmarks[0].metric")
    assert "vqa_accuracy" in caught.value.hint and caught.value.where == "benchmarks[0].metric"


def test_exact_match_ignores_case_and_whitespace_only():
    exact = get_scorer("exact_match")
    assert exact.sample("  Red  Circle ", ["red circle"]) == 1.0
    assert exact.sample("red circle.", ["red circle"]) == 0.0
    assert exact.sample("4", ["3", "4"]) == 1.0
    assert exact.aggregate(["a", "b", "c", "d"], [["a"], ["x"], ["c"], ["y"]]) == pytest.approx(50.0)


@pytest.mark.parametrize(("text", "normalized"), [
    ("Two dogs.", "2 dogs"),            # number word, final period
    ("the  Dog!", "dog"),               # article, case, punctuation
    ("1,000", "1000"),                  # a digit comma removes every comma
    ("3.5", "3.5"),                     # a period before a digit stays
    ("left-hand", "left hand"),         # punctuation touching no space becomes a space
    ("a (red) car", "red car"),         # punctuation touching a space goes
    ("Dont know", "don't know"),        # contractions get their apostrophe back
    ("its well", "its well"),           # words of their own are not contractions
    ("none\tof them", "0 of them"),
])
def test_vqa_normalisation_follows_the_official_script(text, normalized):
    assert normalize_answer(text) == normalized


def test_vqa_accuracy_is_min_matches_over_three_averaged_over_leave_one_out_subsets():
    vqa = get_scorer("vqa_accuracy")
    others = ["cat"] * 10
    # m of 10 annotators said "2": the ones who did see m-1 others agree, the rest see m.
    for m, expected in ((0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)):
        answers = ["2"] * m + others[m:]
        credit = (m * min(1, (m - 1) / 3) + (10 - m) * min(1, m / 3)) / 10
        assert credit == pytest.approx(expected)
        assert vqa.sample("two", answers) == pytest.approx(expected)
    assert vqa.sample("The Cat.", ["cat"] * 10) == 1.0  # normalised on both sides
    assert vqa.sample("cat", ["cat"]) == 1.0 and vqa.sample("dog", ["cat"]) == 0.0  # one reference: exact match


def test_levenshtein_counts_single_character_edits():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3 and levenshtein("abc", "abc") == 0


def test_anls_gives_partial_credit_below_the_threshold_and_none_above():
    anls = get_scorer("anls")
    assert anls.sample("Invoice", ["invoice"]) == 1.0
    assert anls.sample("invoise", ["invoice"]) == pytest.approx(1 - 1 / 7)  # one edit in seven characters
    assert anls.sample("kitten", ["sitting"]) == pytest.approx(1 - 3 / 7)  # NL 0.43 < 0.5: credit
    assert anls.sample("abcd", ["abxy"]) == 0.0  # NL exactly 0.5: none
    assert anls.sample("1998", ["2001", "1998"]) == 1.0  # the best reference counts
    assert anls.sample("", [""]) == 1.0


def test_relaxed_accuracy_allows_five_percent_on_numbers_and_nothing_on_text():
    relaxed = get_scorer("relaxed_accuracy")
    assert relaxed.sample("104", ["100"]) == 1.0 and relaxed.sample("105", ["100"]) == 1.0
    assert relaxed.sample("105.1", ["100"]) == 0.0 and relaxed.sample("94.9", ["100"]) == 0.0
    assert relaxed.sample("25%", ["0.26"]) == 1.0  # 0.25 vs 0.26: 3.8 % off
    assert relaxed.sample("0.01", ["0"]) == 0.0 and relaxed.sample("0", ["0"]) == 1.0  # no relative tolerance at 0
    assert relaxed.sample("Yes", ["yes"]) == 1.0 and relaxed.sample("yess", ["yes"]) == 0.0


@pytest.mark.parametrize(("answer", "letter"), [
    ("B", "B"), ("(B)", "B"), ("B.", "B"), ("(b)", "B"), ("c", "C"), ("The answer is (C).", "C"), ("Answer: D", "D"),
    ("Option A", "A"), ("C. blue", "C"), ("I think A is right", "A"), ("A dog is on the left", None),
    ("the answer is a dog", None), ("none of them", None),
])
def test_multiple_choice_reads_the_option_letter(answer, letter):
    choice = get_scorer("multiple_choice")
    assert choice.letter(answer) == letter
    assert choice.sample(answer, ["(C)"]) == float(letter == "C")


def test_yes_no_reads_answers_as_pope_does_and_scores_accuracy_and_f1_over_the_set():
    accuracy, f1 = get_scorer("yes_no_accuracy"), get_scorer("yes_no_f1")
    predictions = ["Yes.", "yes, there is", "No", "There is not a dog", "yes", "no"]
    truth = [["yes"], ["yes"], ["yes"], ["no"], ["no"], ["no"]]
    # read: yes yes no no yes no; right: 1 1 0 1 0 1 → accuracy 4/6
    assert accuracy.aggregate(predictions, truth) == pytest.approx(100 * 4 / 6)
    # yes is positive: TP 2, FP 1, FN 1 → precision 2/3, recall 2/3, F1 2/3
    assert f1.aggregate(predictions, truth) == pytest.approx(100 * 2 / 3)
    assert f1.aggregate(["no", "no"], [["yes"], ["no"]]) == 0.0  # no true positive
    # POPE reads the first sentence only
    assert accuracy.sample("Yes, there is a cat. There is no dog.", ["yes"]) == 1.0


def test_a_prediction_without_its_references_is_refused():
    with pytest.raises(ValueError, match="2 predictions for 1 reference sets"):
        get_scorer("exact_match").aggregate(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="non-empty list"):
        get_scorer("anls").aggregate(["a"], ["a"])


def test_the_config_s_metric_names_are_the_registry_s_plus_likelihood_and_lmms_eval():
    from dmo.config import names

    assert set(names.METRICS) == set(SCORERS) | {"likelihood", "lmms_eval"}
