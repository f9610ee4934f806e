"""Export a search's best (or chosen) mixture as a recipe, atomically, and record it.

``json`` and ``mergekit`` write one file at ``out``. ``llamafactory`` and
``jsonl`` write a recipe directory at ``out`` — its ``dataset_info.json``,
the data and (llamafactory) ``recipe.yaml`` — that LLaMA-Factory reads as it
stands. A directory is built in a hidden sibling and moved into place only
when complete, so a full disk or an interruption leaves nothing behind; an
existing directory keeps every file that is not the recipe's, and the
entries of its ``dataset_info.json`` that are not dmo's.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dmo.data.sharegpt import dataset_info_entry
from dmo.errors import DataError, DmoError, SearchError
from dmo.files import check_directory_target, check_target, tree_sha256, write_failure, write_text
from dmo.recipes.formats import RunLength, json_recipe, llamafactory_recipe
from dmo.recipes.selection import DomainShare, domain_order, interleaved_domains, shares
from dmo.recipes.sources import DomainWriter, RecipeSample, domain_samples, domain_size
from storage import RecipeRecord, SearchRecord, Store, TrialRecord

FORMATS = ("llamafactory", "json", "mergekit", "jsonl")
STRATEGIES = ("exact", "interleave")
DIRECTORY_FORMATS = ("llamafactory", "jsonl")
FILE_SUFFIXES = (".yaml", ".yml", ".json", ".jsonl")
RECIPE_YAML = "recipe.yaml"
DATASET_INFO = "dataset_info.json"
MIXTURE_JSONL = "mixture.jsonl"
# What a recipe directory of ours holds, besides the dataset_info.json it merges into.
OWNED = {"llamafactory": (RECIPE_YAML, "data"), "jsonl": (MIXTURE_JSONL, "data")}


@dataclass(frozen=True)
class ExportOptions:
    """How the full run consumes the recipe (defaults: the search's own batch, one GPU)."""

    budget: int
    gpus: int = 1
    per_device_batch: int | None = None  # None: the batch size the search's mixture models used
    grad_accum: int = 1
    strategy: str = "exact"
    relative: bool = False
    seed: int = 0


@dataclass(frozen=True)
class ExportResult:
    record: RecipeRecord
    shares: tuple[DomainShare, ...]
    run: RunLength | None
    notes: tuple[str, ...] = ()


def export_recipe(
    store: Store,
    search_id: int,
    *,
    fmt: str,
    out: Path,
    options: ExportOptions,
    trial_number: int | None = None,
    force: bool = False,
) -> ExportResult:
    """Write the recipe of a search's best (or chosen) trial at ``out`` and record it with its sha256."""
    if fmt not in FORMATS:
        raise DmoError(f"unknown recipe format {fmt!r}", where="--format", hint=f"known: {', '.join(FORMATS)}")
    if options.strategy not in STRATEGIES:
        raise DmoError(f"unknown strategy {options.strategy!r}", where="--strategy", hint=f"known: {', '.join(STRATEGIES)}")
    for flag, value in (("--budget", options.budget), ("--gpus", options.gpus), ("--grad-accum", options.grad_accum),
                        ("--per-device-batch", options.per_device_batch or 1)):
        if value < 1:
            raise DmoError(f"must be a positive integer, got {value}", where=flag)
    out = Path(out)
    if fmt in DIRECTORY_FORMATS:
        if out.suffix.lower() in FILE_SUFFIXES and not out.is_dir():
            # `-o recipe/recipe.yaml` would otherwise become a folder named recipe.yaml.
            inside = RECIPE_YAML if fmt == "llamafactory" else MIXTURE_JSONL
            raise DmoError(f"names a file, but a {fmt} recipe is a folder", where=str(out),
                           hint=f"name the folder: -o {out.parent / out.stem} writes {out.parent / out.stem / inside}")
        check_directory_target(out)
        _check_owned(out, OWNED[fmt], force=force)
    else:
        check_target(out, force=force)
    search = store.get_search(search_id)
    trial = _pick_trial(store, search_id, trial_number)
    weights = [float(trial.weights[d]) for d in search.domains]
    run = RunLength(options.budget, options.gpus,
                    options.per_device_batch or search.config.training.mixture_stage().batch_size, options.grad_accum)

    if fmt == "json":
        sizes = [domain_size(search.config, d) for d in search.config.domains]
        split = shares(search.domains, weights, options.budget, sizes)
        write_text(out, json_recipe(_provenance(store, search, trial, split, run)), force=force)
        return ExportResult(_record(store, search, trial, "json", out, options.budget), tuple(split), run)
    if fmt == "mergekit":
        from dmo.merging.mergekit_interop import mergekit_yaml
        from dmo.mixture import merge_coefficients

        base = store.get_model(search.snapshot.base_id)
        experts = [store.get_model(i).checkpoint_uri for i in search.expert_ids]
        from dmo.models.backends import backend_for

        merge = search.config.search.merge
        exclude = merge.exclude if merge.exclude is not None else backend_for(search.config).merge_exclude(
            Path(base.checkpoint_uri))
        # The proxy the search scored: the mixture's merge coefficients, not its data shares.
        coefficients = merge_coefficients(weights, merge.weight_power)
        write_text(out, mergekit_yaml(base.checkpoint_uri, experts, coefficients, merge.method, merge.params,
                                      exclude=exclude), force=force)
        return ExportResult(_record(store, search, trial, "mergekit", out, None), (), None)
    return _export_directory(store, search, trial, fmt, out, weights, run, options, force)


def _export_directory(store: Store, search: SearchRecord, trial: TrialRecord, fmt: str, out: Path,
                      weights: list[float], run: RunLength, options: ExportOptions, force: bool) -> ExportResult:
    samples = {d.name: domain_samples(search.config, d) for d in search.config.domains}
    split = shares(search.domains, weights, options.budget, [len(samples[d]) for d in search.domains])
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=_parent(out)))
    try:
        writers = {d: DomainWriter(staging, d, relative=options.relative) for d in search.domains}
        if fmt == "jsonl":
            kinds = _write_mixture(staging / MIXTURE_JSONL, samples, writers, split, options.seed)
            entries = {"dmo_mixture": dataset_info_entry(MIXTURE_JSONL, **kinds)}
        else:
            entries = {}
            for index, share in enumerate(split):
                file = f"data/{share.domain}.jsonl"
                count = share.count if options.strategy == "exact" else share.available
                kinds = _write_domain(staging / file, samples[share.domain], writers[share.domain], count,
                                      seed=options.seed + index)
                entries[f"dmo_{share.domain}"] = dataset_info_entry(file, **kinds)
            dataset_dir = "." if options.relative else str(out.resolve())
            # Quoted: the user pastes this line into a shell, and a folder may hold spaces or quotes.
            command = (f"cd {shlex.quote(str(out))} && llamafactory-cli train {RECIPE_YAML}" if options.relative
                       else f"llamafactory-cli train {shlex.quote(str(out.resolve() / RECIPE_YAML))}")
            text = llamafactory_recipe(dataset_dir=dataset_dir, datasets=list(entries), shares_=split, run=run,
                                       strategy=options.strategy, header=_header(search, trial, split, run, options),
                                       run_command=command)
            _write_new(staging / RECIPE_YAML, text)
        _write_new(staging / DATASET_INFO, json.dumps(_merged_info(out / DATASET_INFO, entries, force), indent=2) + "\n")
        sha256 = tree_sha256(staging)
        _move_into(staging, out)
    except OSError as error:
        raise DataError(f"could not write the recipe: {write_failure(error)}", where=str(out),
                        hint="check that the disk has space and the folder is writable; nothing was left behind") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    notes = tuple(f"{s.domain} has {s.available:,} samples for a share of {s.count:,}: each is used "
                  f"~{s.count / s.available:.1f}×" for s in split if s.repeated and options.strategy == "exact")
    record = store.record_recipe(search_id=search.id, trial_id=trial.id, fmt=fmt, path=str(out.resolve()),
                                 sha256=sha256, budget=options.budget)
    return ExportResult(record, tuple(split), run, notes)


