"""Searches for tests: a typed config over a few domains, its snapshot, and its row in a store."""

from __future__ import annotations

from typing import Any

from dmo.config import DmoConfig, with_overrides
from dmo.config.snapshot import SearchSnapshot
from dmo.mixture import Mixture
from storage import SearchRecord, Store


def project_config(domains: tuple[str, ...] = ("a", "b", "c"), **fields: Any) -> DmoConfig:
    """A config over synthetic ``domains``; ``fields`` are dotted overrides, e.g. search__trials=4."""
    config = DmoConfig.model_validate({
        "domains": [{"name": d, "source": {"kind": "synthetic", "generator": "general"}} for d in domains],
    })
    return configured(config, **fields)


def configured(config: DmoConfig, **fields: Any) -> DmoConfig:
    """``config`` with dotted overrides (``search__trials=8`` sets search.trials), validated."""
    return with_overrides(config, {name.replace("__", "."): (name, value) for name, value in fields.items()})


def search_row(
    store: Store, config: DmoConfig, *, base_id: int | None = None, expert_ids: tuple[int, ...] = (),
    study_name: str | None = None, with_study: bool = True,
) -> SearchRecord:
    """A search row for ``config``, and (by default) its Optuna study, as create_search makes them."""
    from dmo.search.study import new_study_name, open_study

    name = study_name or new_study_name(config.project.name)
    if with_study:
        open_study(store.url, name, config)
    return store.create_search(SearchSnapshot(config=config, base_id=base_id), study_name=name,
                               expert_ids=list(expert_ids))


def mixture(**weights: float) -> Mixture:
    return Mixture(tuple(weights), tuple(weights.values()))
