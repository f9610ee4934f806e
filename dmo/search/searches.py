"""Create searches and find what a search needs, from the store."""

from __future__ import annotations

from pathlib import Path

from dmo.config.schema import DmoConfig
from dmo.errors import SearchError
from dmo.search.proxy import ProxySource
from dmo.search.study import new_study_name, open_study
from storage import ModelRecord, SearchRecord, Store


def create_search(
    store: Store,
    config: DmoConfig,
    *,
    base: ModelRecord,
    experts: dict[str, ModelRecord],
    trials: int | None = None,
    sampler: str | None = None,
    seed: int | None = None,
) -> SearchRecord:
    """A new search row and its Optuna study (warm start enqueued)."""
    missing = [d for d in config.domain_names if d not in experts]
    if missing:
        raise SearchError(f"no finished expert for domain(s) {', '.join(missing)}", hint="train the experts first")
    settings = config.search
    sampler = sampler or settings.sampler
    seed = settings.seed if seed is None else seed
    study_name = new_study_name(config.project.name)
    open_study(store.url, study_name, config, sampler=sampler, seed=seed)
    snapshot = config.model_dump(mode="json")
    snapshot["search"] = {**snapshot["search"], "sampler": sampler, "seed": seed, "trials": trials or settings.trials}
    return store.create_search(
        name=config.project.name,
        config={**snapshot, "trials": trials or settings.trials, "seed": seed, "base_id": base.id},
        sampler=sampler,
        objective={**settings.objective.model_dump(mode="json"), "metric": config.evaluation.score},
        study_name=study_name,
        domains=list(config.domain_names),
        expert_ids=[experts[d].id for d in config.domain_names],
    )


def search_config(search: SearchRecord) -> DmoConfig:
    """The config a search was created with (its snapshot), so a resume runs the same search."""
    snapshot = {k: v for k, v in search.config.items() if k not in ("trials", "seed", "base_id")}
    snapshot["search"] = {k: v for k, v in snapshot["search"].items() if k != "trials"} | {"trials": search.config["trials"]}
    return DmoConfig.model_validate(snapshot)


def proxy_source(store: Store, search: SearchRecord, config: DmoConfig, *, threads: int = 1) -> ProxySource:
    base = store.get_model(int(search.config["base_id"]))
    experts = [store.get_model(i) for i in search.expert_ids]
    for record in (base, *experts):
        if record.status != "finished" or not record.checkpoint_uri:
            raise SearchError(f"model {record.id} ({record.kind} {record.domain or ''}) is not finished")
    return ProxySource(
        config=config,
        base_checkpoint=Path(base.checkpoint_uri),
        expert_checkpoints=tuple(Path(e.checkpoint_uri) for e in experts),
        threads=threads,
    )
