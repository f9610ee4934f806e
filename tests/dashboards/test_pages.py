"""Every page under Streamlit's AppTest, on a store seeded through the Store API."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from search_support import project_config, search_row

SEARCHES, SEARCH, EXPERTS = "searches.py", "search.py", "experts.py"


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def metrics(app) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


def plotly_specs(app) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]


def values(array) -> list:
    """A plotly JSON array: plain list, or a typed array ({"dtype", "bdata"}) since plotly 6."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def trace_types(app) -> list[str]:
    return [spec["data"][0]["type"] for spec in plotly_specs(app)]


# --------------------------------------------------------------------------- searches


def test_searches_page_lists_every_search_with_counts_and_best(run_page, seeded):
    app = run_page(SEARCHES, seeded.url)
    assert texts(app.title) == ["Searches"]
    table = app.dataframe[0].value.set_index("id")
    assert table.index.tolist() == [seeded.three, seeded.live, seeded.pareto]
    assert table.loc[seeded.three, "best"] == pytest.approx(seeded.three_best)
    assert table.loc[seeded.three, "best trial"] == seeded.three_best_trial
    assert table.loc[seeded.three, ["complete", "fail", "trials"]].tolist() == [
        seeded.three_complete,
        len(seeded.three_failed),
        seeded.three_complete + 2,
    ]
    assert table.loc[seeded.live, ["status", "running"]].tolist() == ["running", 1]
    assert table.loc[seeded.pareto, "objective"] == "multi (exact_match)"
    assert any(f"Search {seeded.live} is still running" in m for m in texts(app.info))
    assert any(f"Search {seeded.three} has 2 failed trials" in m for m in texts(app.warning))


# --------------------------------------------------------------------------- one search


def test_search_page_shows_progress_mixtures_top_table_and_failed_trials(run_page, seeded):
    app = run_page(SEARCH, seeded.url, search=str(seeded.three))
    assert app.selectbox[0].value == seeded.three
    shown = metrics(app)
    assert shown["best objective"] == f"{seeded.three_best:.2f}"
    assert shown["best trial"] == str(seeded.three_best_trial)
    assert (
        shown["complete / all trials"] == f"{seeded.three_complete} / {seeded.three_complete + 2}"
    )
    failed = " ".join(texts(app.warning))
    assert "2 trial(s) failed (trial 4, 9)" in failed and "MergeError: experts differ" in failed

    types = trace_types(app)
    assert types[:2] == ["scatter", "scatterternary"]  # best so far, then the 3-domain simplex
    progress = plotly_specs(app)[0]["data"][1]  # the best-so-far line
    assert progress["name"] == "best so far" and max(values(progress["y"])) == pytest.approx(
        seeded.three_best
    )
    assert sorted(values(progress["y"])) == values(progress["y"])  # never gets worse

    top = app.dataframe[1].value  # [0] is the failed-trials table in its expander
    assert len(top) == 10 and top["rank"].tolist() == list(range(1, 11))
    assert top.loc[0, "objective"] == pytest.approx(seeded.three_best)
    assert top["objective"].is_monotonic_decreasing
    assert {"general", "ocr", "counting", "w general"} <= set(top.columns)


def test_search_page_compares_proxies_with_real_models(run_page, seeded):
    app = run_page(SEARCH, seeded.url, search=str(seeded.three))
    proxy, real = zip(*seeded.validation_means)
    rho = spearmanr(proxy, real).statistic
    assert metrics(app)["Spearman ρ"] == f"{rho:.2f}"
    assert metrics(app)["mixtures"] == str(len(proxy))
    scatter = plotly_specs(app)[2]
    assert f"ρ = {rho:.2f}" in scatter["layout"]["title"]["text"]
    assert sorted(values(scatter["data"][0]["x"])) == pytest.approx(sorted(proxy))

    app.selectbox(key="fidelity_benchmark").set_value("ocr").run()
    assert "Proxy vs real, ocr" in plotly_specs(app)[2]["layout"]["title"]["text"]


