"""Recipes: exact mixtures in a directory LLaMA-Factory reads as it stands, JSON, mergekit, JSONL.

LLaMA-Factory itself reading these recipes is tests/recipes/test_llamafactory.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from dmo.errors import DataError, DmoError
from dmo.files import tree_sha256
from dmo.recipes import ExportOptions, RunLength, export_recipe, interleave_probs
from dmo.recipes.selection import domain_order, interleaved_domains, shares


@pytest.mark.parametrize("weights", [[1 / 3] * 3, [0.1, 0.2, 0.7], [0.123456789, 0.5, 0.376543211], [1.0, 0.0]])
def test_interleave_probs_sum_exactly_to_one(weights):
    text = interleave_probs(weights)
    parts = text.split(",")
    assert len(parts) == len(weights)
    assert sum(Decimal(p) for p in parts) == 1
    assert all(abs(float(p) - w) <= 1e-6 for p, w in zip(parts, weights))


def test_max_steps_count_every_gpu_and_accumulation_and_say_the_rounding():
    run = RunLength(budget=2000, gpus=8, per_device_batch=4, grad_accum=2)
    assert (run.global_batch, run.max_steps, run.samples_seen) == (64, 32, 2048)
    assert "48 more than the budget" in run.describe()
    exact = RunLength(budget=2048, gpus=8, per_device_batch=4, grad_accum=2)
    assert exact.max_steps == 32 and "more than" not in exact.describe()


def test_a_domain_order_is_distinct_while_it_can_be_and_even_when_it_repeats():
    assert sorted(domain_order(10, 10, seed=1)) == list(range(10))
    assert len(set(domain_order(10, 7, seed=1))) == 7
    uses = Counter(domain_order(10, 25, seed=1))
    assert set(uses) == set(range(10)) and set(uses.values()) == {2, 3}


def test_interleaving_keeps_exact_counts_and_mixes_domains():
    order = list(interleaved_domains([3, 50_000, 7], seed=0))
    assert Counter(order) == {0: 3, 1: 50_000, 2: 7}
    first_half = Counter(order[: len(order) // 2])
    assert 20_000 < first_half[1] < 30_000  # spread over the file, not one domain after another


def test_interleaving_streams_a_billion_samples_past_numpy_s_hypergeometric_limit():
    """numpy refuses populations of 1e9 or more; the domain-by-domain draw keeps every block exact."""
    import itertools

    import numpy as np

    from dmo.recipes.selection import _large_multivariate_hypergeometric

    head = Counter(itertools.islice(interleaved_domains([400_000_000, 700_000_000, 5], seed=0), 200_000))
    assert sum(head.values()) == 200_000 and 0.33 < head[0] / 200_000 < 0.40  # 4/11 = 0.364
    rng, remaining = np.random.default_rng(0), np.array([600_000_000, 700_000_000, 2], dtype=np.int64)
    blocks = np.stack([_large_multivariate_hypergeometric(rng, remaining, 16_384) for _ in range(500)])
    assert (blocks.sum(axis=1) == 16_384).all() and (blocks <= remaining).all()
    assert abs(blocks[:, 0].mean() / 16_384 - 6 / 13) < 0.002


def _lf(search, store, out, *, budget=300, force=False, **options):
    return export_recipe(store, search.id, fmt="llamafactory", out=out,
                         options=ExportOptions(budget=budget, **options), force=force)


def _jsonl_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_llamafactory_recipe_directory_holds_exact_counts_of_distinct_samples(tmp_path, tiny_store, finished_search):
    search, _ = finished_search
    out = tmp_path / "recipe"
    result = _lf(search, tiny_store, out, budget=300, gpus=2, per_device_batch=4, grad_accum=3)
    recipe = yaml.safe_load((out / "recipe.yaml").read_text())
    best = tiny_store.best_trials(search.id, top_k=1)[0]
    counts = {s.domain: s.count for s in shares(search.domains, [best.weights[d] for d in search.domains], 300,
                                                 [256] * 3)}
    assert sum(counts.values()) == 300 and {s.domain: s.count for s in result.shares} == counts
    assert recipe["mix_strategy"] == "concat" and "interleave_probs" not in recipe
    assert recipe["dataset_dir"] == str(out.resolve())
    assert (recipe["per_device_train_batch_size"], recipe["gradient_accumulation_steps"], recipe["max_steps"]) == (4, 3, 13)
    info = json.loads((out / "dataset_info.json").read_text())
    assert recipe["dataset"].split(",") == [f"dmo_{d}" for d in search.domains] == list(info)
    for domain in search.domains:
        lines = _jsonl_lines(out / info[f"dmo_{domain}"]["file_name"])
        assert len(lines) == counts[domain]
        assert len({line["id"] for line in lines}) == min(counts[domain], 256)  # distinct while there are enough
        assert all((out / image).is_file() for line in lines for image in line["images"])  # media_dir = dataset_dir
    header = (out / "recipe.yaml").read_text().split("dataset_dir")[0]
    for key in ("model_name_or_path", "template", "stage", "do_train", "finetuning_type", "output_dir"):
        assert f"#   {key}:" in header
    assert f"llamafactory-cli train {out.resolve() / 'recipe.yaml'}" in header
    assert result.record.sha256 == tree_sha256(out)


def test_a_domain_smaller_than_its_share_repeats_and_is_named(tmp_path, tiny_store, finished_search):
    search, _ = finished_search
    result = _lf(search, tiny_store, tmp_path / "big", budget=2000)
    repeated = [s for s in result.shares if s.repeated]
    assert repeated and all(s.count > 256 for s in repeated)
    assert all(s.domain in " ".join(result.notes) for s in repeated)
    for share in repeated:
        ids = Counter(line["id"] for line in _jsonl_lines(tmp_path / "big" / "data" / f"{share.domain}.jsonl"))
        assert len(ids) == 256 and max(ids.values()) - min(ids.values()) <= 1


def test_interleave_strategy_is_the_reference_study_s(tmp_path, tiny_store, finished_search):
    search, _ = finished_search
    out = tmp_path / "interleave"
    _lf(search, tiny_store, out, strategy="interleave")
    recipe = yaml.safe_load((out / "recipe.yaml").read_text())
    best = tiny_store.best_trials(search.id, top_k=1)[0]
    assert recipe["mix_strategy"] == "interleave_under"
    probs = [float(p) for p in recipe["interleave_probs"].split(",")]
    assert probs == pytest.approx([best.weights[d] for d in search.domains], abs=1e-6)
    assert all(len(_jsonl_lines(out / "data" / f"{d}.jsonl")) == 256 for d in search.domains)  # whole domains


def test_an_existing_dataset_info_is_merged_and_the_user_s_entries_kept(tmp_path, tiny_store, finished_search):
    search, _ = finished_search
    out = tmp_path / "mine"
    out.mkdir()
    mine = {"my_data": {"file_name": "my.jsonl", "formatting": "sharegpt"}}
    (out / "dataset_info.json").write_text(json.dumps(mine))
    (out / "notes.txt").write_text("keep me")
    _lf(search, tiny_store, out)
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["my_data"] == mine["my_data"] and len(info) == 1 + len(search.domains)
    assert (out / "notes.txt").read_text() == "keep me"
    with pytest.raises(DataError, match="already holds a recipe"):
        _lf(search, tiny_store, out)  # a second export needs --force ...
    (out / "data" / "my.jsonl").write_text("{}\n")  # the user's own file in the folder dmo writes into
    _lf(search, tiny_store, out, force=True, budget=120)  # ... and keeps the user's entry and file
    assert json.loads((out / "dataset_info.json").read_text())["my_data"] == mine["my_data"]
    assert (out / "data" / "my.jsonl").read_text() == "{}\n"
    assert sum(len(_jsonl_lines(out / "data" / f"{d}.jsonl")) for d in search.domains) == 120


def test_relative_recipes_can_be_moved(tmp_path, tiny_store, finished_search):
    search, _ = finished_search
    _lf(search, tiny_store, tmp_path / "a" / "recipe", relative=True)
    os.rename(tmp_path / "a" / "recipe", tmp_path / "moved")
    recipe = yaml.safe_load((tmp_path / "moved" / "recipe.yaml").read_text())
    assert recipe["dataset_dir"] == "."
    for path in (tmp_path / "moved" / "data").glob("*.jsonl"):
        assert all((tmp_path / "moved" / image).is_file() for line in _jsonl_lines(path) for image in line["images"])


@pytest.mark.parametrize("relative", [False, True])
def test_the_run_command_in_the_header_survives_a_shell_for_any_folder_name(tmp_path, tiny_store, finished_search,
                                                                            relative):
    import shlex

    search, _ = finished_search
    out = tmp_path / "it's my recipes" / "recipe"
    _lf(search, tiny_store, out, relative=relative)
    (line,) = [line for line in (out / "recipe.yaml").read_text().splitlines() if "llamafactory-cli train" in line]
    words = shlex.split(line.split("Then:", 1)[1])
    if relative:
        assert words[:2] == ["cd", str(out)] and words[-1] == "recipe.yaml"
    else:
        assert words[-1] == str(out.resolve() / "recipe.yaml")


def test_json_recipe_counts_sum_to_budget(tmp_path, tiny_store, finished_search):
    search, _ = finished_search
    result = export_recipe(tiny_store, search.id, fmt="json", out=tmp_path / "m.json", options=ExportOptions(budget=1001))
    recipe = json.loads((tmp_path / "m.json").read_text())
    assert sum(recipe["counts"].values()) == 1001
    assert recipe["provenance"]["search_id"] == search.id and recipe["provenance"]["metric"] == search.metric
    assert all("flops_ratio" in e["efficiency"] for e in recipe["provenance"]["experts"])
    assert result.record.budget == 1001
    assert result.record.sha256 == hashlib.sha256((tmp_path / "m.json").read_bytes()).hexdigest()


def test_a_domain_s_size_is_counted_without_generating_it_and_matches_its_samples(tmp_path, tiny_config):
    """The JSON recipe's shares read sizes; generating every synthetic domain to count it cost the demo 4 s."""
    from dmo.recipes.sources import domain_samples, domain_size

    (tmp_path / "train.jsonl").write_text("".join(json.dumps(
        {"id": f"s{i}", "messages": [{"role": "user", "content": "what?"}, {"role": "assistant", "content": "x"}]}
    ) + "\n" for i in range(3)))
    user = tiny_config.domains[0].model_validate({"name": "mine", "source": {
        "kind": "jsonl", **{s: tmp_path / "train.jsonl" for s in ("train", "dev", "test")}}})
    for domain in (*tiny_config.domains, user):
        assert domain_size(tiny_config, domain) == len(domain_samples(tiny_config, domain)), domain.name
    assert domain_size(tiny_config, user) == 3


