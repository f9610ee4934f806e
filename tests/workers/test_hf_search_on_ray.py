"""A user's Hugging Face checkpoint through the whole CLI on a local Ray, per architecture.

`model: {backend: hf, path: DIR}` over a tiny random LLaVA or Qwen2-VL made here:
`dmo search` registers the checkpoint as the base (no base training), trains
one routed expert per domain on Ray workers, merges proxies and scores them;
`dmo best` reads the mixture back and `dmo export` writes a LLaMA-Factory
recipe whose weights are that mixture's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hf_support import BUILDERS, hf_project

from storage import Store

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _dmo(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dmo", *map(str, args)], check=False, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=400)


@pytest.mark.parametrize("arch", list(BUILDERS))
def test_search_best_and_export_on_a_local_checkpoint(tmp_path, arch):
    checkpoint = BUILDERS[arch](tmp_path / "checkpoint")
    data = yaml.safe_load(hf_project((REPO / "configs" / "tiny.yaml").read_text(), checkpoint, tmp_path / "work"))
    data["domains"] = data["domains"][:2]  # two experts keep the test short; the merge path is the same
    data["training"]["expert"]["steps"] = 4
    config = tmp_path / "hf.yaml"
    config.write_text(yaml.safe_dump(data))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "COLUMNS": "160"}
    env.pop("DMO_STORE_URL", None)

    searched = _dmo("search", "run", config, "--trials", "3", "--json", cwd=tmp_path, env=env)
    assert searched.returncode == 0, searched.stderr[-3000:]
    report = json.loads(searched.stdout)
    assert report["search"]["trials"]["complete"] == 3
    assert [e["domain"] for e in report["experts"]] == [d["name"] for d in data["domains"]]
    assert all(0 < e["efficiency"]["flops_ratio"] < 1 for e in report["experts"])  # routed layers save FLOPs

    with Store.open_existing(f"sqlite:///{tmp_path / 'work' / 'dmo.sqlite'}") as store:
        (base,) = [m for m in store.list_models() if m.kind == "base"]
    assert Path(base.checkpoint_uri) == checkpoint  # the user's checkpoint itself: registered, not trained

    best = _dmo("best", "-c", config, "--json", cwd=tmp_path, env=env)
    assert best.returncode == 0, best.stderr[-2000:]
    weights = json.loads(best.stdout)["trials"][0]["weights"]
    assert set(weights) == {d["name"] for d in data["domains"]} and sum(weights.values()) == pytest.approx(1)

    recipe = tmp_path / "recipe"
    exported = _dmo("export", str(report["search"]["id"]), "-c", config, "--format", "llamafactory", "--out", recipe, "--json", cwd=tmp_path,
                    env=env)
    assert exported.returncode == 0, exported.stderr[-2000:]
    written = json.loads(exported.stdout)
    assert set(written["counts"]) == set(weights) and sum(written["counts"].values()) == written["budget"]
    assert (recipe / "dataset_info.json").is_file()


def _adapter_from_a_separate_training(config_path: Path, domain: str, out: Path, *, steps: int = 3) -> Path:
    """What a user brings: peft LoRA trained outside dmo (here three AdamW steps on one batch), save_pretrained."""
    import torch

    from dmo.config import load_config
    from dmo.data.encoding import training_batch
    from dmo.data.prepared import prepare_data
    from dmo.models.backends import backend_for
    from dmo.training.lora import add_lora

    config = load_config(config_path)
    backend, data = backend_for(config), prepare_data(config)
    targets, in_full = backend.lora_targets(config.training.expert.lora)
    model = add_lora(backend.initial_model(config, data.encoder, None, seed=1), config.training.expert.lora,
                     targets=targets, modules_to_save=in_full)
    batch = training_batch(data.encoded(domain, "train"), list(range(8)), data.pad_id)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(steps):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out)
    return out


def test_an_imported_adapter_is_merged_beside_a_lora_expert_dmo_trains(tmp_path, dmo_cli, monkeypatch):
    """The import's checks run in this process; the search that merges it runs on Ray, as a user's does."""
    from hf_support import tiny_llava, tiny_qwen2_vl

    checkpoint = tiny_llava(tmp_path / "checkpoint")
    data = yaml.safe_load(hf_project((REPO / "configs" / "tiny.yaml").read_text(), checkpoint, tmp_path / "work"))
    data["domains"] = data["domains"][:2]
    data["training"]["expert"].update(steps=4, finetune="lora")
    config = tmp_path / "hf.yaml"
    config.write_text(yaml.safe_dump(data))
    imported, trained = (d["name"] for d in data["domains"])
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "COLUMNS": "160"}
    env.pop("DMO_STORE_URL", None)
    adapter = _adapter_from_a_separate_training(config, imported, tmp_path / "adapter")
    store_url = f"sqlite:///{tmp_path / 'work' / 'dmo.sqlite'}"

    # Refused, naming what is wrong, and nothing recorded: an adapter of another base, a pickle.
    other = tmp_path / "other.yaml"
    other.write_text(hf_project((REPO / "configs" / "tiny.yaml").read_text(), tiny_qwen2_vl(tmp_path / "qwen"),
                                tmp_path / "qwen-work"))
    foreign = _adapter_from_a_separate_training(other, imported, tmp_path / "foreign")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "adapter_config.json").write_bytes((adapter / "adapter_config.json").read_bytes())
    (pickled / "adapter_model.bin").write_bytes(b"not loaded")
    monkeypatch.delenv("DMO_STORE_URL", raising=False)
    for bad, message in ((foreign, f"was trained from {tmp_path / 'qwen'}, not from this project's base"),
                         (pickled, "pickle adapter")):
        dmo_cli("expert", "import", bad, "--domain", imported, "-c", config).refused(message)
    with Store.open_existing(store_url) as store:
        assert [m.kind for m in store.list_models()] == ["base"]  # the base is registered; no expert row
    assert not list((tmp_path / "work" / "models").glob("imported-*"))

    done = dmo_cli("expert", "import", adapter, "--domain", imported, "-c", config, "--json")
    assert done.code == 0, done.err[-3000:]
    row = json.loads(done.out)
    assert (row["kind"], row["domain"]) == ("expert", imported)
    assert Path(row["checkpoint"]).parent == (tmp_path / "work" / "models").resolve()
    dmo_cli("expert", "import", adapter, "--domain", imported, "-c", config).refused("already has an imported expert")

    searched = _dmo("search", "run", config, "--trials", "3", "--json", cwd=tmp_path, env=env)
    assert searched.returncode == 0, searched.stderr[-3000:]
    report = json.loads(searched.stdout)
    assert report["search"]["trials"]["complete"] == 3
    experts = {e["domain"]: e for e in report["experts"]}
    assert experts[imported]["id"] == row["id"]  # the import is the domain's expert: nothing trained for it
    assert experts[trained]["id"] != row["id"]
    with Store.open_existing(store_url) as store:
        assert store.get_model(experts[trained]["id"]).finetune == "lora"
    best = dmo_cli("best", "-c", config, "--json")
    assert best.code == 0, best.err[-2000:]
    assert set(json.loads(best.out)["trials"][0]["weights"]) == {imported, trained}
    dmo_cli("export", str(report["search"]["id"]), "-c", config, "--format", "mergekit", "--out",
            tmp_path / "proxy.yml").refused("is a LoRA adapter")
    assert not (tmp_path / "proxy.yml").exists()
    # The copy is hash-checked whenever it is used: a changed file is named, never merged silently.
    with (Path(row["checkpoint"]) / "adapter_config.json").open("a") as changed:
        changed.write(" ")
    dmo_cli("train", "expert", imported, "-c", config).refused("the imported expert's files changed or are gone")


def _full_checkpoint_from_a_separate_training(config_path: Path, domain: str, out: Path) -> Path:
    """What a user brings from a full fine-tune elsewhere: transformers' own model, no dmo routing, three AdamW
    steps on one batch of the domain, saved by save_pretrained in transformers' default layout."""
    import torch
    from transformers import AutoModelForImageTextToText

    from dmo.config import load_config
    from dmo.data.encoding import training_batch
    from dmo.data.prepared import prepare_data

    config = load_config(config_path)
    data = prepare_data(config)
    model = AutoModelForImageTextToText.from_pretrained(str(config.model.path), local_files_only=True)
    batch = training_batch(data.encoded(domain, "train"), list(range(8)), data.pad_id)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(3):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out)
    (out / "training_args.bin").write_bytes(b"a pickle the Trainer writes")  # beside every Trainer checkpoint
    (out / "checkpoint-3").mkdir()
    (out / "checkpoint-3" / "optimizer.pt").write_bytes(b"optimizer state")
    return out