def test_running_search_says_so_and_is_not_validated(run_page, seeded):
    app = run_page(SEARCH, seeded.url, search=str(seeded.live))
    infos = " ".join(texts(app.info))
    assert f"Search {seeded.live} is still running: 1 trial(s) in flight" in infos
    assert "not validated yet" in infos
    assert metrics(app)["status"] == "running"
    assert metrics(app)["complete / all trials"] == f"{seeded.live_complete} / 4"
    assert not app.warning


def test_multi_objective_search_shows_its_pareto_front(run_page, seeded):
    app = run_page(SEARCH, seeded.url, search=str(seeded.pareto))
    assert "Pareto front" in texts(app.subheader)
    types = trace_types(app)
    assert types[1] == "parcoords"  # four domains: parallel coordinates
    front_table = app.dataframe[1].value
    assert set(front_table["trial"]) == set(seeded.pareto_front)
    assert {"objective mean", "objective worst"} <= set(front_table.columns)
    pareto = next(s for s in plotly_specs(app) if "Pareto" in s["layout"]["title"]["text"])
    front_trace = next(d for d in pareto["data"] if d["name"] == "Pareto front")
    assert len(values(front_trace["x"])) == len(seeded.pareto_front)


def test_search_picker_defaults_to_the_newest_and_warns_on_an_unknown_id(run_page, seeded):
    app = run_page(SEARCH, seeded.url)
    assert app.selectbox[0].value == seeded.pareto
    assert app.query_params["search"] == str(seeded.pareto)
    app = run_page(SEARCH, seeded.url, search="99")
    assert app.selectbox[0].value == seeded.pareto
    assert any("No search with id '99'" in w for w in texts(app.warning))
    for odd in ("²", "abc", "-1", " 7 "):  # what int() or str.isdigit() would stumble on
        app = run_page(SEARCH, seeded.url, search=odd)
        assert not app.exception and app.selectbox[0].value == seeded.pareto, odd
    app.selectbox[0].set_value(seeded.live).run()
    assert texts(app.subheader)[0] == f"{seeded.live} · live"
    assert app.query_params["search"] == str(seeded.live)


# --------------------------------------------------------------------------- experts


def test_experts_page_shows_curves_efficiency_and_the_failed_model(run_page, seeded):
    app = run_page(EXPERTS, seeded.url)
    assert texts(app.title) == ["Experts"]
    table = app.dataframe[0].value.set_index("id")
    assert len(table) == 6 and table.loc[seeded.failed_model_id, "status"] == "failed"
    assert table.loc[seeded.expert_ids[0], "FLOPs ratio"] == pytest.approx(0.752)
    assert table.loc[seeded.expert_ids[0], "layers"] == 8
    assert any(
        f"mixture #{seeded.failed_model_id} failed" in w and "loss is NaN" in w
        for w in texts(app.warning)
    )

    specs = {spec["layout"]["title"]["text"]: spec for spec in plotly_specs(app)}
    loss = specs["Training loss"]["data"]
    assert len(loss) == 5  # base + 4 experts; the failed model has no curve
    assert all(len(values(trace["x"])) == seeded.loss_curve_points for trace in loss)
    retention = specs["Vision tokens kept per layer (MoD retention)"]["data"][0]
    assert values(retention["y"]) == pytest.approx(
        [1.0, 1.0, 0.812, 0.611, 0.389, 0.188, 0.15, 0.15]
    )
    ratios = specs["FLOPs and KV cache vs the dense model"]["data"]
    assert {trace["name"] for trace in ratios} == {"FLOPs", "KV cache"}

    app.multiselect(key="kinds").set_value(["base"]).run()
    assert app.dataframe[0].value["kind"].tolist() == ["base"]
    assert not app.warning


# --------------------------------------------------------------------------- no data


