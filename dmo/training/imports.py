"""Experts trained elsewhere, registered as a domain's expert: a peft LoRA adapter or a full checkpoint.

``dmo expert import DIR --domain NAME`` checks the expert against the project's base before
anything is stored. An adapter (``dmo.merging.adapters``): every adapted matrix and fully trained
tensor must exist in the base with the factors' shapes and the vision tower must be untouched. A
full checkpoint (``config.json`` + safetensors, as ``save_pretrained`` or LLaMA-Factory's full
fine-tuning write it): the backend's merge guard (config settings, a recorded base), then exactly
the proxy model's tensors with its shapes — so a routed project refuses a checkpoint without
routers. The files are copied into the workdir with their sha256 checked, the expert is scored on
the dev benchmarks like a trained one, and recorded. From then on the domain's expert *is* the
import: a search over this base uses it instead of training one (:func:`imported_expert`, asked
first by ``ensure_model``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dmo.config.schema import DmoConfig
from dmo.data.prepared import PreparedData, prepare_data
from dmo.errors import CheckpointError, DmoError
from dmo.files import file_sha256, total_sha256, tree_sha256
from dmo.merging.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS, is_adapter, read_adapter
from dmo.models.backends import backend_for
from storage import ModelRecord, Store

ADAPTER_FILES = (ADAPTER_CONFIG, ADAPTER_WEIGHTS)


def import_key(domain: str, base_sha256: str | None) -> str:
    """The store key of a domain's imported expert over one base: one import per (domain, base)."""
    payload = {"format": 1, "kind": "expert", "imported": domain, "base": base_sha256}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def imported_expert(store: Store, domain: str, base: ModelRecord) -> ModelRecord | None:
    """The finished import for ``domain`` over ``base`` whose files are still as recorded, if any."""
    record = store.find_model(import_key(domain, base.checkpoint_sha256))
    if record is None or record.status != "finished" or not record.checkpoint_uri:
        return None
    folder = Path(record.checkpoint_uri)
    if not folder.is_dir() or tree_sha256(folder) != record.checkpoint_sha256:
        raise CheckpointError("the imported expert's files changed or are gone", where=str(folder),
                              hint=f"import it again: dmo expert import DIR --domain {domain} --force")
    return record


@dataclass(frozen=True)
class _Verified:
    """An expert checked against the base: the proxy model holding its weights, and what to record."""

    model: torch.nn.Module
    form: str
    training: dict[str, Any]


def import_expert(config: DmoConfig, store: Store, directory: Path, domain: str, *, force: bool = False,
                  data: PreparedData | None = None) -> ModelRecord:
    """Verify, copy, score and record an adapter or full checkpoint as ``domain``'s expert (nothing is stored on
    refusal)."""
    from dmo.evaluation import benchmarks_for, evaluate
    from dmo.training.jobs import base_spec, ensure_model, record_imported

    if domain not in config.domain_names:
        raise DmoError(f"unknown domain {domain!r}", where="--domain", hint=f"configured: {', '.join(config.domain_names)}")
    directory = Path(directory)
    adapter = directory.is_dir() and is_adapter(directory)
    if not adapter and not _is_full_checkpoint(directory):
        raise CheckpointError(f"is neither a peft LoRA adapter ({' + '.join(ADAPTER_FILES)}) nor a full checkpoint "
                              "(config.json + *.safetensors)", where=str(directory),
                              hint="give the folder peft, LLaMA-Factory or save_pretrained wrote")
    lora = read_adapter(directory, name=f"imported-{domain}") if adapter else None
    backend = backend_for(config)
    data = data or prepare_data(config)
    base = ensure_model(config, store, base_spec(config), data=data)
    key = import_key(domain, base.checkpoint_sha256)
    existing = store.find_model(key)
    if existing is not None and existing.status == "finished" and not force:
        raise DmoError(f"domain {domain!r} already has an imported expert (model {existing.id})", where="--domain",
                       hint="pass --force to replace it")
    base_path = Path(base.checkpoint_uri)
    started = time.perf_counter()
    if lora is not None:
        _check_declared_base(lora.base_model, base_path, backend, directory)
        verified = _verify_adapter(config, backend, base_path, lora)
        sources = {name: file_sha256(directory / name) for name in ADAPTER_FILES}
        target = _target(config, domain, sources)
        copied = _copy_verified(directory, target, sources)
    else:
        # The checkpoint's own files only (no trainer state, no pickles: never loaded), copied first and
        # verified as stored, so what is checked is what later searches merge.
        sources = {name: file_sha256(directory / name) for name in _checkpoint_files(directory)}
        target = _target(config, domain, sources)
        copied = _copy_verified(directory, target, sources)
    try:
        if lora is None:
            try:
                verified = _verify_checkpoint(config, backend, base_path, target)
            except DmoError as error:  # name the user's folder, not our copy of it
                raise type(error)(error.message, where=(error.where or "").replace(str(target), str(directory)),
                                  hint=error.hint) from None
        dev = evaluate(verified.model, data, benchmarks_for(data.names, "dev"), backend=backend,
                       max_new_tokens=config.evaluation.max_new_tokens, batch_size=config.evaluation.batch_size,
                       limit=config.evaluation.dev_limit)
        return record_imported(
            config, store, key=key, domain=domain, base=base, finetune=verified.form,
            training={"imported": str(directory.resolve()), "form": verified.form, **verified.training},
            efficiency=backend.efficiency(backend.model_config(config, data.encoder)),
            checkpoint=target.resolve(), sha256=total_sha256(sources),
            metrics={"dev": dev.to_dict(), "imported_from": str(directory.resolve())},
            duration_s=time.perf_counter() - started, replace=force,
        )
    except BaseException:
        if copied:
            shutil.rmtree(target, ignore_errors=True)
        raise


