"""The one place that writes and reads checkpoints.

A checkpoint is a Hugging Face directory (`config.json`, `model.safetensors`,
tokenizer files, ...) plus `dmo_manifest.json` with the sha256 of every file.
Writing goes to a hidden sibling (`.tmp-<name>-<random>`), is fsynced, then
renamed into place, so a crash never leaves a half-written checkpoint under
the final name. Reading verifies the hashes and refuses pickle files: a
checkpoint from a shared cluster directory must not be able to run code.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from transformers.utils import logging as hf_logging

from dmo.errors import CheckpointError, ConfigError
from dmo.files import file_mode, file_sha256, total_sha256, write_failure
from dmo.models.configuration_mod_mllm import ModMLLMConfig
from dmo.models.modeling_mod_mllm import ModMLLMForCausalLM

MANIFEST_NAME = "dmo_manifest.json"
MANIFEST_FORMAT = 1
# Formats that unpickle on load (torch.load, pickle): refused whatever their hash.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
# Files that say how a checkpoint was made, not what it computes. Re-making a base with the same
# weights rewrites them (a new training key, new timings), and must not turn the base into another
# model for the experts trained from it, so the model fingerprint leaves them out.
TRAINING_RECORDS = frozenset({"dmo_training.json", "training_metrics.jsonl"})


@dataclass(frozen=True)
class Manifest:
    files: Mapping[str, str] = field(default_factory=dict)  # relative posix path -> sha256
    total_sha256: str = ""

    @classmethod
    def of(cls, files: Mapping[str, str]) -> Manifest:
        return cls(dict(sorted(files.items())), total_sha256(files))

    @property
    def model_sha256(self) -> str:
        """sha256 of what defines the model (weights, config, tokenizer): the base fingerprint experts
        record. ``total_sha256`` (every file) is the integrity check."""
        return total_sha256({name: sha for name, sha in self.files.items() if name not in TRAINING_RECORDS})

    def to_json(self) -> str:
        payload = {"format": MANIFEST_FORMAT, "files": dict(self.files), "total_sha256": self.total_sha256}
        return json.dumps(payload, indent=2, sort_keys=True) + "\n"


# --------------------------------------------------------------------------- hashing


def _content_files(directory: Path) -> list[str]:
    """Relative posix paths of every file except the manifest."""
    names = []
    for path in directory.rglob("*"):
        if path.is_file() or path.is_symlink():
            name = path.relative_to(directory).as_posix()
            if name != MANIFEST_NAME:
                names.append(name)
    return sorted(names)


def _hash_directory(directory: Path) -> dict[str, str]:
    return {name: file_sha256(directory / name) for name in _content_files(directory)}


def checkpoint_sha256(path: str | Path) -> str:
    """Fingerprint of a checkpoint's content (the manifest's total), computed from disk."""
    directory = _existing_directory(path)
    return total_sha256(_hash_directory(directory))


# --------------------------------------------------------------------------- checks


def _existing_directory(path: str | Path) -> Path:
    directory = Path(path)
    if not directory.is_dir():
        raise CheckpointError(
            "no checkpoint directory here", where=str(directory), hint="pass a directory written by dmo"
        )
    return directory


def refuse_pickles(directory: Path) -> None:
    """Raise CheckpointError naming the first pickle-based file in `directory`."""
    for name in _content_files(directory):
        if name.lower().endswith(PICKLE_SUFFIXES):
            raise CheckpointError(
                "pickle-based weights are refused (safetensors only)",
                where=str(directory / name),
                hint="re-save the model with save_pretrained, which writes .safetensors",
            )


def read_manifest(path: str | Path) -> Manifest:
    directory = _existing_directory(path)
    manifest_path = directory / MANIFEST_NAME
    if not manifest_path.is_file():
        raise CheckpointError(
            f"no {MANIFEST_NAME}",
            where=str(directory),
            hint="not written by dmo.models.checkpoint, or copied incompletely",
        )
    try:
        payload = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = {str(k): str(v) for k, v in payload["files"].items()}
        total = str(payload["total_sha256"])
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise CheckpointError(f"unreadable manifest: {error}", where=str(manifest_path)) from error
    return Manifest(files, total)


def verify_checkpoint(path: str | Path) -> Manifest:
    """Check every file against the manifest; raise CheckpointError naming the first bad one."""
    directory = _existing_directory(path)
    manifest = read_manifest(directory)
    if total_sha256(manifest.files) != manifest.total_sha256:
        raise CheckpointError(
            "manifest total does not match its file list", where=str(directory / MANIFEST_NAME)
        )
    on_disk = set(_content_files(directory))
    for name, expected in manifest.files.items():
        if name not in on_disk:
            raise CheckpointError("file listed in the manifest is missing", where=str(directory / name))
        if file_sha256(directory / name) != expected:
            raise CheckpointError(
                "sha256 does not match the manifest (corrupt, truncated or modified)",
                where=str(directory / name),
            )
    unlisted = sorted(on_disk - set(manifest.files))
    if unlisted:
        raise CheckpointError("file not in the manifest", where=str(directory / unlisted[0]))
    return manifest


# --------------------------------------------------------------------------- writing


@contextlib.contextmanager
def _quiet_progress_bars() -> Iterator[None]:
    """save_pretrained draws a progress bar per call; worker logs do not need one per expert."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _fsync_path(path: Path) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(directory: Path) -> None:
    for path in sorted(directory.rglob("*"), reverse=True):  # files before their directories
        _fsync_path(path)
    _fsync_path(directory)