@pytest.mark.parametrize(
    "page, says",
    [
        (SEARCHES, "No searches in this store yet"),
        (SEARCH, "No searches in this store yet"),
        (EXPERTS, "No models in this store yet"),
    ],
)
def test_an_empty_store_is_explained_on_every_page(run_page, empty_url, page, says):
    app = run_page(page, empty_url)
    assert any(says in m for m in texts(app.info))
    assert not app.dataframe and not app.get("plotly_chart")


@pytest.mark.parametrize("page", [SEARCHES, SEARCH, EXPERTS])
def test_a_missing_store_is_explained_and_not_created(run_page, missing_url, page):
    app = run_page(page, missing_url)
    assert any("No store to show at" in m for m in texts(app.info))
    assert not Path(missing_url.removeprefix("sqlite:///")).exists()


def test_search_without_complete_trials_says_so(run_page, tmp_path):
    from storage import Store

    url = f"sqlite:///{tmp_path / 'dmo.sqlite'}"
    with Store.open(url) as store:
        search_row(store, project_config(("a", "b"), project__name="fresh"), study_name="dmo-fresh",
                   with_study=False)
    app = run_page(SEARCH, url)
    infos = " ".join(texts(app.info))
    assert "has no complete trial yet" in infos and "still created" in infos
    assert not app.get("plotly_chart")


def test_the_sidebar_links_to_optuna_dashboard_when_it_runs(run_page, seeded, monkeypatch):
    app = run_page(SEARCHES, seeded.url)
    assert any("dmo dashboard --optuna" in c for c in texts(app.sidebar.caption))
    monkeypatch.setenv("DMO_OPTUNA_DASHBOARD_URL", "http://127.0.0.1:9999")
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(Path(__file__).parents[2] / "dashboards" / "pages" / SEARCHES))
    app.run()
    assert any("(http://127.0.0.1:9999)" in m for m in texts(app.sidebar.markdown))


def test_the_app_opens_on_the_searches_page(seeded, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("DMO_STORE_URL", seeded.url)
    app = AppTest.from_file(
        str(Path(__file__).parents[2] / "dashboards" / "app.py"), default_timeout=30
    )
    app.run()
    assert not app.exception
    assert texts(app.title) == ["Searches"] and len(app.dataframe[0].value) == 3
    assert not math.isnan(app.dataframe[0].value["best"].iloc[0])


def test_search_page_names_each_declared_benchmark_s_metric(run_page, tmp_path):
    """A search scored on benchmarks apart from its domains: columns are the benchmarks, the caption their metrics."""
    from dmo.mixture import Mixture
    from storage import Store

    url = f"sqlite:///{tmp_path / 'dmo.sqlite'}"
    config = project_config(("a", "b"), search__trials=2, benchmarks=[
        {"name": "docs", "file": str(tmp_path / "docs.jsonl"), "metric": "anls"},
        {"name": "pope", "file": str(tmp_path / "pope.jsonl"), "metric": "yes_no_f1"}])
    with Store.open(url) as store:
        search = search_row(store, config, study_name="dmo-declared", with_study=False)
        for number, (w, docs, pope) in enumerate(((0.3, 41.0, 70.0), (0.8, 55.0, 61.0))):
            store.record_trial(search_id=search.id, number=number, mixture=Mixture.of(("a", "b"), {"a": w, "b": 1 - w}),
                               merge_method="task_arithmetic", params={}, scores={"docs": docs, "pope": pope},
                               objective=[(docs + pope) / 2], state="complete", duration_s=1.0)
    app = run_page(SEARCH, url, search=str(search.id))
    assert any("docs: anls, pope: yes_no_f1" in caption for caption in texts(app.caption))
    (top,) = [frame.value for frame in app.dataframe if "rank" in frame.value.columns]
    assert {"docs", "pope", "w a", "w b"} <= set(top.columns)
    assert top.loc[0, "docs"] == pytest.approx(55.0) and top.loc[0, "pope"] == pytest.approx(61.0)  # best first: 58 > 55.5