class _MediaSeen:
    """Which media columns a written file holds: LLaMA-Factory's loader fails on a declared column that
    no line of the file has (a file of videos only has no ``images``)."""

    def __init__(self) -> None:
        self.images = self.videos = False

    def add(self, item: RecipeSample) -> None:
        if item.is_video:
            self.videos = True
        else:
            self.images = True

    def columns(self) -> dict[str, bool]:
        return {"images": self.images, "videos": self.videos}


def _write_domain(path: Path, items: Sequence[RecipeSample], writer: DomainWriter, count: int, *,
                  seed: int) -> dict[str, bool]:
    path.parent.mkdir(parents=True, exist_ok=True)
    seen = _MediaSeen()
    with path.open("w", encoding="utf-8") as out:
        for index in domain_order(len(items), count, seed):
            out.write(writer.line(index, items[index]))
            seen.add(items[index])
    return seen.columns()


def _write_mixture(path: Path, samples: dict[str, list[RecipeSample]], writers: dict[str, DomainWriter],
                   split: Sequence[DomainShare], seed: int) -> dict[str, bool]:
    """The mixture as one file: exact counts, domains interleaved at random, streamed to disk."""
    orders = [domain_order(len(samples[s.domain]), s.count, seed + i) for i, s in enumerate(split)]
    seen = _MediaSeen()
    with path.open("w", encoding="utf-8") as out:
        for d in interleaved_domains([s.count for s in split], seed):
            domain = split[d].domain
            index = next(orders[d])
            out.write(writers[domain].line(index, samples[domain][index]))
            seen.add(samples[domain][index])
    return seen.columns()


