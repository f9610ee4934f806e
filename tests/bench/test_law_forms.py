"""bench/law_forms.py judges each law form only on mixtures its fit never saw, and `select` picks per benchmark."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

DOMAINS = ("a", "b", "c")


def _validation(vid: int, seed: int, truth) -> SimpleNamespace:
    draws = [dict(zip(DOMAINS, w)) for w in np.random.default_rng(seed).dirichlet(np.ones(3), 12)]
    return SimpleNamespace(id=vid, summary={"seed": seed}, results=tuple(
        SimpleNamespace(weights=w, group="draw", proxy_scores={"x": 0.0, "y": 0.0},
                        real_scores={"x": truth["x"](w), "y": truth["y"](w)}) for w in draws))


def test_select_follows_each_benchmark_s_own_form_and_ranks_where_the_quadratic_cannot():
    from law_forms import VARIANTS, judge_forms, means

    # x rises steeply from a's edge and saturates (√ blending); y is a plain quadratic
    truth = {"x": lambda w: 10 * w["b"] + 300 * np.sqrt(w["a"] * w["b"]) + 280 * np.sqrt(w["a"] * w["c"]),
             "y": lambda w: 5 * w["a"] + 3 * w["b"] - 20 * w["a"] * w["c"]}
    validations = [_validation(i, 100 + i, truth) for i in (1, 2, 3)]
    rows = [judge_forms(v, [u for u in validations if u is not v], ["x", "y"], DOMAINS, {"x": 1.0, "y": 0.0})
            for v in validations]
    assert [r["fitted_on"] for r in rows] == [[2, 3], [1, 3], [1, 2]] and rows[0]["fit_mixtures"] == 24
    assert all(r["terms"] == {"x": "becker_h3", "y": "quadratic"} for r in rows)
    assert all(r["forms"]["select"]["spearman"] == pytest.approx(1.0) for r in rows)
    assert all(r["forms"]["becker_h3"]["regret"] == pytest.approx(0.0, abs=1e-9) for r in rows)
    assert all(r["quadratic_per_benchmark"]["y"] == pytest.approx(1.0) for r in rows)  # y is the quadratic's own form
    for row, validation in zip(rows, validations, strict=True):  # the best real mixture by the weighted mean (x alone)
        assert row["best_real"] == max((r.weights for r in validation.results), key=truth["x"])
    summary = means(rows)
    assert set(summary) == set(VARIANTS)
    assert summary["select"]["spearman"] == pytest.approx(1.0)
    assert summary["quadratic"]["spearman"] < summary["select"]["spearman"]  # the parabola misorders some draws
    for name in ("quadratic", "logit"):  # no benchmark is constant here: the pooled ρ is the mean of every pair
        assert summary[name]["per_benchmark"] == pytest.approx(np.mean([v for r in rows for v in r[f"{name}_per_benchmark"].values()]))
        assert (summary[name]["per_benchmark_pairs"], summary[name]["per_benchmark_left_out"]) == (6, 0)


def test_the_pooled_per_benchmark_rho_compares_both_laws_on_the_same_pairs():
    from law_forms import means

    def row(quadratic, logit):
        forms = {name: {"spearman": 0.5, "regret": 0.0} for name in ("quadratic", "becker_h1", "becker_h2", "becker_h3", "select", "logit")}
        return {"forms": forms, "quadratic_per_benchmark": quadratic, "logit_per_benchmark": logit}

    nan = float("nan")
    rows = [row({"x": 0.2, "y": nan, "z": 0.9}, {"x": nan, "y": nan, "z": 0.7})]  # y: a constant real side; x: logit flat
    summary = means(rows)
    assert summary["quadratic"]["per_benchmark"] == pytest.approx((0.2 + 0.9) / 2)
    assert summary["logit"]["per_benchmark"] == pytest.approx((0.0 + 0.7) / 2), "a law that ranks nothing counts 0, not left out"
    assert (summary["logit"]["per_benchmark_pairs"], summary["logit"]["per_benchmark_left_out"]) == (2, 1)


def test_a_pool_too_small_for_a_law_is_no_row():
    from law_forms import judge_forms

    truth = {"x": lambda w: w["a"], "y": lambda w: w["b"]}
    small = SimpleNamespace(id=1, summary={}, results=_validation(1, 5, truth).results[:4])
    assert judge_forms(_validation(2, 6, truth), [small], ["x", "y"], DOMAINS, None) is None