def test_jsonl_mixture_has_the_counts_it_claims_and_its_dataset_info(tmp_path, tiny_config, tiny_store, finished_search):
    from dmo.data import load_domains

    search, _ = finished_search
    out = tmp_path / "mix"
    result = export_recipe(tiny_store, search.id, fmt="jsonl", out=out, options=ExportOptions(budget=300))
    info = json.loads((out / "dataset_info.json").read_text())
    lines = _jsonl_lines(out / info["dmo_mixture"]["file_name"])
    domains = load_domains(tiny_config)
    domain_of = {s.uid: d for d in search.domains for s in domains[d].train}
    assert Counter(domain_of[line["id"]] for line in lines) == {s.domain: s.count for s in result.shares}
    assert all((out / image).is_file() for line in lines for image in line["images"])


def test_mergekit_recipe_reproduces_the_proxy(tmp_path, tiny_store, finished_search):
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    from dmo.models.auto import register_auto

    search, evaluator = finished_search
    export_recipe(tiny_store, search.id, fmt="mergekit", out=tmp_path / "proxy.yml", options=ExportOptions(budget=10))
    register_auto()
    run_merge(MergeConfiguration.model_validate(yaml.safe_load((tmp_path / "proxy.yml").read_text())),
              str(tmp_path / "out"), options=MergeOptions(device="cpu", copy_tokenizer=False))
    merged = _load_plain(tmp_path / "out")
    best = tiny_store.best_trials(search.id, top_k=1)[0]
    ours = evaluator.bank.merged_state_dict([best.weights[d] for d in search.domains], evaluator.method)
    assert set(ours) <= set(merged)
    assert max(float((merged[k].float() - v).abs().max()) for k, v in ours.items()) <= 1e-6


