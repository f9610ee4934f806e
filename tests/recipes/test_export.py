from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from dmo.data import read_jsonl
from dmo.errors import DmoError
from dmo.recipes import export_recipe, interleave_probs





@pytest.mark.parametrize("weights", [[1 / 3] * 3, [0.1, 0.2, 0.7], [0.123456789, 0.5, 0.376543211], [1.0, 0.0]])
def test_interleave_probs_sum_exactly_to_one(weights):
    text = interleave_probs(weights)
    parts = text.split(",")
    assert len(parts) == len(weights)
    assert sum(Decimal(p) for p in parts) == 1
    assert all(abs(float(p) - w) <= 1e-6 for p, w in zip(parts, weights))


def test_llamafactory_recipe(tmp_path, tiny_config, tiny_store, finished_search):
    search, _ = finished_search
    path = Path(export_recipe(tiny_store, search.id, fmt="llamafactory", budget=1000, out=tmp_path / "train.yaml").path)
    recipe = yaml.safe_load(path.read_text())
    assert recipe["mix_strategy"] == "interleave_under"
    datasets = recipe["dataset"].split(",")
    probs = [float(p) for p in recipe["interleave_probs"].split(",")]
    assert len(probs) == len(datasets) == 3
    assert sum(Decimal(p) for p in recipe["interleave_probs"].split(",")) == 1
    best = tiny_store.best_trials(search.id, top_k=1)[0]
    assert probs == pytest.approx([best.weights[d] for d in search.domains], abs=1e-6)
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    for name in datasets:
        assert (tmp_path / info[name]["file_name"]).is_file()
        assert info[name]["formatting"] == "sharegpt"
    assert recipe["max_steps"] * recipe["per_device_train_batch_size"] >= 1000


def test_json_recipe_counts_sum_to_budget(tmp_path, tiny_config, tiny_store, finished_search):
    search, _ = finished_search
    recipe_row = export_recipe(tiny_store, search.id, fmt="json", budget=1001, out=tmp_path / "m.json")
    path = Path(recipe_row.path)
    recipe = json.loads(path.read_text())
    assert sum(recipe["counts"].values()) == 1001
    assert recipe["provenance"]["search_id"] == search.id
    assert len(recipe["provenance"]["experts"]) == 3
    assert all("flops_ratio" in e["efficiency"] for e in recipe["provenance"]["experts"])
    assert recipe_row.search_id == search.id and recipe_row.budget == 1001
    assert recipe_row.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_jsonl_mixture_has_the_counts_it_claims(tmp_path, tiny_config, tiny_store, finished_search):
    search, _ = finished_search
    counts = json.loads(Path(export_recipe(tiny_store, search.id, fmt="json", budget=300, out=tmp_path / "m.json").path).read_text())["counts"]
    path = Path(export_recipe(tiny_store, search.id, fmt="jsonl", budget=300, out=tmp_path / "mix.jsonl").path)
    questions = {d: {s.question for s in tiny_config_domain(tiny_config, d)} for d in search.domains}
    samples = read_jsonl(path, domain="mix")
    assert len(samples) == 300
    got = {d: sum(s.question in questions[d] for s in samples) for d in search.domains}
    assert got == counts


def tiny_config_domain(config, name):
    from dmo.data import load_domains

    return load_domains(config)[name].train


def test_mergekit_recipe_reproduces_the_proxy(tmp_path, tiny_config, tiny_store, finished_search):

    from dmo.models.checkpoint import read_state_dict

    search, evaluator = finished_search
    path = Path(export_recipe(tiny_store, search.id, fmt="mergekit", budget=10, out=tmp_path / "proxy.yml").path)
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    from dmo.models.auto import register_auto

    register_auto()
    run_merge(MergeConfiguration.model_validate(yaml.safe_load(path.read_text())), str(tmp_path / "out"), options=MergeOptions(device="cpu", copy_tokenizer=False))
    merged = read_state_dict(tmp_path / "out", verify=False) if (tmp_path / "out" / "dmo_manifest.json").exists() else _load_plain(tmp_path / "out")
    best = tiny_store.best_trials(search.id, top_k=1)[0]
    ours = evaluator.bank.merged_state_dict([best.weights[d] for d in search.domains], evaluator.method)
    assert set(ours) <= set(merged)
    assert max(float((merged[k].float() - v).abs().max()) for k, v in ours.items()) <= 1e-6


def _load_plain(folder):
    from safetensors.torch import load_file

    tensors = {}
    for file in folder.glob("*.safetensors"):
        tensors.update(load_file(str(file)))
    return tensors


def test_existing_output_needs_force(tmp_path, tiny_config, tiny_store, finished_search):
    search, _ = finished_search
    out = tmp_path / "m.json"
    out.write_text("keep me")
    with pytest.raises(DmoError, match="exists"):
        export_recipe(tiny_store, search.id, fmt="json", budget=10, out=out)
    assert out.read_text() == "keep me"
