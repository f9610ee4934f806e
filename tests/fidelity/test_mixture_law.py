"""The no-proxy baseline: a quadratic (Scheffé) mixture law of real scores in the weights."""

from __future__ import annotations

import numpy as np
import pytest

from dmo.fidelity.mixture_law import MixtureLaw, scheffe_features

DOMAINS = ("a", "b", "c")


def _quadratic(w: dict[str, float]) -> float:
    """A law with every kind of term: linear, and a pair that helps (a·b) and one that hurts (b·c)."""
    return 10 * w["a"] + 40 * w["b"] + 20 * w["c"] + 80 * w["a"] * w["b"] - 60 * w["b"] * w["c"]


def _draws(n: int, seed: int) -> list[dict[str, float]]:
    return [dict(zip(DOMAINS, w)) for w in np.random.default_rng(seed).dirichlet(np.ones(len(DOMAINS)), n)]


def test_features_are_the_weights_then_every_pair_product_in_domain_order():
    features = scheffe_features([{"a": 0.2, "c": 0.8}], DOMAINS)  # b not named: weighs 0
    np.testing.assert_allclose(features, [[0.2, 0.0, 0.8, 0.0, 0.2 * 0.8, 0.0]])


def test_a_quadratic_truth_is_recovered_and_predicted_on_mixtures_it_never_saw():
    fit, held = _draws(20, 0), _draws(8, 1)
    law = MixtureLaw.fit(fit, {"x": [_quadratic(w) for w in fit]}, DOMAINS)
    np.testing.assert_allclose(law.coefficients["x"], [10, 40, 20, 80, 0, -60], atol=1e-8)
    np.testing.assert_allclose(law.predict(held)["x"], [_quadratic(w) for w in held], atol=1e-8)


def test_a_linear_law_cannot_follow_an_interaction_so_the_fit_is_not_vacuous():
    fit = _draws(20, 2)
    law = MixtureLaw.fit(fit, {"x": [_quadratic(w) for w in fit]}, ("a", "b"))  # c unseen: only a, b columns
    residual = law.predict(fit)["x"] - np.asarray([_quadratic(w) for w in fit])
    assert np.abs(residual).max() > 1.0


def test_too_few_mixtures_or_a_short_column_is_refused():
    with pytest.raises(ValueError, match="at least 6 mixtures"):
        MixtureLaw.fit(_draws(5, 3), {"x": [1.0] * 5}, DOMAINS)
    with pytest.raises(ValueError, match="'x' has 5 scores for 6 mixtures"):
        MixtureLaw.fit(_draws(6, 3), {"x": [1.0] * 5}, DOMAINS)