def test_a_weight_power_search_scores_and_exports_the_merge_of_its_coefficients(tmp_path, tiny_config, tiny_store,
                                                                                tiny_models, tiny_data):
    """search.merge.weight_power: the proxy a trial was scored on, and its mergekit recipe, merge
    w_i^p / Σ w_j^p, not the data shares w."""
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge
    from search_support import configured

    from dmo.mixture import merge_coefficients
    from dmo.models.auto import register_auto
    from dmo.search.pool import LocalPool
    from dmo.search.proxy import ProxyEvaluator
    from dmo.search.searches import create_search, proxy_source, run_search

    base, experts = tiny_models
    config = configured(tiny_config, search__trials=2, search__merge__weight_power=0.5)
    search = create_search(tiny_store, config, base=base, experts=experts)
    evaluator = ProxyEvaluator(proxy_source(tiny_store, search), data=tiny_data)
    run_search(tiny_store, search, LocalPool(evaluator))
    # The trial whose mixture the map moves most (the first trial is the uniform one, which it keeps).
    trials = tiny_store.trials(search.id, state="complete")
    trial = max(trials, key=lambda t: max(abs(c - t.weights[d]) for d, c in
                                          zip(search.domains, merge_coefficients([t.weights[d] for d in search.domains], 0.5))))
    weights = [trial.weights[d] for d in search.domains]
    coefficients = merge_coefficients(weights, 0.5)
    assert max(abs(c - w) for c, w in zip(coefficients, weights)) > 1e-3  # the map changed something
    ours = evaluator.bank.merged_state_dict(list(coefficients), evaluator.method)
    evaluator.evaluate(weights)  # what a trial scores: the model holds θ(coefficients) afterwards
    scored = evaluator.model.state_dict()
    assert max(float((scored[k].float() - v).abs().max()) for k, v in ours.items()) <= 1e-6

    export_recipe(tiny_store, search.id, fmt="mergekit", out=tmp_path / "proxy.yml", options=ExportOptions(budget=10),
                  trial_number=trial.number)
    register_auto()
    run_merge(MergeConfiguration.model_validate(yaml.safe_load((tmp_path / "proxy.yml").read_text())),
              str(tmp_path / "out"), options=MergeOptions(device="cpu", copy_tokenizer=False))
    merged = _load_plain(tmp_path / "out")
    assert max(float((merged[k].float() - v).abs().max()) for k, v in ours.items()) <= 1e-6