def _target(config: DmoConfig, domain: str, sources: dict[str, str]) -> Path:
    return config.project.workdir / "models" / f"imported-{domain}-{total_sha256(sources)[:12]}"


def _verify_adapter(config: DmoConfig, backend, base_path: Path, expert) -> _Verified:
    from dmo.merging.factored import FactoredBank

    model = backend.proxy_model(config, base_path).float().eval()
    # Building the bank checks every name and shape against the base, and the frozen vision tower.
    bank = FactoredBank({n: t.detach().clone() for n, t in model.state_dict().items()}, [expert],
                        exclude=tuple(backend.merge_exclude(base_path) if config.search.merge.exclude is None
                                      else config.search.merge.exclude))
    bank.load_into(model, [1.0])
    return _Verified(model, "lora", {
        "declared_base": expert.base_model, "r": max(f.rank for f in expert.factors.values()),
        "adapted_matrices": len(expert.factors), "trained_in_full": sorted(expert.full)})


def _is_full_checkpoint(directory: Path) -> bool:
    return directory.is_dir() and (directory / "config.json").is_file() and any(directory.glob("*.safetensors"))


# What a trainer writes beside a checkpoint and no merge reads: pickles (training_args.bin, optimizer.pt,
# rng_state.pth, pickled weight copies) and training state. Sub-folders (checkpoint-500/) are not copied either.
_NOT_CHECKPOINT = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
_TRAINER_STATE = frozenset({"trainer_state.json", "all_results.json", "train_results.json", "eval_results.json"})


def _checkpoint_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.is_file() and not p.name.lower().endswith(_NOT_CHECKPOINT)
                  and p.name not in _TRAINER_STATE and not p.name.startswith("."))


def _verify_checkpoint(config: DmoConfig, backend, base_path: Path, directory: Path) -> _Verified:
    """A full checkpoint must pass the merge guard, be routed as the project routes, and hold exactly the
    proxy model's tensors and shapes."""
    backend.check_compatible(base_path, [directory])
    model = backend.proxy_model(config, base_path).float().eval()
    expected = model.state_dict()
    state = backend.state_dict(directory)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing and all(".router." in name for name in missing) and not unexpected:
        raise CheckpointError(f"has no p-MoD routers, and this project routes its layers ({len(missing)} router "
                              f"tensors, e.g. {missing[0]})", where=str(directory),
                              hint="experts of one search share one routing: set model.mod.schedule: dense to search "
                              "unrouted experts, or import experts trained with the project's MoD settings")
    reshaped = sorted(n for n in set(expected) & set(state) if tuple(expected[n].shape) != tuple(state[n].shape))
    if missing or unexpected or reshaped:
        parts = [f"{label} {', '.join(names[:3])}" + (" …" if len(names) > 3 else "")
                 for label, names in (("missing", missing), ("unexpected", unexpected), ("other shape", reshaped))
                 if names]
        raise CheckpointError(f"its tensors do not match the base's: {'; '.join(parts)}", where=str(directory),
                              hint="was it trained from another base model?")
    backend.check_routing(model, directory)
    model.load_state_dict(state)
    return _Verified(model, "full", {"tensors": len(state), "files": sum(p.is_file() for p in directory.iterdir())})


def _check_declared_base(declared: str | None, base_path: Path, backend, directory: Path) -> None:
    """Shapes cannot tell two bases of one architecture apart; the base peft recorded can, when it is a
    local checkpoint. A hub name (``llava-hf/llava-1.5-7b-hf``) cannot be checked offline and is only recorded."""
    if declared is None or not Path(declared).is_dir() or Path(declared).resolve() == base_path.resolve():
        return
    if backend.fingerprint(Path(declared)) != backend.fingerprint(base_path):
        raise CheckpointError(f"was trained from {declared}, not from this project's base {base_path}",
                              where=f"{directory / ADAPTER_CONFIG}: base_model_name_or_path",
                              hint="import it into a project whose model.path is that base")


def _copy_verified(source: Path, target: Path, sources: dict[str, str]) -> bool:
    """The expert's files into ``target`` (staged, then renamed), hashes checked; False when already there."""
    if target.is_dir() and tree_sha256(target) == total_sha256(sources):
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name, sha256 in sources.items():
            shutil.copyfile(source / name, staging / name)
            if file_sha256(staging / name) != sha256:
                raise CheckpointError("changed while it was copied", where=str(source / name), hint="import it again")
        if target.exists():
            shutil.rmtree(target)
        os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True
