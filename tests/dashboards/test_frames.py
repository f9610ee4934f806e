"""The data shaping behind the pages, on records built by hand."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from scipy.stats import spearmanr

from dashboards import charts
from dashboards import frames as fr
from dmo.config.snapshot import SearchSnapshot
from search_support import project_config
from storage import MixtureResultRecord, ModelRecord, SearchRecord, TrialRecord, ValidationRecord

NOW = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
DOMAINS = ("a", "b", "c")


def search(
    kind: str = "mean", domains: tuple[str, ...] = DOMAINS, **objective: object
) -> SearchRecord:
    config = project_config(domains, project__name="s", search__objective={"kind": kind, **objective})
    return SearchRecord(
        id=7,
        name="s",
        study_name="dmo-s",
        snapshot=SearchSnapshot(config=config),
        sampler="tpe",
        domains=domains,
        expert_ids=(1, 2, 3),
        status="finished",
        error=None,
        created_at=NOW,
        updated_at=NOW,
        finished_at=NOW,
    )


def trial(
    number: int,
    objective: tuple[float | None, ...] = (),
    state: str = "complete",
    weights: tuple[float, ...] = (0.2, 0.3, 0.5),
    scores: dict | None = None,
    efficiency: dict | None = None,
) -> TrialRecord:
    return TrialRecord(
        id=100 + number,
        search_id=7,
        number=number,
        state=state,
        weights=dict(zip(DOMAINS, weights)),
        merge_method="task_arithmetic",
        params={},
        scores=scores or {},
        objective=objective,
        routing=None,
        efficiency=efficiency,
        duration_s=1.0,
        created_at=NOW,
        updated_at=NOW,
    )


def model(
    id: int,
    kind: str = "expert",
    domain: str | None = "a",
    status: str = "finished",
    metrics: dict | None = None,
    efficiency: dict | None = None,
    flops: float | None = 0.6,
    kv: float | None = 0.7,
    error: str | None = None,
) -> ModelRecord:
    return ModelRecord(
        id=id,
        kind=kind,
        config_hash=f"h{id}",
        domain=domain,
        base_id=None,
        status=status,
        training={},
        finetune="full",
        efficiency=efficiency if efficiency is not None else {"retention": [1.0, 0.5]},
        mod_schedule="prd_shifted_cosine",
        flops_ratio=flops,
        kv_ratio=kv,
        checkpoint_uri=None,
        checkpoint_sha256=None,
        metrics=metrics or {},
        error=error,
        attempts=1,
        claim_token=None,
        heartbeat_at=None,
        created_at=NOW,
        started_at=NOW,
        finished_at=None,
        duration_s=None,
    )


# --------------------------------------------------------------------------- trials


@pytest.mark.parametrize(
    "direction, values, expected",
    [
        ("maximize", [1.0, 3.0, 2.0, 5.0, 4.0], [1.0, 3.0, 3.0, 5.0, 5.0]),
        ("minimize", [3.0, 1.0, 2.0, 0.5], [3.0, 1.0, 1.0, 0.5]),
        ("maximize", [], []),
    ],
)
def test_best_so_far_is_the_running_best_in_the_direction(direction, values, expected):
    assert fr.best_so_far(values, direction) == expected


def test_progress_keeps_complete_trials_by_number_and_tracks_the_max():
    trials = [
        trial(2, (5.0,)),
        trial(0, (3.0,)),
        trial(1, state="fail"),
        trial(3, (4.0,)),
        trial(4, state="running"),
        trial(5, (9.0,)),
    ]
    frame = fr.progress_frame(trials)
    assert frame["trial"].tolist() == [0, 2, 3, 5]
    assert frame["objective"].tolist() == [3.0, 5.0, 4.0, 9.0]
    assert frame["best so far"].tolist() == [3.0, 5.0, 5.0, 9.0]


def test_trials_frame_has_weights_objective_scores_and_the_error_of_failed_trials():
    trials = [
        trial(0, (40.0,), scores={"a": 50.0, "c": 30.0, "extra": 1.0}),
        trial(1, state="fail", efficiency={"error": "MergeError: boom"}),
        trial(2, state="fail"),
    ]
    frame = fr.trials_frame(trials, DOMAINS)
    assert list(frame.columns) == [
        "trial",
        "state",
        "w a",
        "w b",
        "w c",
        "objective",
        "a",
        "c",
        "extra",
        "duration s",
        "error",
    ]
    assert frame.loc[0, "w c"] == 0.5 and frame.loc[0, "a"] == 50.0
    assert math.isnan(frame.loc[1, "objective"]) and math.isnan(frame.loc[1, "a"])
    assert frame["error"].isna().tolist() == [True, False, False]
    assert frame["error"].tolist()[1:] == ["MergeError: boom", "no error recorded"]
    assert fr.failed_trials_frame(trials)["trial"].tolist() == [1, 2]


def test_multi_objective_searches_get_one_column_per_named_objective():
    multi = search("multi")
    names = fr.objective_names(multi)
    assert names == ("mean", "worst") and fr.is_multi_objective(multi)
    assert fr.objective_names(search("mean")) == ("mean",) and not fr.is_multi_objective(search())
    frame = fr.trials_frame([trial(0, (20.0, 5.0))], DOMAINS, names)
    assert frame.loc[0, "objective mean"] == 20.0 and frame.loc[0, "objective worst"] == 5.0


def test_top_mixtures_keep_the_given_order_and_number_the_ranks():
    ranked = [trial(4, (9.0,), scores={"a": 1.0}), trial(1, (7.0,), scores={"a": 2.0})]
    frame = fr.top_mixtures_frame(ranked, DOMAINS)
    assert frame["rank"].tolist() == [1, 2] and frame["trial"].tolist() == [4, 1]
    assert "state" not in frame.columns and frame["a"].tolist() == [1.0, 2.0]


def test_pareto_frame_marks_exactly_the_non_dominated_trials():
    points = {0: (10.0, 1.0), 1: (8.0, 4.0), 2: (7.0, 3.0), 3: (5.0, 5.0), 4: (9.0, 0.5)}
    trials = [trial(n, p) for n, p in points.items()] + [trial(9, state="fail")]
    frame = fr.pareto_frame(trials, DOMAINS, ("mean", "worst"))
    on_front = set(frame.loc[frame["on front"], "trial"])
    dominated = {
        n
        for n, p in points.items()
        if any(q[0] >= p[0] and q[1] >= p[1] and q != p for q in points.values())
    }
    assert on_front == set(points) - dominated == {0, 1, 3}
    assert 9 not in set(frame["trial"])


def test_searches_frame_counts_trials_by_state_and_shows_the_best():
    best = trial(3, (42.5,))
    rows = fr.searches_frame(
        [
            fr.SearchOverview(search(), {"complete": 5, "fail": 2}, best),
            fr.SearchOverview(search("multi"), {}, None),
        ]
    )
    assert rows.loc[0, ["complete", "fail", "running", "trials"]].tolist() == [5, 2, 0, 7]
    assert rows.loc[0, "best"] == 42.5 and rows.loc[0, "best trial"] == 3
    assert rows.loc[0, "objective"] == "mean (exact_match)"
    assert math.isnan(rows.loc[1, "best"]) and rows.loc[1, "trials"] == 0


# --------------------------------------------------------------------------- validation


def validation(results: list[tuple[dict, dict]]) -> ValidationRecord:
    records = tuple(
        MixtureResultRecord(
            id=i,
            validation_id=1,
            weights=dict(zip(DOMAINS, (0.5, 0.25, 0.25))),
            trial_id=None,
            model_id=None,
            proxy_scores=p,
            real_scores=r,
            created_at=NOW,
        )
        for i, (p, r) in enumerate(results)
    )
    return ValidationRecord(
        id=1,
        search_id=7,
        config={},
        status="finished",
        summary={},
        error=None,
        results=records,
        created_at=NOW,
        finished_at=NOW,
    )


def test_validation_means_and_spearman_match_scipy_and_drop_unscored_mixtures():
    pairs = [
        ({"a": 10.0, "b": 20.0}, {"a": 12.0, "b": 18.0}),
        ({"a": 30.0, "b": 10.0}, {"a": 25.0, "b": 30.0}),
        ({"a": 5.0, "b": 5.0}, {"a": 4.0, "b": 9.0}),
        ({"a": 50.0, "b": 40.0}, {"a": 40.0, "b": 41.0}),
        ({"a": 1.0, "b": None}, {"a": 2.0, "b": 3.0}),
    ]
    frame = fr.validation_frame(validation(pairs), DOMAINS)
    assert frame.loc[0, "proxy mean score"] == 15.0 and frame.loc[0, "real mean score"] == 15.0
    assert fr.validation_benchmarks(frame) == ["mean score", "a", "b"]
    result = fr.fidelity(frame)
    assert result.dropped == 1 and len(result.points) == 4
    expected = spearmanr([15.0, 20.0, 5.0, 45.0], [15.0, 27.5, 6.5, 40.5]).statistic
    assert result.rho == pytest.approx(expected)
    per_a = fr.fidelity(frame, "a")
    assert per_a.dropped == 0 and per_a.rho == pytest.approx(1.0)


def test_fidelity_of_a_single_mixture_is_undefined():
    frame = fr.validation_frame(validation([({"a": 1.0}, {"a": 2.0})]), DOMAINS)
    assert math.isnan(fr.fidelity(frame).rho)


# --------------------------------------------------------------------------- models


def test_models_frame_reads_efficiency_and_judges_experts_on_their_own_domain():
    dev = {
        "benchmarks": {"a": {"exact_match": 80.0}, "b": {"exact_match": 10.0}},
        "average": {"exact_match": 45.0},
    }
    models = [
        model(1, kind="base", domain=None, metrics={"dev": dev, "final_loss": 0.7}),
        model(
            2,
            domain="a",
            metrics={"dev": dev},
            efficiency={"retention": [1.0, 0.5, 0.25, 0.25], "tanh_alpha": 0.2},
        ),
        model(
            3,
            kind="mixture",
            domain=None,
            status="failed",
            error="boom",
            efficiency={},
            flops=None,
            kv=None,
        ),
    ]
    frame = fr.models_frame(models)
    assert frame["model"].tolist() == ["base #1", "expert a #2", "mixture #3"]
    assert frame["dev score"].tolist()[:2] == [45.0, 80.0]
    assert frame.loc[1, "mean retention"] == 0.5 and frame.loc[1, "layers"] == 4
    assert frame.loc[1, "tanh α"] == 0.2 and frame.loc[0, "final loss"] == 0.7
    assert frame.loc[2, "status"] == "failed" and frame.loc[2, "error"] == "boom"
    assert math.isnan(frame.loc[2, "FLOPs ratio"]) and math.isnan(frame.loc[2, "mean retention"])


def test_long_frames_of_curves_retention_and_ratios():
    curve = [[10, 3.0], [20, 2.0], [30, None], [40]]  # the last two are malformed
    models = [model(1, metrics={"loss_curve": curve}), model(2, flops=None, kv=0.5)]
    curves = fr.loss_curves_frame(models)
    assert curves.values.tolist() == [["expert a #1", 10, 3.0], ["expert a #1", 20, 2.0]]
    retention = fr.retention_frame(models)
    assert len(retention) == 4 and retention["layer"].tolist() == [0, 1, 0, 1]
    ratios = fr.ratios_frame(models)
    assert ratios.values.tolist() == [
        ["expert a #1", "FLOPs", 0.6],
        ["expert a #1", "KV cache", 0.7],
        ["expert a #2", "KV cache", 0.5],
    ]


# --------------------------------------------------------------------------- charts


def test_three_domains_give_a_ternary_plot_and_more_give_parallel_coordinates():
    trials = [trial(n, (float(n),)) for n in range(3)]
    ternary = charts.mixtures_chart(fr.trials_frame(trials, DOMAINS), DOMAINS)
    assert ternary.data[0].type == "scatterternary"
    assert list(ternary.data[0].a) == [0.2] * 3
    four = ("a", "b", "c", "d")
    parallel = charts.mixtures_chart(fr.trials_frame(trials, four), four)
    assert parallel.data[0].type == "parcoords"
    assert [d.label for d in parallel.data[0].dimensions] == [*four, "objective"]


def test_fidelity_and_pareto_charts_show_what_they_compare():
    frame = fr.validation_frame(
        validation([({"a": 1.0}, {"a": 1.0}), ({"a": 2.0}, {"a": 3.0})]), DOMAINS
    )
    figure = charts.fidelity_chart(fr.fidelity(frame), "mean score")
    assert "ρ = 1.00" in figure.layout.title.text
    pareto = fr.pareto_frame(
        [trial(0, (2.0, 1.0)), trial(1, (1.0, 2.0)), trial(2, (0.5, 0.5))],
        DOMAINS,
        ("mean", "worst"),
    )
    figure = charts.pareto_chart(pareto, ("mean", "worst"))
    front = next(d for d in figure.data if d.name == "Pareto front")
    assert sorted(front.x) == [1.0, 2.0]