def _load_plain(folder):
    from safetensors.torch import load_file

    tensors = {}
    for file in folder.glob("*.safetensors"):
        tensors.update(load_file(str(file)))
    return tensors


def test_existing_output_needs_force(tmp_path, tiny_store, finished_search):
    search, _ = finished_search
    out = tmp_path / "m.json"
    out.write_text("keep me")
    with pytest.raises(DmoError, match="exists"):
        export_recipe(tiny_store, search.id, fmt="json", out=out, options=ExportOptions(budget=10))
    assert out.read_text() == "keep me"


@pytest.mark.parametrize("kind", ["fifo", "socket", "symlink"])
@pytest.mark.parametrize("fmt", ["json", "llamafactory"])
def test_a_target_that_is_not_a_regular_file_is_refused_even_with_force(tmp_path, tiny_store, finished_search, kind, fmt):
    search, _ = finished_search
    target = tmp_path / "target"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "socket":
        holder = socket.socket(socket.AF_UNIX)
        holder.bind(str(target))
    else:
        (tmp_path / "real").write_text("x")
        target.symlink_to(tmp_path / "real")
    with pytest.raises(DataError, match=f"is a {'symbolic link' if kind == 'symlink' else kind.upper() if kind == 'fifo' else kind}"):
        export_recipe(tiny_store, search.id, fmt=fmt, out=target, options=ExportOptions(budget=10), force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["target", *(["real"] if kind == "symlink" else [])])
    still = {"fifo": stat.S_ISFIFO, "socket": stat.S_ISSOCK, "symlink": stat.S_ISLNK}[kind]
    assert still(os.lstat(target).st_mode)  # still there, still what it was


