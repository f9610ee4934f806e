"""Experts trained elsewhere: a peft LoRA adapter registered as a domain's expert.

``dmo expert import DIR --domain NAME`` reads the adapter (``dmo.merging.adapters``), checks it
against the project's base (every adapted matrix and fully trained tensor must exist in the base
with the factors' shapes; the vision tower must be untouched), copies its two files into the
workdir with their sha256 checked, scores it on the dev benchmarks like a trained expert, and
records it. From then on the domain's expert *is* the import: a search over this base uses it
instead of training one (:func:`imported_expert`, asked first by ``ensure_model``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

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


def import_adapter(config: DmoConfig, store: Store, directory: Path, domain: str, *, force: bool = False,
                   data: PreparedData | None = None) -> ModelRecord:
    """Verify, copy, score and record a LoRA adapter as ``domain``'s expert (nothing is stored on refusal)."""
    from dmo.evaluation import benchmarks_for, evaluate
    from dmo.merging.factored import FactoredBank
    from dmo.training.jobs import base_spec, ensure_model, record_imported

    if domain not in config.domain_names:
        raise DmoError(f"unknown domain {domain!r}", where="--domain", hint=f"configured: {', '.join(config.domain_names)}")
    directory = Path(directory)
    if not directory.is_dir() or not is_adapter(directory):
        raise CheckpointError(f"is not a peft LoRA adapter directory ({' + '.join(ADAPTER_FILES)})", where=str(directory),
                              hint="give the adapter folder peft or LLaMA-Factory saved; full checkpoints trained elsewhere cannot be imported yet")
    expert = read_adapter(directory, name=f"imported-{domain}")
    backend = backend_for(config)
    data = data or prepare_data(config)
    base = ensure_model(config, store, base_spec(config), data=data)
    key = import_key(domain, base.checkpoint_sha256)
    existing = store.find_model(key)
    if existing is not None and existing.status == "finished" and not force:
        raise DmoError(f"domain {domain!r} already has an imported expert (model {existing.id})", where="--domain",
                       hint="pass --force to replace it")
    base_path = Path(base.checkpoint_uri)
    _check_declared_base(expert.base_model, base_path, base.checkpoint_sha256, backend, directory)
    model = backend.proxy_model(config, base_path).float().eval()
    # Building the bank checks every name and shape against the base, and the frozen vision tower.
    bank = FactoredBank({n: t.detach().clone() for n, t in model.state_dict().items()}, [expert],
                        exclude=tuple(backend.merge_exclude(base_path) if config.search.merge.exclude is None
                                      else config.search.merge.exclude))
    sources = {name: file_sha256(directory / name) for name in ADAPTER_FILES}
    sha256 = total_sha256(sources)
    target = config.project.workdir / "models" / f"imported-{domain}-{sha256[:12]}"
    started = time.perf_counter()
    copied = _copy_verified(directory, target, sources)
    try:
        bank.load_into(model, [1.0])
        dev = evaluate(model, data, benchmarks_for(data.names, "dev"), backend=backend,
                       max_new_tokens=config.evaluation.max_new_tokens, batch_size=config.evaluation.batch_size,
                       limit=config.evaluation.dev_limit)
        return record_imported(
            config, store, key=key, domain=domain, base=base,
            training={"imported": str(directory.resolve()), "form": "lora", "declared_base": expert.base_model,
                      "r": max(f.rank for f in expert.factors.values()), "adapted_matrices": len(expert.factors),
                      "trained_in_full": sorted(expert.full)},
            efficiency=backend.efficiency(backend.model_config(config, data.encoder)),
            checkpoint=target.resolve(), sha256=sha256,
            metrics={"dev": dev.to_dict(), "imported_from": str(directory.resolve())},
            duration_s=time.perf_counter() - started, replace=force,
        )
    except BaseException:
        if copied:
            shutil.rmtree(target, ignore_errors=True)
        raise


def _check_declared_base(declared: str | None, base_path: Path, base_sha256: str | None, backend, directory: Path) -> None:
    """Shapes cannot tell two bases of one architecture apart; the base peft recorded can, when it is a
    local checkpoint. A hub name (``llava-hf/llava-1.5-7b-hf``) cannot be checked offline and is only recorded."""
    if declared is None or not Path(declared).is_dir() or Path(declared).resolve() == base_path.resolve():
        return
    if backend.fingerprint(Path(declared)) != base_sha256:
        raise CheckpointError(f"was trained from {declared}, not from this project's base {base_path}",
                              where=f"{directory / ADAPTER_CONFIG}: base_model_name_or_path",
                              hint="import it into a project whose model.path is that base")


def _copy_verified(source: Path, target: Path, sources: dict[str, str]) -> bool:
    """The adapter's files into ``target`` (staged, then renamed), hashes checked; False when already there."""
    if target.is_dir() and tree_sha256(target) == total_sha256(sources):
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name in ADAPTER_FILES:
            shutil.copyfile(source / name, staging / name)
            if file_sha256(staging / name) != sources[name]:
                raise CheckpointError("changed while it was copied", where=str(source / name), hint="import it again")
        if target.exists():
            shutil.rmtree(target)
        os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True