def _header(search: SearchRecord, trial: TrialRecord, split: Sequence[DomainShare], run: RunLength,
            options: ExportOptions) -> list[str]:
    objective = trial.objective[0] if trial.objective else float("nan")
    lines = [
        f"dmo recipe: search {search.id}, trial {trial.number} (objective {objective:.2f}, "
        + ("declared benchmarks)" if search.metric == "benchmark" else f"dev {search.metric})"),
        "mixture: " + ", ".join(f"{s.domain} {s.weight:.4f}" for s in split),
    ]
    if options.strategy == "exact":
        lines.append(f"{options.budget:,} samples, exactly: " + ", ".join(s.describe() for s in split))
    else:
        lines.append(f"{options.budget:,} samples drawn by interleave_under with these probabilities (the mixture "
                     "holds in expectation; it stops when the first dataset runs out)")
    lines.append(run.describe())
    return lines


def _check_owned(out: Path, owned: Sequence[str], *, force: bool) -> None:
    present = [name for name in owned if os.path.lexists(out / name)]
    if present and not force:
        raise DataError(f"already holds a recipe ({', '.join(present)})", where=str(out),
                        hint="choose another directory, or pass --force to replace the recipe (other files are kept)")
    for name in present:
        target = out / name
        if target.is_symlink() or not (target.is_file() or target.is_dir()):
            raise DataError("is not a regular file or directory; dmo will not replace it", where=str(target))


def _merged_info(existing: Path, entries: dict[str, dict], force: bool) -> dict:
    """An existing dataset_info.json with our entries added: the user's entries are kept."""
    if not os.path.lexists(existing):
        return entries
    check_target(existing, force=True)
    try:
        current = json.loads(existing.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DataError(f"cannot merge into it: {error}", where=str(existing),
                        hint="fix or remove it; dmo never overwrites a user's dataset_info.json") from None
    if not isinstance(current, dict):
        raise DataError("is not a JSON object of datasets", where=str(existing))
    clash = [name for name in entries if name in current and current[name] != entries[name]]
    if clash and not force:
        raise DataError(f"already has entries {', '.join(clash)} that differ from this recipe's", where=str(existing),
                        hint="pass --force to replace them (every other entry is kept)")
    return {**current, **entries}


def _write_new(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _parent(out: Path) -> Path:
    parent = out.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    return parent


def _move_into(staging: Path, out: Path) -> None:
    """The staged recipe becomes ``out``: renamed when new, else moved in file by file.

    Folders are merged, never replaced: a user's own files beside dmo's (in ``data/`` too) are kept.
    """
    if not os.path.lexists(out):
        os.rename(staging, out)
        return
    for entry in staging.iterdir():
        target = out / entry.name
        if entry.is_dir() and target.is_dir() and not target.is_symlink():
            _move_into(entry, target)
        else:
            os.replace(entry, target)


def _pick_trial(store: Store, search_id: int, number: int | None) -> TrialRecord:
    if number is None:
        best = store.best_trials(search_id, top_k=1)
        if not best:
            raise SearchError(f"search {search_id} has no finished trial yet")
        return best[0]
    for trial in store.trials(search_id):
        if trial.number == number:
            return trial
    raise SearchError(f"search {search_id} has no finished trial {number}", where="--trial")


def _record(store: Store, search: SearchRecord, trial: TrialRecord, fmt: str, out: Path, budget: int | None) -> RecipeRecord:
    return store.record_recipe(search_id=search.id, trial_id=trial.id, fmt=fmt, path=str(out.resolve()),
                               sha256=tree_sha256(out), budget=budget)


def _provenance(store: Store, search: SearchRecord, trial: TrialRecord, split: Sequence[DomainShare],
                run: RunLength) -> dict:
    from importlib.metadata import version

    validation = store.latest_validation(search.id, finished_only=True)
    experts = [store.get_model(i) for i in search.expert_ids]
    return {
        "weights": {s.domain: s.weight for s in split},
        "budget": run.budget,
        "counts": {s.domain: s.count for s in split},
        "repeated": [s.domain for s in split if s.repeated],
        "run": {"gpus": run.gpus, "per_device_batch": run.per_device_batch, "grad_accum": run.grad_accum,
                "max_steps": run.max_steps, "samples_seen": run.samples_seen},
        "provenance": {
            "search_id": search.id,
            "study": search.study_name,
            "sampler": search.sampler,
            "trial": trial.number,
            "objective": list(trial.objective),
            "metric": search.metric,
            "benchmarks": search.benchmark_metrics,
            "scores": trial.scores,
            # Where the search scored trials on an anchor subset: the subset's size per benchmark, and this
            # trial's objective and scores on every sample if it was rescored.
            "anchors": None if search.anchors is None else {b: len(i) for b, i in search.anchors.items()},
            "full_value": trial.full_value,
            "full_scores": trial.full_scores,
            "fidelity": validation.summary if validation else None,
            "experts": [{"domain": e.domain, "checkpoint_sha256": e.checkpoint_sha256, "efficiency": e.efficiency}
                        for e in experts],
            "dmo_version": version("dmo"),
        },
    }