def _check_extra_names(extra_files: Mapping[str, bytes | str]) -> None:
    for name in extra_files:
        pure = Path(name)
        if pure.is_absolute() or ".." in pure.parts or name in ("", MANIFEST_NAME) or "\\" in name:
            raise CheckpointError(
                f"bad extra file name {name!r}",
                where="save_checkpoint(extra_files)",
                hint=f"use a relative name inside the checkpoint, not {MANIFEST_NAME}",
            )
        if name.lower().endswith(PICKLE_SUFFIXES):
            raise CheckpointError(f"{name!r} would be refused on load", where="save_checkpoint(extra_files)")


def _is_replaceable(directory: Path) -> bool:
    """Only an old checkpoint (or an empty directory) may be replaced; never a user's folder."""
    return (directory / MANIFEST_NAME).is_file() or not any(directory.iterdir())


def check_replaceable(out_dir: Path) -> None:
    """Raise CheckpointError unless a checkpoint may be written at `out_dir` (nothing there, an empty
    folder or an old checkpoint); a command that trains first checks before it spends the time."""
    there = out_dir.exists() or out_dir.is_symlink()
    if there and (not out_dir.is_dir() or out_dir.is_symlink() or not _is_replaceable(out_dir)):
        raise CheckpointError(
            "exists and is not a dmo checkpoint; refusing to replace it",
            where=str(out_dir),
            hint="choose another output directory or remove it",
        )


def _move_into_place(staged: Path, out_dir: Path) -> None:
    parent = out_dir.parent
    check_replaceable(out_dir)
    if out_dir.exists():
        old = parent / f".old-{out_dir.name}-{secrets.token_hex(4)}"
        os.rename(out_dir, old)
        try:
            os.rename(staged, out_dir)
        except BaseException:
            os.rename(old, out_dir)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staged, out_dir)
    _fsync_path(parent)


