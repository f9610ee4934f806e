"""`dmo db upgrade`, `dmo searches` and `dmo best`: the store from the command line.

`app` carries the migration command (mounted as ``dmo db``); main.py mounts
:func:`searches` and :func:`best` as top-level commands. All three find the
store as every command does (see :mod:`dmo.cli.common`); the two queries open
it without creating, migrating or locking anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from dmo.cli.common import console, open_store, trials_table
from dmo.cli.options import DEFAULT_CONFIG, ConfigOption, JsonFlag, RetryOption, StoreUrlOption, print_json

if TYPE_CHECKING:
    from rich.table import Table

app = typer.Typer(help="The SQL store: schema migrations.", no_args_is_help=True, add_completion=False)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@app.command("upgrade")
def upgrade(store_url: StoreUrlOption = None, config: ConfigOption = DEFAULT_CONFIG, retry_s: RetryOption = 10.0) -> None:
    """Create or migrate dmo's tables (idempotent; Optuna's tables are left alone)."""
    from storage.db import SCHEMA_REVISION

    with open_store(store_url, config, create=True, retry_s=retry_s) as store:
        typer.echo(f"{store.url_masked}: schema at revision {store.revision()} (head {SCHEMA_REVISION})")


@app.command("searches")
def searches(
    store_url: StoreUrlOption = None,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonFlag = False,
    retry_s: RetryOption = 10.0,
) -> None:
    """List the searches in the store with their trial counts and best objective."""
    from rich.table import Table

    with open_store(store_url, config, retry_s=retry_s) as store:
        rows = []
        for search in store.list_searches():
            best = store.best_trials(search.id, top_k=1)
            rows.append({
                "id": search.id, "name": search.name, "study_name": search.study_name, "sampler": search.sampler,
                "status": search.status, "error": search.error, "domains": list(search.domains),
                "metric": search.metric, "trials_target": search.trials_target,
                "trial_counts": store.trial_counts(search.id),
                "best_value": best[0].final_value if best else None, "best_trial": best[0].number if best else None,
                "created_at": search.created_at.isoformat(),
            })
        where = store.url_masked
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"searches in {where}")
    for column in ("id", "name", "sampler", "status", "domains", "complete/target", "best", "created"):
        table.add_column(column)
    for row in rows:
        counts = row["trial_counts"]
        table.add_row(
            str(row["id"]), row["name"], row["sampler"], row["status"], ", ".join(row["domains"]),
            f"{counts.get('complete', 0)}/{row['trials_target']}", _fmt(row["best_value"]), row["created_at"][:19],
        )
    console.print(table)


@app.command("best")
def best(
    search: Annotated[int | None, typer.Option("--search", "-s", help="Search id; default the newest.")] = None,
    top: Annotated[int, typer.Option("--top", "-k", min=1, help="How many mixtures to show.")] = 5,
    store_url: StoreUrlOption = None,
    config: ConfigOption = DEFAULT_CONFIG,
    calibrated: Annotated[bool, typer.Option(
        "--calibrated", help="Also rank every trial on the real scale the search's finished validations measured: "
                             "by a mixture law of their real scores at the trial's weights, beside its proxy scores "
                             "mapped by a monotone map per benchmark (by that map alone while the validations hold "
                             "too few mixtures for the law; docs/fidelity.md)."
    )] = False,
    as_json: JsonFlag = False,
    retry_s: RetryOption = 10.0,
) -> None:
    """The best mixtures of a search: weights, objective, benchmark scores and proxy fidelity."""
    from dmo.errors import SearchError

    with open_store(store_url, config, retry_s=retry_s) as store:
        if search is None:
            every = store.list_searches()
            if not every:
                raise SearchError("the store has no searches", where=store.url_masked,
                                  hint="start one with `dmo demo` or `dmo search run CONFIG`")
            search = every[-1].id
        record = store.get_search(search)
        trials = store.best_trials(record.id, top_k=top)
        validation = store.latest_validation(record.id, finished_only=True)
        every_trial = store.trials(record.id, state="complete") if calibrated else []
        every_validation = store.validations(record.id, finished_only=True) if calibrated else []
    fidelity = None if validation is None else {"validation_id": validation.id, **validation.summary}
    ranked = _calibrated_ranking(record, every_validation, every_trial, top) if calibrated else None
    if as_json:
        print_json({
            "search": {"id": record.id, "name": record.name, "study_name": record.study_name,
                       "status": record.status, "direction": record.direction, "metric": record.metric,
                       "domains": list(record.domains), "benchmarks": record.benchmark_metrics,
                       "anchors": None if record.anchors is None else {b: len(i) for b, i in record.anchors.items()}},
            "trials": [
                {"rank": rank, "number": t.number, "weights": t.weights, "value": t.value,
                 "objective": list(t.objective), "scores": t.scores, "full_value": t.full_value,
                 "full_scores": t.full_scores, "merge_method": t.merge_method,
                 "efficiency": t.efficiency, "duration_s": t.duration_s}
                for rank, t in enumerate(trials, start=1)
            ],
            "fidelity": fidelity,
            "prediction": record.prediction,
            **({"calibrated": ranked} if ranked is not None else {}),
        })
        return
    shown = f"the {len(trials)} best" if len(trials) != 1 else "the best"
    console.print(trials_table(trials, record.domains, record.benchmark_metrics, declared=record.metric == "benchmark",
                               title=f"{shown} mixtures of search {record.id} ({record.name}, {_scored(record)})"))
    if record.prediction is not None:
        console.print(_prediction_line(record.prediction))
    if fidelity is None:
        console.print("fidelity: no finished validation (run `dmo validate`)")
    else:
        mean = fidelity.get("mean_score", {})
        keys = [k for k in ("spearman", "kendall", "regret") if k in mean]
        summary = ", ".join(f"{k} {_fmt(mean[k])}" for k in keys)
        console.print(f"fidelity (validation {fidelity['validation_id']}): {summary or 'no summary'}")
    if ranked is not None:
        console.print(_calibrated_table(ranked, record.domains))


def _calibrated_ranking(record, validations, trials, top: int) -> dict:
    """Every complete trial ranked on the real scale the search's finished validations measured: by the
    no-proxy mixture law's prediction at its weights (a quadratic law of each benchmark's real score, fitted
    on the held-out mixtures of every finished validation), beside its calibrated proxy mean (full-split
    scores where it was rescored, each benchmark's monotone map fitted on the same mixtures). By the
    calibrated mean while the law has fewer mixtures than coefficients. The law replaced the blend of the
    two by a rule written before the draws that judged it (docs/fidelity.md)."""
    from dmo.errors import SearchError
    from dmo.fidelity.calibration import calibrated_means, fit_on_validations
    from dmo.fidelity.mixture_law import law_means, law_on_validations, min_mixtures

    if not validations:
        raise SearchError(f"search {record.id} has no finished validation to calibrate with",
                          hint=f"run `dmo validate {record.id}` (it trains real mixture models), then ask again")
    ids = [v.id for v in validations]
    try:
        pooled = fit_on_validations(validations)
        scores = [t.full_scores or t.scores for t in trials]
        weights = validations[-1].summary.get("mean_weights")
        means = calibrated_means(scores, pooled.calibration, weights)
        fitted = law_on_validations(validations, sorted(pooled.calibration.knots), record.domains)
        law = None if fitted is None else law_means(fitted[0], [t.weights for t in trials], weights)
    except ValueError as error:
        raise SearchError(f"cannot calibrate with validations {ids}: {error}",
                          hint="validate with the search's own benchmarks") from None
    ranking = means if law is None else law
    order = sorted(range(len(trials)), key=lambda i: (-ranking[i], trials[i].number))
    if record.direction == "minimize":
        order.reverse()
    return {"validation_ids": ids, "fitted_on": len(pooled.mixtures), "ranked_by": "calibrated" if law is None else "law",
            "law_needs": min_mixtures(record.domains), "trials": [
                {"rank": rank, "number": trials[i].number, "weights": trials[i].weights, "value": trials[i].value,
                 "calibrated": float(means[i]), "law": None if law is None else float(law[i])}
                for rank, i in enumerate(order[:top], start=1)]}


def _calibrated_table(ranked: dict, domains) -> Table:
    from rich.table import Table

    ids = ", ".join(str(i) for i in ranked["validation_ids"])
    fitted = (f"the {ranked['fitted_on']} trained mixtures of validation{'s' if len(ranked['validation_ids']) > 1 else ''}"
              f" {ids}")
    if ranked["ranked_by"] == "law":
        title = (f"ranked by a mixture law of the real scores fitted on {fitted} (calibrated proxy scores, fitted on "
                 f"the same, beside it); a prediction of the real mean, not a measurement")
    else:
        title = (f"ranked by calibrated proxy scores (fitted on {fitted}; the mixture law beside them needs "
                 f"{ranked['law_needs']}); a prediction of the real mean, not a measurement")
    table = Table(title=title)
    columns = ("law", "calibrated") if ranked["ranked_by"] == "law" else ("calibrated",)
    for column in ("rank", "trial", *domains, "proxy", *columns):
        table.add_column(column, justify="right")
    for row in ranked["trials"]:
        table.add_row(str(row["rank"]), str(row["number"]), *(f"{row['weights'][d]:.3f}" for d in domains),
                      _fmt(row["value"]), *(f"{row[c]:.2f}" for c in columns))
    return table


def _prediction_line(prediction: dict) -> str:
    """The surrogate's argmax, said to be a prediction: no model was merged or scored there."""
    weights = ", ".join(f"{d} {w:.3f}" for d, w in prediction["weights"].items())
    return (f"predicted optimum (not evaluated; {prediction['model']} fitted on {prediction['trials']} trials, "
            f"in-sample R² {_fmt(prediction['r2'])}): {weights} -> objective {prediction['value']:.2f} "
            f"(best evaluated {prediction['best_evaluated']:.2f})")


def _scored(record) -> str:
    """What the scores are: each domain's dev split in one metric, or declared benchmarks in their own."""
    return "declared benchmarks" if record.metric == "benchmark" else f"dev {record.metric}"