def test_a_user_domain_is_read_for_export_with_the_checks_training_applies(tmp_path, tiny_config):
    """Duplicate ids would make two samples share one copied image under --relative; overlong lines
    would be read whole into memory."""
    from dmo.data.sharegpt import MAX_LINE_CHARS
    from dmo.recipes.sources import domain_samples

    (tmp_path / "a.png").write_bytes((Path(__file__).parents[2] / "docs" / "dashboard-search.png").read_bytes())
    record = {"messages": [{"role": "user", "content": "<image>what?"}, {"role": "assistant", "content": "x"}],
              "images": ["a.png"]}
    domain = tiny_config.domains[0].model_validate({"name": "mine", "source": {
        "kind": "jsonl", **{s: tmp_path / "train.jsonl" for s in ("train", "dev", "test")}}})
    cases = {
        "is used twice (first on line 1)": [{"id": "s1", **record}, {"id": "s1", **record}],
        f"at most {MAX_LINE_CHARS:,}": [record, {**record, "padding": "x" * MAX_LINE_CHARS}],
    }
    for message, lines in cases.items():
        (tmp_path / "train.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
        with pytest.raises(DataError) as caught:
            domain_samples(tiny_config, domain)
        assert message in caught.value.render() and f"{tmp_path / 'train.jsonl'}:2" in caught.value.render()


@pytest.mark.parametrize("fmt", ["llamafactory", "jsonl"])
def test_a_folder_recipe_named_like_a_file_is_refused_with_the_folder_to_name(tmp_path, tiny_store, finished_search,
                                                                             fmt):
    search, _ = finished_search
    with pytest.raises(DmoError) as caught:
        export_recipe(tiny_store, search.id, fmt=fmt, out=tmp_path / "recipe" / "recipe.yaml",
                      options=ExportOptions(budget=10))
    assert "a folder" in caught.value.render() and f"-o {tmp_path / 'recipe' / 'recipe'}" in caught.value.render()
    assert not (tmp_path / "recipe").exists()


@pytest.mark.parametrize("relative", [False, True])
def test_a_mixed_image_and_video_recipe_declares_the_video_column_and_writes_every_frame(tmp_path, tiny_config,
                                                                                        relative):
    """Issue 21: a synthetic video domain, a user's video domain (frames on disk) and an image domain."""
    from search_support import configured, mixture, search_row

    from dmo.data.sharegpt import write_jsonl
    from dmo.data.synthetic import generate_splits
    from storage import Store

    user = tmp_path / "user"
    clips = generate_splits("video_change", domain="change", sizes={"train": 20}, seed=5)["train"]
    write_jsonl(clips, user / "train.jsonl", image_dir="frames")
    config = configured(tiny_config, project__workdir=str(tmp_path / "work"), model__num_frames=4, domains=[
        {"name": "general", "source": {"kind": "synthetic", "generator": "general"}, "sizes": {"train": 30}},
        {"name": "motion", "source": {"kind": "synthetic", "generator": "video_motion"}, "sizes": {"train": 30}},
        {"name": "change", "source": {"kind": "jsonl", **{s: str(user / "train.jsonl") for s in ("train", "dev",
                                                                                              "test")}}},
    ])
    with Store.open(f"sqlite:///{tmp_path / 's.sqlite'}") as store:
        search = search_row(store, config)
        store.record_trial(search_id=search.id, number=0, mixture=mixture(general=0.4, motion=0.4, change=0.2),
                           merge_method="task_arithmetic", params={}, scores={"general": 1.0}, objective=[1.0],
                           state="complete", duration_s=1.0)
        out = tmp_path / "recipe"
        export_recipe(store, search.id, fmt="llamafactory", out=out, options=ExportOptions(budget=40, relative=relative))
    info = json.loads((out / "dataset_info.json").read_text())
    assert "videos" not in info["dmo_general"]["columns"]
    for domain in ("motion", "change"):
        assert info[f"dmo_{domain}"]["columns"]["videos"] == "videos"
        lines = _jsonl_lines(out / info[f"dmo_{domain}"]["file_name"])
        assert lines and all(line["messages"][0]["content"].startswith("<video>") for line in lines)
        for line in lines:
            (frames,) = line["videos"]
            assert len(frames) == 4 and not line.get("images")
            assert all((out / frame).is_file() for frame in frames)  # media_dir = dataset_dir (absolute or inside)
            if relative or domain == "motion":
                assert all(not Path(frame).is_absolute() for frame in frames)
    assert all(line["images"] for line in _jsonl_lines(out / info["dmo_general"]["file_name"]))
