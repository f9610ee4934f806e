"""Export a search's best (or chosen) mixture as a recipe, atomically, and record it."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from dmo.config.schema import DmoConfig, JsonlSource
from dmo.data.domains import load_domains
from dmo.data.mixture import mixture_counts
from dmo.data.sharegpt import dataset_info_entry, write_jsonl
from dmo.errors import DmoError, SearchError
from dmo.recipes.formats import json_recipe, llamafactory_yaml
from storage import RecipeRecord, Store, TrialRecord

FORMATS = ("llamafactory", "json", "mergekit", "jsonl")


def export_recipe(
    store: Store,
    search_id: int,
    *,
    fmt: str,
    budget: int,
    out: Path,
    trial_number: int | None = None,
    force: bool = False,
    seed: int = 0,
) -> RecipeRecord:
    """Write the recipe of a search's best (or chosen) trial to ``out`` and record it with its sha256."""
    if fmt not in FORMATS:
        raise DmoError(f"unknown recipe format {fmt!r}", where="--format", hint=f"known: {', '.join(FORMATS)}")
    if budget < 1:
        raise DmoError(f"budget must be positive, got {budget}", where="--budget")
    out = Path(out)
    if out.exists() and not force:
        raise DmoError("output exists", where=str(out), hint="choose another path or pass --force")
    search = store.get_search(search_id)
    config = search.config
    trial = _pick_trial(store, search_id, trial_number)
    names = list(search.domains)
    weights = [float(trial.weights[d]) for d in names]
    out.parent.mkdir(parents=True, exist_ok=True)

    if fmt == "llamafactory":
        data_dir = _domain_files(config, out.parent / "data")
        datasets = [f"{d}_train" for d in names]
        info = {f"{d}_train": dataset_info_entry(os.path.relpath(data_dir[d], out.parent)) for d in names}
        _write(out.with_name("dataset_info.json"), json.dumps(info, indent=2) + "\n")
        header = f"dmo recipe: search {search_id}, trial {trial.number}, objective {trial.objective[0]:.2f}\nweights: {json.dumps(trial.weights)}"
        text = llamafactory_yaml(datasets=datasets, weights=weights, budget=budget, batch_size=config.training.mixture_stage().batch_size, header=header)
    elif fmt == "json":
        text = json_recipe(_provenance(store, search, trial, names, weights, budget))
    elif fmt == "mergekit":
        from dmo.merging.mergekit_interop import mergekit_yaml

        base = store.get_model(search.snapshot.base_id)
        experts = [store.get_model(i).checkpoint_uri for i in search.expert_ids]
        merge = config.search.merge
        text = mergekit_yaml(base.checkpoint_uri, experts, weights, merge.method, merge.params, exclude=merge.exclude)
    else:
        _export_jsonl(config, names, weights, budget, out, seed)
        text = None
    if text is not None:
        _write(out, text)
    return store.record_recipe(search_id=search_id, trial_id=trial.id, fmt=fmt, path=str(out.resolve()),
                               sha256=_sha256(out), budget=budget)


def _pick_trial(store: Store, search_id: int, number: int | None) -> TrialRecord:
    if number is None:
        best = store.best_trials(search_id, top_k=1)
        if not best:
            raise SearchError(f"search {search_id} has no finished trial yet")
        return best[0]
    for trial in store.trials(search_id):
        if trial.number == number:
            return trial
    raise SearchError(f"search {search_id} has no finished trial {number}")


def _provenance(store: Store, search, trial: TrialRecord, names, weights, budget: int) -> dict:
    from importlib.metadata import version

    validation = store.latest_validation(search.id, finished_only=True)
    experts = [store.get_model(i) for i in search.expert_ids]
    return {
        "weights": dict(zip(names, weights)),
        "budget": budget,
        "counts": dict(zip(names, mixture_counts(weights, budget))),
        "provenance": {
            "search_id": search.id,
            "study": search.study_name,
            "sampler": search.sampler,
            "trial": trial.number,
            "objective": list(trial.objective),
            "scores": trial.scores,
            "fidelity": validation.summary if validation else None,
            "experts": [{"domain": e.domain, "checkpoint_sha256": e.checkpoint_sha256, "efficiency": e.efficiency} for e in experts],
            "dmo_version": version("dmo"),
        },
    }


def _domain_files(config: DmoConfig, fallback: Path) -> dict[str, Path]:
    """Each domain's train JSONL: the user's file, or the synthetic data written once."""
    files: dict[str, Path] = {}
    synthetic = []
    for domain in config.domains:
        if isinstance(domain.source, JsonlSource):
            files[domain.name] = Path(domain.source.train).resolve()
        else:
            files[domain.name] = (fallback / domain.name / "train.jsonl").resolve()
            if not files[domain.name].is_file():
                synthetic.append(domain.name)
    if synthetic:
        data = load_domains(config)
        for name in synthetic:
            write_jsonl(data[name].train, files[name], image_dir="images/train")
    return files


def _export_jsonl(config, names, weights, budget, out: Path, seed: int) -> None:
    """The mixture itself: exactly `counts` samples per domain, seeded order, LLaMA-Factory JSONL."""
    data = load_domains(config)
    rng = np.random.default_rng(seed)
    chosen = []
    for name, n in zip(names, mixture_counts(weights, budget)):
        train = data[name].train
        order = np.concatenate([rng.permutation(len(train)) for _ in range(-(-n // len(train)))])[:n] if n else []
        chosen += [train[int(i)] for i in order]
    chosen = [chosen[int(i)] for i in rng.permutation(len(chosen))]
    # Repeated samples (budget > split) need distinct image files: suffix the uid.
    from dataclasses import replace

    chosen = [replace(s, uid=f"{i:07d}-{s.uid}") for i, s in enumerate(chosen)]
    write_jsonl(chosen, out, image_dir=f"{out.stem}_images")


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