def test_an_imported_full_checkpoint_is_merged_beside_an_expert_dmo_trains(tmp_path, dmo_cli, monkeypatch):
    from hf_support import tiny_qwen2_vl

    checkpoint = tiny_qwen2_vl(tmp_path / "checkpoint")

    def project(name: str, **model_fields) -> Path:
        data = yaml.safe_load(hf_project((REPO / "configs" / "tiny.yaml").read_text(), checkpoint, tmp_path / name))
        data["domains"] = data["domains"][:2]
        data["training"]["expert"]["steps"] = 4
        data["model"].update(model_fields)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    config = project("work", mod={"schedule": "dense"})  # experts trained without p-MoD merge with unrouted ones
    routed = project("routed")  # the default test project routes layers 1 and 2
    imported, trained = (d["name"] for d in yaml.safe_load(config.read_text())["domains"])
    full = _full_checkpoint_from_a_separate_training(config, imported, tmp_path / "full")

    # Refused with the reason, nothing recorded: no routers for a routed project; another base; pickled weights.
    other = tiny_qwen2_vl(tmp_path / "other-base", layers=2)
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_bytes((full / "config.json").read_bytes())
    (pickled / "pytorch_model.bin").write_bytes(b"never loaded")
    monkeypatch.delenv("DMO_STORE_URL", raising=False)
    for bad, project_path, message in ((full, routed, "has no p-MoD routers, and this project routes its layers"),
                                       (other, config, "config setting text_config"),
                                       (pickled, config, "is neither a peft LoRA adapter")):
        dmo_cli("expert", "import", bad, "--domain", imported, "-c", project_path).refused(message, str(bad))
    for workdir in ("work", "routed"):
        with Store.open_existing(f"sqlite:///{tmp_path / workdir / 'dmo.sqlite'}") as store:
            assert [m.kind for m in store.list_models()] == ["base"]
        assert not list((tmp_path / workdir / "models").glob("imported-*"))

    done = dmo_cli("expert", "import", full, "--domain", imported, "-c", config, "--json")
    assert done.code == 0, done.err[-3000:]
    row = json.loads(done.out)
    copy = Path(row["checkpoint"])
    # The checkpoint's files, not the Trainer's pickles and state beside it
    assert {p.name for p in copy.iterdir()} == {p.name for p in full.iterdir() if p.is_file()} - {"training_args.bin"}
    assert (copy / "model.safetensors").read_bytes() == (full / "model.safetensors").read_bytes()

    # The search in this process (the Ray path of an import is the adapter test's): the import is the
    # domain's expert, the other domain's is trained, and proxies merge both.
    from search_support import configured

    from dmo.config import load_config
    from dmo.data.prepared import prepare_data
    from dmo.search.pool import LocalPool
    from dmo.search.proxy import ProxyEvaluator
    from dmo.search.searches import create_search, proxy_source, run_search
    from dmo.training.jobs import base_spec, ensure_model, expert_spec

    project_config = configured(load_config(config), search__trials=3)
    with Store.open_existing(f"sqlite:///{tmp_path / 'work' / 'dmo.sqlite'}") as store:
        data = prepare_data(project_config)
        base = ensure_model(project_config, store, base_spec(project_config), data=data)
        experts = {d: ensure_model(project_config, store, expert_spec(project_config, d), base=base, data=data)
                   for d in project_config.domain_names}
        assert experts[imported].id == row["id"] and experts[trained].id != row["id"]
        assert store.get_model(row["id"]).finetune == "full"
        search = create_search(store, project_config, base=base, experts=experts)
        run_search(store, search, LocalPool(ProxyEvaluator(proxy_source(store, search), data=data)))
        assert store.trial_counts(search.id) == {"complete": 3}
    best = dmo_cli("best", "-c", config, "--json")
    assert best.code == 0, best.err[-2000:]
    assert set(json.loads(best.out)["trials"][0]["weights"]) == {imported, trained}
