"""A store with everything the dashboards show, written through the Store API only.

- models: a base and four experts (loss curves, MoD efficiency settings), one
  failed mixture model;
- search "three" (3 domains, finished): complete trials and two failed ones,
  plus a finished validation with mixture results;
- search "live" (3 domains, running): a few complete trials and one in flight;
- search "pareto" (4 domains, objective multi, finished).

`Seeded` carries what the tests compare the pages against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dmo.fidelity import fidelity_summary
from dmo.mixture import Mixture
from dmo.search.objectives import pareto_front
from search_support import project_config, search_row
from storage import Store

DOMAINS = ("general", "ocr", "counting", "chart")
RETENTION = [1.0, 1.0, 0.812, 0.611, 0.389, 0.188, 0.15, 0.15]
EFFICIENCY = {
    "schedule": "prd_shifted_cosine",
    "retention": RETENTION,
    "tanh_alpha": 0.2,
    "tanh_beta": 1.0,
    "flops_ratio": 0.752,
    "kv_ratio": 0.758,
    "n_text": 16,
    "n_vis": 16,
}
MODEL_ERROR = "RuntimeError: loss is NaN at step 40"
TRIAL_ERROR = "MergeError: experts differ in shape"
# How well each domain's expert lifts its benchmark (points per unit of weight).
SKILL = {"general": 60.0, "ocr": 10.0, "counting": 95.0, "chart": 30.0}


@dataclass(frozen=True)
class Seeded:
    url: str
    three: int  # finished search, 3 domains, with failed trials and a validation
    live: int  # running search
    pareto: int  # multi-objective search, 4 domains
    three_best: float  # max objective among the complete trials of `three`
    three_best_trial: int
    three_complete: int
    three_failed: tuple[int, ...]  # trial numbers
    live_complete: int
    pareto_front: tuple[int, ...]  # trial numbers on the front
    validation_means: tuple[tuple[float, float], ...]  # (proxy, real) mean score per mixture
    expert_ids: tuple[int, ...]
    failed_model_id: int
    loss_curve_points: int  # per finished model


def _scores(weights: dict[str, float]) -> dict[str, float]:
    return {d: round(SKILL[d] * w + 5.0, 3) for d, w in weights.items()}


def _model(
    store: Store, *, kind: str, domain: str | None, base_id: int | None, slope: float, points: int
) -> int:
    record = store.start_model(
        kind=kind,
        config_hash=f"{kind}-{domain}",
        domain=domain,
        base_id=base_id,
        training={"steps": 100},
        finetune="full",
        efficiency=EFFICIENCY,
    )
    curve = [
        [step, round(4.0 * float(np.exp(-slope * step)) + 0.5, 4)]
        for step in range(10, 10 * points + 1, 10)
    ]
    dev = {
        "benchmarks": {d: {"exact_match": 20.0 + 10 * i} for i, d in enumerate(DOMAINS)},
        "average": {"exact_match": 35.0},
    }
    store.finish_model(
        record.id,
        checkpoint_uri=f"/tmp/ckpt/{kind}-{domain}",
        checkpoint_sha256="0" * 64,
        duration_s=12.0 + slope,
        metrics={
            "final_loss": curve[-1][1],
            "train_seconds": 12.0 + slope,
            "loss_curve": curve,
            "dev": dev,
        },
    )
    return record.id


def _search(
    store: Store,
    name: str,
    domains: tuple[str, ...],
    experts: dict[str, int],
    *,
    kind: str = "mean",
    sampler: str = "tpe",
) -> int:
    config = project_config(domains, project__name=name, search__trials=20, search__sampler=sampler,
                            search__objective={"kind": kind})
    return search_row(store, config, study_name=f"dmo-{name}", expert_ids=tuple(experts[d] for d in domains),
                      with_study=False).id


def _trial(
    store: Store, search_id: int, number: int, weights: dict[str, float], *, multi: bool = False
) -> tuple[float, ...]:
    scores = _scores(weights)
    mean = sum(scores.values()) / len(scores)
    objective = (mean, min(scores.values())) if multi else (mean,)
    store.record_trial(
        search_id=search_id,
        number=number,
        mixture=Mixture.of(tuple(weights), weights),
        merge_method="task_arithmetic",
        params={},
        scores=scores,
        objective=list(objective),
        state="complete",
        duration_s=1.5,
    )
    return objective


def _dirichlet(rng: np.random.Generator, domains: tuple[str, ...]) -> dict[str, float]:
    return dict(zip(domains, (float(x) for x in rng.dirichlet(np.ones(len(domains))))))


def seed_store(url: str) -> Seeded:
    rng = np.random.default_rng(0)
    store = Store.open(url)
    try:
        points = 12
        base = _model(store, kind="base", domain=None, base_id=None, slope=0.01, points=points)
        experts = {
            d: _model(
                store, kind="expert", domain=d, base_id=base, slope=0.02 + 0.01 * i, points=points
            )
            for i, d in enumerate(DOMAINS)
        }
        failed = store.start_model(
            kind="mixture",
            config_hash="mixture-broken",
            domain=None,
            base_id=base,
            training={},
            finetune="full",
            efficiency=EFFICIENCY,
        )
        store.fail_model(failed.id, MODEL_ERROR)

        three_domains = DOMAINS[:3]
        three = _search(store, "three", three_domains, experts)
        values, failed_numbers = {}, (4, 9)
        for number in range(14):
            weights = _dirichlet(rng, three_domains)
            if number in failed_numbers:
                store.record_trial(
                    search_id=three,
                    number=number,
                    mixture=Mixture.of(tuple(weights), weights),
                    merge_method="task_arithmetic",
                    params={},
                    scores={},
                    objective=[],
                    state="fail",
                    duration_s=0.2,
                    efficiency={"error": TRIAL_ERROR},
                )
            else:
                values[number] = _trial(store, three, number, weights)[0]
        store.set_search_status(three, "finished")
        best_trial = max(values, key=lambda n: (values[n], -n))

        validation = store.create_validation(three, config={"mixtures": 5})
        proxy_lists: dict[str, list[float]] = {d: [] for d in three_domains}
        real_lists: dict[str, list[float]] = {d: [] for d in three_domains}
        means = []
        for i in range(5):
            weights = _dirichlet(rng, three_domains)
            proxy = _scores(weights)
            # Real models agree with the proxies on the order of most mixtures, not all.
            real = {
                d: round(s + (4.0 if i == 1 else 0.0) - 2.0 * i * (d == "ocr"), 3)
                for d, s in proxy.items()
            }
            store.record_mixture_result(
                validation.id,
                mixture=Mixture.of(tuple(weights), weights),
                trial_id=None,
                model_id=None,
                proxy_scores=proxy,
                real_scores=real,
            )
            for d in three_domains:
                proxy_lists[d].append(proxy[d])
                real_lists[d].append(real[d])
            means.append((sum(proxy.values()) / 3, sum(real.values()) / 3))
        store.finish_validation(validation.id, summary=fidelity_summary(proxy_lists, real_lists))

        live = _search(store, "live", three_domains, experts, sampler="random")
        store.set_search_status(live, "running")
        for number in range(3):
            _trial(store, live, number, _dirichlet(rng, three_domains))
        store.record_trial(
            search_id=live,
            number=3,
            mixture=Mixture.of(three_domains, _dirichlet(rng, three_domains)),
            merge_method="task_arithmetic",
            params={},
            scores={},
            objective=[],
            state="running",
            duration_s=None,
        )

        pareto = _search(store, "pareto", DOMAINS, experts, kind="multi", sampler="gp")
        objectives = [
            _trial(store, pareto, n, _dirichlet(rng, DOMAINS), multi=True) for n in range(15)
        ]
        store.set_search_status(pareto, "finished")
    finally:
        store.dispose()
    return Seeded(
        url=url,
        three=three,
        live=live,
        pareto=pareto,
        three_best=values[best_trial],
        three_best_trial=best_trial,
        three_complete=len(values),
        three_failed=failed_numbers,
        live_complete=3,
        pareto_front=tuple(pareto_front(objectives)),
        validation_means=tuple(means),
        expert_ids=tuple(experts.values()),
        failed_model_id=failed.id,
        loss_curve_points=points,
    )
