"""The hf backend on tiny random LLaVA and Qwen2-VL checkpoints made here (nothing downloaded).

Each checkpoint is read back the way a user's is (``model: {backend: hf, path: DIR}``,
``local_files_only``): p-MoD routing on its decoder layers, exact equality with the unrouted
model when routers are zero and ρ = 1, scheduled kept-token counts, generation equal to a
reference loop, and clear refusals of what cannot be used.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from dmo.errors import CheckpointError, MergeError
from dmo.models.backends import backend_of_checkpoint, get_backend
from hf_support import BUILDERS, hf_project

REPO = Path(__file__).resolve().parents[2]
ARCHS = list(BUILDERS)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    return {arch: build(root / arch) for arch, build in BUILDERS.items()}


def _config(checkpoint: Path, workdir: Path):
    from dmo.config import parse_config

    return parse_config(hf_project((REPO / "configs" / "tiny.yaml").read_text(), checkpoint, workdir), source="hf.yaml")


def _batch(config, prompts: bool = False, padded: bool = False):
    """Three counting prompts; ``padded``: prompts of three lengths (counting and general questions), left-padded."""
    from dmo.data.encoding import EncodedSplit, prompt_batch, training_batch
    from dmo.data.prepared import prepare_data

    data = prepare_data(config)
    split = data.encoded("counting", "dev")
    indices = [0, 1, 2]
    if padded:
        split = EncodedSplit.concat([split, data.encoded("general", "dev")])
        by_length = {len(prompt): i for i, prompt in enumerate(split.prompts)}
        indices = [by_length[n] for n in sorted(by_length)[:3]]
    cut = prompt_batch if prompts else training_batch
    batch = cut(split, indices, data.pad_id)
    batch.pop("labels", None)
    return data, split, batch


@pytest.mark.parametrize("arch", ARCHS)
def test_a_checkpoint_loads_through_the_user_path_with_its_own_tokenizer_and_processor(checkpoints, tmp_path, arch):
    config = _config(checkpoints[arch], tmp_path)
    backend = get_backend("hf")
    assert backend_of_checkpoint(checkpoints[arch]).name == "hf"
    data, split, batch = _batch(config)
    encoder = data.encoder
    n_image = int((torch.tensor(split.prompts[0]) == encoder.image_token_id).sum())
    expected = 16 if arch == "llava" else 4  # 32-pixel images: 4×4 CLIP patches; Qwen2-VL merges 2×2 of 4×4
    assert n_image == expected
    assert split.answers[0][-1] == encoder.eos_id  # labels end with the end of the turn
    model = backend.initial_model(config, data.encoder, None, seed=0)
    assert {n for n, _ in model.named_parameters() if ".router." in n} == {
        f"model.language_model.layers.{i}.router.{p}" for i in (1, 2) for p in ("weight", "bias")}
    assert model(**batch).logits.shape[:2] == batch["input_ids"].shape


@pytest.mark.parametrize("arch", ARCHS)
def test_zero_routers_at_retention_one_give_the_unrouted_model_s_logits(checkpoints, tmp_path, arch):
    config = _config(checkpoints[arch], tmp_path)
    backend = get_backend("hf")
    _, _, batch = _batch(config)
    plain = backend.load(checkpoints[arch])
    with torch.no_grad():
        reference = plain(**batch, use_cache=False).logits
        routed = backend.initial_model(config, None, None, seed=0)
        for layer in routed._dmo_routing.layers:  # the routed code path, keeping every token
            layer.mod_retention = 1.0
        got = routed(**batch).logits
    assert torch.allclose(got, reference, atol=1e-5)
    with torch.no_grad():  # at the scheduled retention the same weights compute something else
        for layer, rho in zip(routed._dmo_routing.layers, (0.5, 0.25)):
            layer.mod_retention = rho
        assert not torch.allclose(routed(**batch).logits, reference, atol=1e-3)


@pytest.mark.parametrize("arch", ARCHS)
def test_each_routed_layer_keeps_exactly_its_scheduled_count(checkpoints, tmp_path, arch):
    from dmo.models.hf_routing import routing_of
    from dmo.models.schedules import kept_vision_tokens

    config = _config(checkpoints[arch], tmp_path)
    backend = get_backend("hf")
    _, _, batch = _batch(config)
    model = backend.initial_model(config, None, None, seed=0)
    with torch.no_grad():
        for layer in model._dmo_routing.layers:
            layer.router.weight.normal_(0, 1.0)  # a trained router: the choice depends on the tokens
        records = routing_of(model, lambda: model(**batch))
    vision = batch["input_ids"] == model.config.image_token_id
    n_vis = int(vision[0].sum())
    n_text = int(batch["attention_mask"].shape[1]) - n_vis
    for record, rho in zip(records, (0.5, 0.25), strict=True):
        assert record.kept_vision == kept_vision_tokens(n_vis, rho)
        kept = record.kept_mask
        assert torch.equal((kept & vision).sum(1), torch.full((3,), record.kept_vision))  # in every sample
        assert torch.equal((kept & ~vision).sum(1), torch.full((3,), n_text))  # text is always kept


@pytest.mark.parametrize("arch", ARCHS)
def test_kept_tokens_keep_their_own_positions_when_vision_tokens_are_skipped(checkpoints, tmp_path, arch):
    """At ρ < 1 the text tokens of a routed layer equal the stock layer run on the kept tokens alone with
    RoPE recomputed by the model's rotary module from the kept tokens' original position ids (Qwen2-VL:
    its three M-RoPE axes); re-indexing the kept tokens 0..n-1 would give other outputs (checked)."""
    from dmo.models.hf_routing import routing_of

    config = _config(checkpoints[arch], tmp_path)
    _, _, batch = _batch(config)
    assert bool(batch["attention_mask"].all())  # unpadded, so the reference needs only a causal mask
    model = get_backend("hf").initial_model(config, None, None, seed=0)
    layer = model._dmo_routing.layers[0]
    language = model.model.language_model
    seen: dict = {}

    def keep(key, value) -> None:  # hooks must return None
        seen.setdefault(key, value)

    language.register_forward_pre_hook(lambda _m, _a, kwargs: keep("positions", kwargs["position_ids"]),
                                       with_kwargs=True)
    layer.register_forward_pre_hook(lambda _m, args, kwargs: keep("input", args[0] if args else
                                                                  kwargs["hidden_states"]), with_kwargs=True)
    layer.register_forward_hook(lambda _m, _a, output: keep("output", output))
    with torch.no_grad():
        layer.router.weight.normal_(0, 1.0)
        for projection in (layer.self_attn.q_proj, layer.self_attn.k_proj):
            projection.weight.mul_(40.0)  # sharp attention, so that positions move the outputs visibly
        record = routing_of(model, lambda: model(**batch))[0]
        assert record.kept_vision < record.num_vision
        B, T, d = seen["input"].shape
        kept = torch.stack([row.nonzero().squeeze(1) for row in record.kept_mask])  # (B, n) ascending
        positions = seen["positions"]
        if positions is None:  # LLaVA: the decoder numbers tokens 0..T-1
            positions = torch.arange(T).expand(B, T)
        if positions.dim() == 3:  # Qwen2-VL: (3, B, T), one row per M-RoPE axis
            kept_positions = positions.gather(2, kept[None].expand(positions.shape[0], -1, -1))
            reindexed = torch.arange(kept.shape[1]).expand(positions.shape[0], B, -1)
        else:
            kept_positions, reindexed = positions.gather(1, kept), torch.arange(kept.shape[1]).expand(B, -1)
        x = seen["input"].gather(1, kept[..., None].expand(-1, -1, d))
        text = ~(batch["input_ids"] == model.config.image_token_id).gather(1, kept)
        routed = seen["output"][0] if isinstance(seen["output"], tuple) else seen["output"]
        routed_text = routed.gather(1, kept[..., None].expand(-1, -1, d))[text]
        stock = type(layer).__mro__[1]
        causal = torch.ones(kept.shape[1], kept.shape[1], dtype=torch.bool).tril()[None, None]

        def reference(position_ids):
            out = stock.forward(layer, x, attention_mask=causal, position_ids=None,
                                position_embeddings=language.rotary_emb(x, position_ids))
            return (out[0] if isinstance(out, tuple) else out)[text]

        torch.testing.assert_close(routed_text, reference(kept_positions), rtol=1e-5, atol=1e-5)
        assert (routed_text - reference(reindexed)).abs().max() > 100 * 1e-5


@pytest.mark.parametrize("arch", ARCHS)
def test_generation_equals_a_reference_loop_rerunning_the_routed_forward(checkpoints, tmp_path, arch):
    config = _config(checkpoints[arch], tmp_path)
    backend = get_backend("hf")
    data, _, batch = _batch(config, prompts=True, padded=True)
    assert bool((batch["attention_mask"] == 0).any())  # left padding: the cached layers' gathered masks matter
    model = backend.initial_model(config, None, None, seed=0)
    with torch.no_grad():
        for layer in model._dmo_routing.layers:
            layer.router.weight.normal_(0, 1.0)
        generated = backend.generate(model, batch, max_new_tokens=5, eos_id=data.eos_id, pad_id=data.pad_id)
        ids, mask, extra = batch["input_ids"], batch["attention_mask"], {k: v for k, v in batch.items()
                                                                          if k not in ("input_ids", "attention_mask")}
        reference = []
        for _ in range(5):  # the whole sequence through the routed model again at every step
            if "mm_token_type_ids" in extra:
                extra["mm_token_type_ids"] = (ids == model.config.image_token_id).long()
            logits = model(input_ids=ids, attention_mask=mask, **extra).logits[:, -1]
            logits[:, model.config.image_token_id] = float("-inf")
            token = logits.argmax(-1)
            reference.append(token)
            ids = torch.cat([ids, token[:, None]], dim=1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    expected = torch.stack(reference, dim=1)
    for row, want in zip(generated.tolist(), expected.tolist()):
        stop = want.index(data.eos_id) + 1 if data.eos_id in want else len(want)
        assert row[:stop] == want[:stop]


@pytest.mark.parametrize("arch", ARCHS)
def test_generation_keeps_a_cache_of_each_routed_layer_s_kept_tokens_and_prefills_once(checkpoints, tmp_path, arch):
    """The test above shows the cached tokens are right; this one that the cache is what made them."""
    from transformers import DynamicCache

    from dmo.models.hf_routing import generation_caches, language_layers
    from dmo.models.schedules import kept_vision_tokens

    config = _config(checkpoints[arch], tmp_path)
    backend = get_backend("hf")
    data, _, batch = _batch(config, prompts=True, padded=True)
    model = backend.initial_model(config, None, None, seed=0)
    assert generation_caches(model)
    widths: list[int] = []
    routed = model._dmo_routing.layers
    handle = routed[-1].register_forward_pre_hook(lambda module, args: widths.append(args[0].shape[1]))
    try:
        with torch.no_grad():
            backend.generate(model, batch, max_new_tokens=4, eos_id=-1, pad_id=data.pad_id)
    finally:
        handle.remove()
    prompt = batch["input_ids"].shape[1]
    assert widths == [prompt, 1, 1, 1]  # one prefill, then one token per step
    cache = DynamicCache(config=model.config.get_text_config())
    with torch.no_grad():
        model(**batch, cache=cache, use_cache=True)
    n_vis = int((batch["input_ids"][0] == model.config.image_token_id).sum())
    retention = config.model.mod.retention
    for index, layer in enumerate(language_layers(model)):
        kept = prompt - n_vis + kept_vision_tokens(n_vis, retention[index]) if retention[index] < 1 else prompt
        assert cache.get_seq_length(index) == kept


def test_a_routed_first_layer_generates_without_a_cache(checkpoints, tmp_path):
    from dmo.config import with_overrides
    from dmo.models.hf_routing import generation_caches

    config = with_overrides(_config(checkpoints["llava"], tmp_path),
                            {"model.mod.retention": ("r", [0.5, 0.5, 0.25])})
    model = get_backend("hf").initial_model(config, None, None, seed=0)
    assert not generation_caches(model)


def test_an_unsupported_architecture_is_refused_by_name_and_nothing_is_stored(dmo_cli, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    llama = tmp_path / "llama"
    LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=2)).save_pretrained(llama)
    with pytest.raises(CheckpointError) as caught:
        get_backend("hf").load(llama)
    assert "unsupported architecture LlamaForCausalLM" in caught.value.render()
    assert "LlavaForConditionalGeneration, Qwen2VLForConditionalGeneration" in caught.value.render()
    # The same refusal through the command a user runs, with no row left behind.
    project = tmp_path / "hf.yaml"
    project.write_text(hf_project((REPO / "configs" / "tiny.yaml").read_text(), llama, tmp_path / "work"))
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    dmo_cli("train", "expert", "general", "-c", project, "--store-url", url).refused(
        str(llama), "unsupported architecture LlamaForCausalLM")
    from storage import Store

    with Store.open_existing(url) as store:
        assert store.list_models() == []


def test_a_chat_template_kept_by_the_processor_is_used_and_none_at_all_is_refused(checkpoints, tmp_path):
    """llava-hf's checkpoints keep the template in the processor's chat_template.json, not the tokenizer."""
    from dmo.models.backends.hf import HfEncoder

    original = HfEncoder(checkpoints["llava"], image_size=32)._prompt("how many?", 16)
    legacy = tmp_path / "legacy"
    shutil.copytree(checkpoints["llava"], legacy)
    template = (legacy / "chat_template.jinja").read_text()
    (legacy / "chat_template.jinja").unlink()
    (legacy / "chat_template.json").write_text(json.dumps({"chat_template": template}))
    assert HfEncoder(legacy, image_size=32)._prompt("how many?", 16) == original
    (legacy / "chat_template.json").unlink()
    with pytest.raises(CheckpointError, match="neither the tokenizer nor the processor has a chat template"):
        HfEncoder(legacy, image_size=32)


@pytest.mark.parametrize(("removed", "message"), [
    ("preprocessor_config.json", "no image processor"),
    ("tokenizer.json", "no tokenizer"),
])
def test_a_directory_without_its_processor_or_tokenizer_is_refused_and_nothing_is_stored(
    dmo_cli, checkpoints, tmp_path, removed, message,
):
    broken = tmp_path / "broken"
    shutil.copytree(checkpoints["llava"], broken)
    for name in [removed, *(["tokenizer_config.json"] if removed == "tokenizer.json" else [])]:
        (broken / name).unlink()
    project = tmp_path / "hf.yaml"
    project.write_text(hf_project((REPO / "configs" / "tiny.yaml").read_text(), broken, tmp_path / "work"))
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    result = dmo_cli("train", "expert", "general", "-c", project, "--store-url", url)
    result.refused(str(broken), message)
    from storage import Store

    with Store.open_existing(url) as store:
        assert store.list_models() == []


def test_an_expert_of_another_base_is_refused_naming_it(checkpoints, tmp_path):
    from dmo.data.prepared import prepare_data
    from dmo.merging import TaskVectorBank
    from dmo.training.jobs import base_spec, ensure_model, expert_spec
    from hf_support import tiny_llava
    from storage import Store

    other = tiny_llava(tmp_path / "other-base", seed=1)
    experts = {}
    for name, base_dir in (("ours", checkpoints["llava"]), ("theirs", other)):
        config = _config(base_dir, tmp_path / name)
        with Store.open(f"sqlite:///{tmp_path / name / 'store.sqlite'}") as store:
            base = ensure_model(config, store, base_spec(config))
            experts[name] = Path(ensure_model(config, store, expert_spec(config, "general"), base=base,
                                              data=prepare_data(config)).checkpoint_uri)
    TaskVectorBank.from_checkpoints(checkpoints["llava"], [experts["ours"]])  # its own base: fine
    with pytest.raises(MergeError) as caught:
        TaskVectorBank.from_checkpoints(checkpoints["llava"], [experts["ours"], experts["theirs"]])
    assert str(experts["theirs"]) in caught.value.render() and "not from this base" in caught.value.render()
    recorded = json.loads((experts["theirs"] / "dmo_training.json").read_text())["base_sha256"]
    assert recorded == get_backend("hf").fingerprint(other)


@pytest.mark.parametrize("arch", ARCHS)
def test_a_saved_expert_loads_back_with_its_routers_and_mod_settings(checkpoints, tmp_path, arch):
    from dmo.data.prepared import prepare_data
    from dmo.training.jobs import base_spec, ensure_model, expert_spec
    from storage import Store

    config = _config(checkpoints[arch], tmp_path)
    data = prepare_data(config)
    with Store.open(f"sqlite:///{tmp_path / 'store.sqlite'}") as store:
        base = ensure_model(config, store, base_spec(config))
        expert = ensure_model(config, store, expert_spec(config, "ocr"), base=base, data=data)
    assert base.checkpoint_uri == str(checkpoints[arch].resolve()) and base.metrics == {}  # registered, not trained
    saved = json.loads((Path(expert.checkpoint_uri) / "config.json").read_text())
    assert saved["dmo_mod"]["retention"] == [1.0, 0.5, 0.25]
    loaded = get_backend("hf").load(Path(expert.checkpoint_uri))
    routers = {n: p for n, p in loaded.named_parameters() if ".router." in n}
    assert len(routers) == 4 and any(p.abs().sum() > 0 for p in routers.values())  # trained, then restored
    assert expert.efficiency["retention"] == [1.0, 0.5, 0.25] and expert.efficiency["flops_ratio"] < 1.0
    data_config = yaml.safe_load(hf_project((REPO / "configs" / "tiny.yaml").read_text(), checkpoints[arch], tmp_path))
    assert data_config["model"]["backend"] == "hf"


@pytest.mark.parametrize("arch", ARCHS)
def test_model_info_accounts_the_checkpoint_s_own_shapes_and_vision_tokens(dmo_cli, checkpoints, tmp_path, arch):
    project = tmp_path / "hf.yaml"
    project.write_text(hf_project((REPO / "configs" / "tiny.yaml").read_text(), checkpoints[arch], tmp_path / "w"))
    result = dmo_cli("model", "info", "-c", project, "--json")
    assert result.code == 0, result.err[-2000:]
    info = json.loads(result.out)
    n_vis = 16 if arch == "llava" else 4
    assert info["vision_tokens"] == n_vis and info["mod"]["retention"] == [1.0, 0.5, 0.25]
    assert [row["kept_vision"] for row in info["layers"]] == [n_vis, n_vis // 2, n_vis // 4]
    assert 0 < info["flops_ratio"] < 1 and 0 < info["kv_ratio"] < 1


@pytest.mark.parametrize("arch", ARCHS)
def test_arank_measures_every_decoder_layer_of_a_pretrained_checkpoint_on_real_samples(
    dmo_cli, checkpoints, tmp_path, arch,
):
    from dmo.data.sharegpt import write_jsonl
    from dmo.data.synthetic import generate_splits

    samples = generate_splits("general", domain="general", sizes={"train": 4}, seed=0, image_size=32)["train"]
    data = tmp_path / "probe.jsonl"
    write_jsonl(samples, data, image_dir="images")
    result = dmo_cli("model", "arank", checkpoints[arch], "--data", data, "-n", "4", "--route", "1", "--json")
    assert result.code == 0, result.err[-2000:]
    payload = json.loads(result.out)
    assert payload["samples"] == 4 and payload["retention"] == [1.0, 1.0, 1.0]  # a pretrained base is dense
    assert len(payload["aranks"]) == 3 and all(value > 1 for value in payload["aranks"])
    assert len(payload["route"]) == 1
    dmo_cli("model", "arank", checkpoints[arch]).refused("--data", str(checkpoints[arch]))


def test_a_lora_expert_trains_routers_in_full_and_saves_dense_weights_with_the_vision_tower_untouched(
    checkpoints, tmp_path,
):
    from safetensors.torch import load_file

    from dmo.config import with_overrides
    from dmo.data.prepared import prepare_data
    from dmo.training.jobs import base_spec, ensure_model, expert_spec
    from storage import Store

    config = with_overrides(_config(checkpoints["qwen2_vl"], tmp_path), {
        "training.expert.finetune": ("finetune", "lora"), "training.expert.lora.r": ("r", 4)})
    with Store.open(f"sqlite:///{tmp_path / 'store.sqlite'}") as store:
        base = ensure_model(config, store, base_spec(config))
        expert = ensure_model(config, store, expert_spec(config, "ocr"), base=base, data=prepare_data(config))
    folder = Path(expert.checkpoint_uri)
    saved = {}
    for shard in folder.glob("*.safetensors"):
        saved.update(load_file(str(shard)))
    assert not [name for name in saved if "lora" in name]  # folded before saving
    before = get_backend("hf").state_dict(checkpoints["qwen2_vl"], like=folder)
    assert set(saved) == set(before)  # the base's names plus the routers, nothing else
    changed = {name for name in saved if not torch.equal(saved[name].float(), before[name])}
    # Layer 1's router learns. The last layer's cannot: its vision tokens' outputs feed no later layer
    # and carry no label, so its gate gets no gradient (true of p-MoD's last layer too).
    assert {n for n in changed if ".router." in n} == {
        f"model.language_model.layers.1.router.{p}" for p in ("weight", "bias")}
    assert any(".self_attn.q_proj." in n for n in changed)  # LoRA moved the adapted projections
    assert not [n for n in changed if n.startswith("model.visual.")]  # the vision tower stays frozen


def test_an_expert_routed_otherwise_than_the_project_is_refused(checkpoints, tmp_path):
    """What an import checks beside names and shapes: the same layers routed at the same retention."""
    from types import SimpleNamespace

    routed = {"schedule": "explicit", "retention": [1.0, 0.5, 0.25], "tanh_alpha": 1.0, "tanh_beta": 0.0}
    expert = tmp_path / "expert"
    shutil.copytree(checkpoints["qwen2_vl"], expert)
    saved = json.loads((expert / "config.json").read_text())
    backend = get_backend("hf")
    project = SimpleNamespace(config=SimpleNamespace(dmo_mod=routed))
    for mod in (None, {**routed, "retention": [1.0, 0.5, 0.5]}):
        (expert / "config.json").write_text(json.dumps({**saved, "dmo_mod": mod} if mod else saved))
        with pytest.raises(MergeError, match="is routed") as caught:
            backend.check_routing(project, expert)
        assert caught.value.where == str(expert)
    (expert / "config.json").write_text(json.dumps({**saved, "dmo_mod": routed}))
    backend.check_routing(project, expert)  # the same routing passes
    dense = SimpleNamespace(config=SimpleNamespace(dmo_mod={**routed, "retention": [1.0, 1.0, 1.0]}))
    (expert / "config.json").write_text(json.dumps(saved))
    backend.check_routing(dense, expert)  # a dense schedule routes nothing, like a checkpoint without dmo_mod


@pytest.mark.parametrize("arch", ARCHS)
def test_likelihoods_from_the_generation_s_own_cache_equal_a_teacher_forced_forward(checkpoints, tmp_path, arch):
    """Issue 20: both metrics from one prefill in the hf backend, routed layers on, left-padded prompts."""
    from dmo.data.encoding import EncodedSplit
    from dmo.data.prepared import prepare_data
    from dmo.evaluation.scoring import _generate, _generate_scored, _group_likelihoods

    config = _config(checkpoints[arch], tmp_path)
    backend = get_backend("hf")
    data = prepare_data(config)
    split = EncodedSplit.concat([data.encoded("counting", "dev"), data.encoded("general", "dev")])
    by_length = {len(prompt): i for i, prompt in enumerate(split.prompts)}
    indices = [by_length[n] for n in sorted(by_length)][:4] + list(range(4))
    assert len({len(split.prompts[i]) for i in indices}) > 1 and len({len(split.answers[i]) for i in indices}) > 1
    model = backend.initial_model(config, None, None, seed=0).eval()
    tower = next(getattr(model.model, name) for name in ("vision_tower", "visual") if hasattr(model.model, name))
    calls: list[int] = []
    handle = tower.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        for layer in model._dmo_routing.layers:
            layer.router.weight.normal_(0, 1.0)
        # Peaked attention and logits: at random init every position and token look alike, and a
        # continuation placed at the wrong positions would score the same.
        for name, parameter in model.named_parameters():
            if name.endswith(("q_proj.weight", "k_proj.weight")) and "language_model" in name or name == "lm_head.weight":
                parameter.mul_(20)
        pairs = _generate_scored(model, backend, split, indices, data.pad_id, data.eos_id, 4)
        handle.remove()
        reference = _group_likelihoods(model, split, indices, data.pad_id)
        tokens = _generate(model, backend, split, indices, data.pad_id, data.eos_id, 4)
    assert [row for row, _ in pairs] == tokens
    log_reference = torch.tensor(reference).log()
    torch.testing.assert_close(torch.tensor([v for _, v in pairs]).log(), log_reference, atol=1e-4, rtol=1e-5)
    assert float(log_reference.max() - log_reference.min()) > 1.0  # rows differ by more than a nat
    assert len(calls) == 1  # the vision tower ran once: no second prompt pass for the likelihoods