def save_checkpoint(
    model: ModMLLMForCausalLM,
    out_dir: str | Path,
    *,
    tokenizer: Any | None = None,
    extra_files: Mapping[str, bytes | str] | None = None,
    save_kwargs: Mapping[str, Any] | None = None,
) -> Manifest:
    """Write `model` (+ tokenizer, + extra files) to `out_dir` atomically; return its manifest.

    `tokenizer` is a transformers tokenizer (anything with save_pretrained).
    An existing checkpoint at `out_dir` is replaced; on any failure the
    temporary directory is removed and `out_dir` is left as it was.
    """
    out_dir = Path(out_dir).absolute()
    extra_files = dict(extra_files or {})
    _check_extra_names(extra_files)
    staged = out_dir.parent / f".tmp-{out_dir.name}-{secrets.token_hex(4)}"
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staged.mkdir()
        with _quiet_progress_bars():
            model.save_pretrained(staged, **dict(save_kwargs or {}))
        if tokenizer is not None:
            tokenizer.save_pretrained(staged)
        for name, content in extra_files.items():
            target = staged / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, str):
                target.write_text(content, encoding="utf-8")
            else:
                target.write_bytes(content)
        refuse_pickles(staged)
        mode = file_mode()  # safetensors writes 0600; the checkpoint's files read like any other
        for written in staged.rglob("*"):
            if written.is_file():
                os.chmod(written, mode)
        manifest = Manifest.of(_hash_directory(staged))
        (staged / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
        _fsync_tree(staged)
        _move_into_place(staged, out_dir)
    except BaseException as error:
        shutil.rmtree(staged, ignore_errors=True)
        if isinstance(error, (OSError, SafetensorError)):  # safetensors reports EFBIG/ENOSPC as its own error
            raise CheckpointError(
                f"could not write checkpoint: {write_failure(error)}",
                where=str(out_dir),
                hint="check that the directory is writable and the disk has space",
            ) from error
        raise
    return manifest


def copy_checkpoint(source: str | Path, out_dir: str | Path) -> Manifest:
    """Copy a verified checkpoint to `out_dir` atomically (same rules as save_checkpoint: an old
    checkpoint there is replaced, anything else is refused); the copy is verified before it is moved in."""
    verify_checkpoint(source)
    out_dir = Path(out_dir).absolute()
    staged = out_dir.parent / f".tmp-{out_dir.name}-{secrets.token_hex(4)}"
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, staged)
        manifest = verify_checkpoint(staged)
        _fsync_tree(staged)
        _move_into_place(staged, out_dir)
    except BaseException as error:
        shutil.rmtree(staged, ignore_errors=True)
        if isinstance(error, OSError):
            raise CheckpointError(f"could not copy the checkpoint: {write_failure(error)}", where=str(out_dir),
                                  hint="check that the directory is writable and the disk has space") from error
        raise
    return manifest


# --------------------------------------------------------------------------- reading


def read_state_dict(path: str | Path, verify: bool = True) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint, without building a model (merging reads experts this way)."""
    directory = _existing_directory(path)
    refuse_pickles(directory)
    if verify:
        verify_checkpoint(directory)
    shards = sorted(directory.glob("*.safetensors"))
    if not shards:
        raise CheckpointError("no .safetensors weights", where=str(directory))
    state: dict[str, torch.Tensor] = {}
    for shard in shards:
        try:
            tensors = load_file(shard)
        except Exception as error:  # SafetensorError, OSError: a truncated or foreign file
            raise CheckpointError(
                f"cannot read safetensors file ({error})", where=str(shard), hint="the file is truncated or corrupt"
            ) from error
        state.update(tensors)
    return state


def read_config(path: str | Path) -> ModMLLMConfig:
    directory = _existing_directory(path)
    config_path = directory / "config.json"
    try:
        payload = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CheckpointError(f"unreadable config: {error}", where=str(config_path)) from error
    if not isinstance(payload, dict) or payload.get("model_type") != ModMLLMConfig.model_type:
        found = payload.get("model_type") if isinstance(payload, dict) else None
        raise CheckpointError(
            f"model_type is {found!r}, expected {ModMLLMConfig.model_type!r}", where=str(config_path)
        )
    try:
        return ModMLLMConfig.from_dict(payload)
    except ConfigError as error:
        raise CheckpointError(error.render(), where=str(config_path)) from error


def load_checkpoint(path: str | Path, *, verify: bool = True) -> ModMLLMForCausalLM:
    """The model of a checkpoint, in eval mode; hashes verified unless `verify=False`."""
    directory = _existing_directory(path)
    state = read_state_dict(directory, verify=verify)
    config = read_config(directory)
    model = ModMLLMForCausalLM(config)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatch
        raise CheckpointError(
            f"weights do not fit config.json: {str(error).splitlines()[-1].strip()}", where=str(directory)
        ) from error
    missing = [name for name in missing if name not in model.all_tied_weights_keys]
    if missing or unexpected:
        problems = [f"missing {name}" for name in missing[:3]]
        problems += [f"unexpected {name}" for name in unexpected[:3]]
        raise CheckpointError(
            f"weights do not match config.json: {', '.join(problems)}",
            where=str(directory),
            hint="the config and the weights come from different models",
        )
    if model.all_tied_weights_keys:
        model.tie_weights()
    return model.eval()


__all__ = [
    "MANIFEST_NAME",
    "Manifest",
    "checkpoint_sha256",
    "load_checkpoint",
    "read_config",
    "read_manifest",
    "read_state_dict",
    "refuse_pickles",
    "save_checkpoint",
    "verify_checkpoint",
]
