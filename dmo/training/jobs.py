"""Train-or-reuse a base, expert or mixture model, recorded in the store.

A model's cache key hashes everything that determines its weights (data,
encoder, model and training settings, seed, initial checkpoint), so asking
for the same expert twice is a store lookup, and a retried task that finds
its own running row resumes from the checkpoint the loop left behind. What
is model-specific (building, saving, scoring) is the backend's
(:mod:`dmo.models.backends`). This module runs without Ray;
`workers/training.py` only wraps it.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dmo.config.schema import DmoConfig, TrainingSettings
from dmo.data.prepared import PreparedData, prepare_data
from dmo.errors import DmoError
from dmo.evaluation import benchmarks_for, evaluate
from dmo.mixture import Mixture
from dmo.models.backends import backend_for
from dmo.models.backends.base import ModelBackend
from dmo.training.imports import imported_expert
from dmo.training.loop import OnStep, TrainingRun, train
from dmo.training.shipped_base import check_shipped_base
from storage import ModelRecord, Store

# A trainer silent for this many heartbeats is presumed dead and its claim is taken over.
STALE_HEARTBEATS = 3
ADOPT_POLL_S = 0.2


@dataclass(frozen=True)
class ModelSpec:
    """What to train: `kind` and the data mixture over the project's domains."""

    kind: str  # "base" | "expert" | "mixture"
    mixture: Mixture
    domain: str | None = None  # experts only
    # A second model of the same mixture on another seed (validation's test–retest); 0 is the model.
    replicate: int = 0

    @property
    def name(self) -> str:
        if self.kind == "expert":
            return f"expert-{self.domain}"
        if self.kind == "mixture":
            name = "mixture-" + "-".join(f"{w:.3f}" for w in self.mixture.weights)
            return name + (f"-r{self.replicate}" if self.replicate else "")
        return "base"

    def seed(self, config: DmoConfig) -> int:
        return config.project.seed + self.replicate


def base_spec(config: DmoConfig) -> ModelSpec:
    weights = config.training.base_mixture
    if weights is None:
        return ModelSpec(kind="base", mixture=Mixture.uniform(config.domain_names))
    # Domains the section leaves out get no pretraining data, as a weight of 0 would.
    return ModelSpec(kind="base", mixture=Mixture.of(config.domain_names,
                                                     {d: weights.get(d, 0.0) for d in config.domain_names},
                                                     normalize=True))


def expert_spec(config: DmoConfig, domain: str) -> ModelSpec:
    return ModelSpec(kind="expert", mixture=Mixture.one_hot(config.domain_names, domain), domain=domain)


def mixture_spec(mixture: Mixture, replicate: int = 0) -> ModelSpec:
    return ModelSpec(kind="mixture", mixture=mixture, replicate=replicate)


def stage_settings(config: DmoConfig, kind: str) -> TrainingSettings:
    stages = config.training
    return {"base": stages.base, "expert": stages.expert, "mixture": stages.mixture_stage()}[kind]


def training_run(config: DmoConfig, spec: ModelSpec, base_sha256: str | None, key: str | None = None) -> TrainingRun:
    """How `spec` is trained: the one place that turns a config and a spec into a run."""
    return TrainingRun(
        name=spec.name,
        mixture=spec.mixture,
        settings=stage_settings(config, spec.kind),
        seed=spec.seed(config),
        base_sha256=base_sha256,
        cache_key=key,
    )


def cache_key(config: DmoConfig, spec: ModelSpec, data: PreparedData, init_sha256: str | None) -> str:
    # dmo's own model is keyed as it was before backends existed, so trained models stay cached.
    model = config.model.model_dump(mode="json", exclude={"backend"} if config.model.backend == "mod_mllm" else None)
    payload = {
        "format": 1,
        "kind": spec.kind,
        "weights": [round(w, 12) for w in spec.mixture.weights],
        "data": data.fingerprint(),
        "model": model,
        "training": stage_settings(config, spec.kind).model_dump(mode="json"),
        "seed": spec.seed(config),
        "init": init_sha256,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def initial_model(config: DmoConfig, data: PreparedData, init: Path | None, seed: int) -> nn.Module:
    """The model a run of this project starts from (its backend's)."""
    return backend_for(config).initial_model(config, data.encoder, init, seed=seed)


def ensure_model(
    config: DmoConfig,
    store: Store,
    spec: ModelSpec,
    *,
    base: ModelRecord | None = None,
    data: PreparedData | None = None,
    on_step: OnStep | None = None,
    device: torch.device | None = None,
) -> ModelRecord:
    """The finished model for `spec`: from the store when cached, else trained now, once.

    Training is claimed in the store: a second caller (another search, another
    process or Ray node) waits for the trainer that holds the claim and reuses
    its model; it takes the claim over only when that trainer's heartbeat has
    gone stale (it died), and then resumes from its resumable checkpoint. A
    pretrained base (a Hugging Face checkpoint) is registered, not trained, and
    a shipped one (``training.pretrained_base``) is checked and adopted.
    """
    backend = backend_for(config)
    if spec.kind == "base" and not backend.trains_base:
        return register_base(config, store, backend)
    data = data or prepare_data(config)
    if spec.kind == "base" and config.training.pretrained_base is not None:
        return adopt_base(config, store, backend, data, spec)
    if spec.kind != "base" and base is None:
        raise ValueError(f"a {spec.kind} model starts from a base model")
    if spec.kind == "expert" and base is not None:
        imported = imported_expert(store, spec.domain, base)  # a domain's imported expert replaces training one
        if imported is not None:
            return imported
    init = Path(base.checkpoint_uri) if base is not None and backend.trains_base else None
    key = cache_key(config, spec, data, base.checkpoint_sha256 if base is not None else None)
    settings = stage_settings(config, spec.kind)
    for name, weight in zip(data.names, spec.mixture.weights):
        if weight > 0:
            data.encoded(name, "train")  # a sample that cannot fit the model is refused before any claim
    heartbeat_s = config.training.heartbeat_s
    claim = uuid.uuid4().hex
    while True:
        cached = store.find_model(key)
        if cached is not None and cached.checkpoint_uri and backend.intact(Path(cached.checkpoint_uri),
                                                                           cached.checkpoint_sha256):
            return cached
        record = store.start_model(
            kind=spec.kind,
            config_hash=key,
            domain=spec.domain,
            base_id=base.id if base is not None else None,
            training={"settings": settings.model_dump(mode="json"), "weights": spec.mixture.as_dict(),
                      "seed": spec.seed(config)},
            finetune=settings.finetune,
            efficiency=backend.efficiency(backend.model_config(config, data.encoder)),
            claim=claim,
            stale_after_s=STALE_HEARTBEATS * heartbeat_s,
            retrain=cached is not None,  # finished, but its checkpoint is gone or changed
        )
        if record.claim_token == claim:
            break
        time.sleep(min(float(heartbeat_s), 5.0))  # another trainer holds it: wait for its model

    out_dir = config.project.workdir / "models" / f"{spec.name}-{key[:12]}"
    started = time.perf_counter()
    with Heartbeat(store, record.id, claim, every_s=heartbeat_s):
        try:
            model = backend.initial_model(config, data.encoder, init, seed=spec.seed(config))
            # Experts record the base's fingerprint, which the merge guard compares: dmo's own base is read
            # from its manifest (training record left out); a pretrained base's was stored when registered.
            run = training_run(config, spec, backend.fingerprint(init) if init is not None else
                               (base.checkpoint_sha256 if base is not None else None), key)
            result = train(run, model, data, out_dir, backend=backend, on_step=on_step, device=device)
            dev = evaluate(
                backend.load(out_dir).to(device or "cpu"),
                data,
                benchmarks_for(data.names, "dev"),
                backend=backend,
                max_new_tokens=config.evaluation.max_new_tokens,
                batch_size=config.evaluation.batch_size,
                limit=config.evaluation.dev_limit,
            )
        except BaseException as error:
            store.fail_model(record.id, f"{type(error).__name__}: {error}", claim=claim)
            raise
        return store.finish_model(
            record.id,
            checkpoint_uri=str(out_dir.resolve()),
            checkpoint_sha256=result.sha256,
            metrics={
                "final_loss": result.final_loss,
                "train_seconds": result.seconds,
                "samples_per_second": result.samples_per_second,
                "resumed_from_step": result.resumed_from_step,
                "loss_curve": [list(point) for point in result.loss_curve],
                "dev": dev.to_dict(),
            },
            duration_s=time.perf_counter() - started,
            claim=claim,
        )


def register_base(config: DmoConfig, store: Store, backend: ModelBackend) -> ModelRecord:
    """A pretrained base (a Hugging Face checkpoint) as the project's base row: nothing is trained.
    Its fingerprint keys it, and experts record it, so experts of another base are refused."""
    path = Path(config.model.path).resolve()
    fingerprint = backend.fingerprint(path)
    key = hashlib.sha256(json.dumps({"format": 1, "kind": "base", "pretrained": fingerprint,
                                     "model": config.model.model_dump(mode="json")}, sort_keys=True).encode()).hexdigest()
    cached = store.find_model(key)
    if cached is not None:
        return cached
    claim = uuid.uuid4().hex
    record = store.start_model(kind="base", config_hash=key, domain=None, base_id=None,
                               training={"pretrained": str(path)}, finetune="none",
                               efficiency=backend.efficiency(backend.model_config(config, backend.encoder(config, {}))),
                               claim=claim)
    if record.claim_token != claim:
        return store.find_model(key) or record
    return store.finish_model(record.id, checkpoint_uri=str(path), checkpoint_sha256=fingerprint, metrics={},
                              duration_s=0.0, claim=claim)


def adopt_base(config: DmoConfig, store: Store, backend: ModelBackend, data: PreparedData, spec: ModelSpec) -> ModelRecord:
    """The shipped base of ``training.pretrained_base`` as the project's base row, once it passes its checks
    (:mod:`dmo.training.shipped_base`): nothing is trained.

    Claimed like a training, so two processes adopting at once write one row, and a row left running by
    a process that died is taken over. A finished row that points at another copy of the base (another
    checkout sharing the store) is pointed at this one, which was just checked to have the same content.
    """
    shipped = check_shipped_base(config, trained_key=cache_key(config, spec, data, None))
    claim = uuid.uuid4().hex
    settings = stage_settings(config, spec.kind)
    training = {"shipped": str(shipped.path), "settings": settings.model_dump(mode="json"),
                "weights": spec.mixture.as_dict(), "seed": spec.seed(config)}  # as a trained base records them
    while True:
        cached = store.find_model(shipped.key)
        if cached is not None and cached.checkpoint_uri == str(shipped.path):
            return cached
        record = store.start_model(kind="base", config_hash=shipped.key, domain=None, base_id=None,
                                   training=training, finetune=settings.finetune,
                                   efficiency=backend.efficiency(backend.model_config(config, data.encoder)),
                                   claim=claim, stale_after_s=STALE_HEARTBEATS * config.training.heartbeat_s,
                                   retrain=cached is not None and cached.checkpoint_uri is not None)
        if record.claim_token == claim:
            return store.finish_model(record.id, checkpoint_uri=str(shipped.path), checkpoint_sha256=shipped.sha256,
                                      metrics=shipped.metrics, duration_s=0.0, claim=claim)
        time.sleep(ADOPT_POLL_S)  # another process is adopting it this moment: its row is finished in a moment


def record_imported(config: DmoConfig, store: Store, *, key: str, domain: str, base: ModelRecord, finetune: str,
                    training: dict, efficiency: dict, checkpoint: Path, sha256: str, metrics: dict, duration_s: float,
                    replace: bool) -> ModelRecord:
    """The row of an expert trained elsewhere (:mod:`dmo.training.imports` verified and copied it)."""
    claim = uuid.uuid4().hex
    record = store.start_model(kind="expert", config_hash=key, domain=domain, base_id=base.id, training=training,
                               finetune=finetune, efficiency=efficiency, claim=claim,
                               stale_after_s=STALE_HEARTBEATS * config.training.heartbeat_s, retrain=replace)
    if record.claim_token != claim:
        raise DmoError(f"another process is importing {domain}'s expert now", where="--domain")
    return store.finish_model(record.id, checkpoint_uri=str(checkpoint), checkpoint_sha256=sha256, metrics=metrics,
                              duration_s=duration_s, claim=claim)


class Heartbeat:
    """Beats a model's claim every ``every_s`` seconds from a daemon thread while its block runs."""

    def __init__(self, store: Store, model_id: int, claim: str, *, every_s: float):
        self.store, self.model_id, self.claim, self.every_s = store, model_id, claim, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-model-{model_id}", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                if not self.store.beat_model(self.model_id, self.claim):
                    return  # taken over: finish_model will refuse this trainer's result
            except Exception:  # a store outage: the next beat tries again
                continue

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
