"""LoRA experts merged as factors equal folding each expert and merging the dense checkpoints.

The experts are peft adapters saved with ``save_pretrained`` on tiny random LLaVA and Qwen2-VL
checkpoints made here, with their factors and their fully trained routers (and LLaVA's projector)
moved off their initial values, as training would; the reference is peft's own
``merge_and_unload`` per expert, then the dense bank.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from dmo.errors import CheckpointError, MergeError
from dmo.merging.adapters import read_adapter
from dmo.merging.bank import TaskVectorBank
from dmo.merging.factored import FactoredBank
from dmo.merging.methods import get_method
from hf_support import BUILDERS, hf_project

REPO = Path(__file__).resolve().parents[2]
WEIGHTS = [(0.5, 0.3, 0.2), (0.0, 1.0, 0.0), (0.25, 0.25, 0.5)]


@pytest.fixture(scope="module", params=list(BUILDERS))
def world(request, tmp_path_factory):
    """(backend, base model, base state dict, adapter dirs, folded expert state dicts) of one architecture."""
    from dmo.config import parse_config
    from dmo.models.backends import get_backend
    from dmo.training.lora import add_lora, fold_lora

    root = tmp_path_factory.mktemp(request.param)
    checkpoint = BUILDERS[request.param](root / "base")
    config = parse_config(hf_project((REPO / "configs" / "tiny.yaml").read_text(), checkpoint, root / "work"),
                          source="hf.yaml")
    backend = get_backend("hf")
    base_model = backend.initial_model(config, None, None, seed=0).float()
    base = {n: t.detach().clone() for n, t in base_model.state_dict().items()}
    targets, in_full = backend.lora_targets(config.training.expert.lora)
    adapters, folded = [], []
    for index in range(3):
        peft_model = add_lora(copy.deepcopy(base_model), config.training.expert.lora, targets=targets,
                              modules_to_save=in_full)
        generator = torch.Generator().manual_seed(100 + index)
        with torch.no_grad():
            for name, parameter in peft_model.named_parameters():
                if parameter.requires_grad:  # LoRA factors and the modules trained in full (routers)
                    parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
        directory = root / f"adapter{index}"
        peft_model.save_pretrained(directory)
        adapters.append(directory)
        folded.append({n: t.detach().clone() for n, t in fold_lora(peft_model).state_dict().items()})
    return backend, checkpoint, base_model, base, adapters, folded, config


@pytest.fixture(scope="module")
def batch(world):
    """Three dev samples with their images: the routers see vision tokens."""
    from dmo.data.encoding import training_batch
    from dmo.data.prepared import prepare_data

    config = world[-1]
    data = prepare_data(config)
    cut = training_batch(data.encoded(config.domain_names[0], "dev"), [0, 1, 2], data.pad_id)
    cut.pop("labels")
    return cut


def assert_computes(model, state, batch, base_model) -> None:
    """``model`` (hooked or written) computes what a copy of the base holding ``state`` computes."""
    reference = copy.deepcopy(base_model)
    reference.load_state_dict({name: tensor.float() for name, tensor in state.items()})
    with torch.no_grad():
        got, want = model.eval()(**batch).logits, reference.eval()(**batch).logits
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", ["task_arithmetic", "linear"])
def test_factored_proxies_equal_folding_each_expert_then_merging(world, method):
    backend, checkpoint, _, base, adapters, folded, _ = world
    exclude = backend.merge_exclude(checkpoint)
    experts = [read_adapter(d) for d in adapters]
    assert any(".router." in n for n in experts[0].full)  # routers are trained in full, beside the factors
    factored = FactoredBank(base, experts, exclude=exclude)
    dense = TaskVectorBank.from_state_dicts(base, folded, exclude=exclude)
    merge = get_method(method, {"lambda": 0.8} if method == "task_arithmetic" else None)
    for weights in WEIGHTS:
        got, want = factored.merged_state_dict(weights, merge), dense.merged_state_dict(weights, merge)
        assert got.keys() == want.keys()
        for name in want:
            torch.testing.assert_close(got[name], want[name].to(got[name].dtype), rtol=1e-5, atol=1e-5, msg=name)
    assert factored.matrices and factored.dense is not None
    # The point of factors: far less than K dense copies of what they adapt.
    adapted = sum(m.w0.numel() for m in factored.matrices) * 4
    assert sum(m.a.nbytes + m.b.nbytes for m in factored.matrices) < 3 * adapted


def test_proxies_load_into_a_model_one_after_another_without_writing_its_base(world, batch):
    backend, checkpoint, base_model, base, adapters, folded, _ = world
    exclude = backend.merge_exclude(checkpoint)
    model = copy.deepcopy(base_model)
    own = {n: t.detach() for n, t in model.state_dict().items()}  # the bank refers to the model's own tensors
    factored = FactoredBank(own, [read_adapter(d) for d in adapters], exclude=exclude)
    dense = TaskVectorBank.from_state_dicts(base, folded, exclude=exclude)
    params = dict(model.named_parameters())
    assert all(m.w0.data_ptr() == params[m.name].data_ptr() for m in factored.matrices)  # refers, never copies
    for weights in WEIGHTS:
        factored.load_into(model, weights)
        assert_computes(model, dense.merged_state_dict(weights), batch, base_model)
    for matrix in factored.matrices:  # held once: the adapted matrices are still the base's, never written
        assert torch.equal(model.get_parameter(matrix.name), base[matrix.name])


def test_ties_and_a_scaled_base_are_refused_for_factored_experts(world):
    backend, checkpoint, _, base, adapters, _, _ = world
    bank = FactoredBank(base, [read_adapter(d) for d in adapters], exclude=backend.merge_exclude(checkpoint))
    with pytest.raises(MergeError, match="ties sparsifies each dense task vector"):
        bank.merged_state_dict(WEIGHTS[0], "ties")
    with pytest.raises(MergeError, match="scales the base by 0.5"):
        bank.merged_state_dict((0.25, 0.25, 0.0), get_method("linear", {"normalize": False}))


def _copy(adapter: Path, tmp_path: Path) -> Path:
    target = tmp_path / "bad"
    shutil.copytree(adapter, target)
    return target


def test_an_adapter_missing_a_factor_is_refused_naming_it(world, tmp_path):
    bad = _copy(world[4][0], tmp_path)
    tensors = load_file(str(bad / "adapter_model.safetensors"))
    gone = next(k for k in sorted(tensors) if k.endswith("q_proj.lora_B.weight"))
    del tensors[gone]
    save_file(tensors, str(bad / "adapter_model.safetensors"))
    with pytest.raises(CheckpointError, match=r"q_proj has lora_A but no lora_B") as caught:
        read_adapter(bad)
    assert "adapter_model.safetensors" in caught.value.render()


def test_a_pickle_adapter_is_never_loaded(world, tmp_path):
    bad = _copy(world[4][0], tmp_path)
    (bad / "adapter_model.safetensors").rename(bad / "adapter_model.bin")
    with pytest.raises(CheckpointError, match="pickle adapter"):
        read_adapter(bad)


@pytest.mark.parametrize(("field", "value"), [("use_dora", True), ("rank_pattern", {"q_proj": 4})])
def test_an_adapter_that_is_not_linear_in_w_is_refused_by_field(world, tmp_path, field, value):
    bad = _copy(world[4][0], tmp_path)
    config = json.loads((bad / "adapter_config.json").read_text())
    config[field] = value
    (bad / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=field):
        read_adapter(bad)


def test_an_adapter_of_another_base_is_refused_naming_the_tensor(world, tmp_path):
    backend, checkpoint, _, base, adapters, _, _ = world
    other = {n: (torch.zeros(t.shape[0], t.shape[1] + 1) if n.endswith("q_proj.weight") else t) for n, t in base.items()}
    with pytest.raises(MergeError, match=r"q_proj\.weight: LoRA factors of .* the base matrix is"):
        FactoredBank(other, [read_adapter(d) for d in adapters], exclude=backend.merge_exclude(checkpoint))
    fewer = {n: t for n, t in base.items() if ".router." not in n}
    with pytest.raises(MergeError, match=r"changes .*router.*which the base does not have"):
        FactoredBank(fewer, [read_adapter(d) for d in adapters], exclude=backend.merge_exclude(checkpoint))


def test_a_proxy_evaluator_given_adapter_experts_holds_their_factors_and_scores_the_merged_model(world, batch):
    """What a search's evaluator (local or a Ray actor) does with experts that are peft adapters."""
    from dmo.config import with_overrides
    from dmo.search.pool import ProxySource
    from dmo.search.proxy import ProxyEvaluator

    backend, checkpoint, base_model, base, adapters, folded, config = world
    config = with_overrides(config, {"search.merge.bank": ("bank", "factored")})  # auto folds tiny models' adapters
    evaluator = ProxyEvaluator(ProxySource(config, checkpoint, tuple(adapters)))
    assert isinstance(evaluator.bank, FactoredBank)
    result = evaluator.evaluate(WEIGHTS[0], limit=4)
    assert result.samples == 4 * len(config.domains)
    want = TaskVectorBank.from_state_dicts(base, folded, exclude=backend.merge_exclude(checkpoint)).merged_state_dict(
        WEIGHTS[0], evaluator.method)
    assert_computes(evaluator.model, want, batch, base_model)


@pytest.mark.parametrize("method", [("ties", {"density": 1.0}), ("dare_ties", {"density": 0.5, "seed": 3})])
def test_a_proxy_evaluator_merging_adapters_by_a_sparsifying_method_folds_them_into_the_dense_bank(
        world, batch, method):
    """TIES and DARE need each dense task vector: the evaluator folds the adapters instead of refusing."""
    from dmo.config import with_overrides
    from dmo.search.pool import ProxySource
    from dmo.search.proxy import ProxyEvaluator

    backend, checkpoint, base_model, base, adapters, folded, config = world
    name, params = method
    config = with_overrides(config, {"search.merge.method": ("method", name),
                                     "search.merge.params": ("params", params)})
    evaluator = ProxyEvaluator(ProxySource(config, checkpoint, tuple(adapters)))
    assert isinstance(evaluator.bank, TaskVectorBank)
    assert evaluator.method.name == name
    evaluator.evaluate(WEIGHTS[2], limit=2)
    want = TaskVectorBank.from_state_dicts(base, folded, exclude=backend.merge_exclude(checkpoint)).merged_state_dict(
        WEIGHTS[2], get_method(name, params))
    assert_computes(evaluator.model, want, batch, base_model)


def test_hook_share_counts_each_matrix_s_extra_rank_against_its_own_size():
    from dmo.merging.adapters import LoraExpert, LoraFactors
    from dmo.merging.banks import hook_share

    def expert(name, d, rank):
        return LoraExpert(name, {"w": LoraFactors(torch.zeros(rank, d), torch.zeros(d, rank), 1.0)}, {})

    assert hook_share([expert("a", 4096, 8), expert("b", 4096, 8)]) == pytest.approx(16 * 8192 / 4096 ** 2)
    assert hook_share([expert(str(i), 128, 8) for i in range(4)]) == pytest.approx(0.5)  # the demo's shape
    assert hook_share([]) == 0.0


@pytest.mark.parametrize(("layout", "limits", "factored"), [
    ("auto", {}, False), ("auto", {"HOOK_SHARE_LIMIT": 1e9}, True), ("auto", {"DENSE_BYTES_LIMIT": 0}, True),
    ("dense", {"HOOK_SHARE_LIMIT": 1e9}, False),  # forced: folded where auto would keep factors
])
def test_auto_folds_adapters_whose_hooks_cost_more_than_a_small_dense_bank_and_merges_alike(
        world, batch, monkeypatch, layout, limits, factored):
    """Tiny models' adapters cost their hooks more than a dense bank costs memory: auto folds them, and
    keeps factors where the hooks are cheap or the dense bank would be too large; both merge alike."""
    from dmo.config import with_overrides
    from dmo.merging import banks
    from dmo.search.pool import ProxySource
    from dmo.search.proxy import ProxyEvaluator

    backend, checkpoint, base_model, base, adapters, folded, config = world
    assert config.search.merge.bank == "auto"
    assert banks.hook_share([read_adapter(a) for a in adapters]) > banks.HOOK_SHARE_LIMIT
    config = with_overrides(config, {"search.merge.bank": ("bank", layout)})
    for name, value in limits.items():
        monkeypatch.setattr(banks, name, value)
    evaluator = ProxyEvaluator(ProxySource(config, checkpoint, tuple(adapters)))
    assert isinstance(evaluator.bank, FactoredBank if factored else TaskVectorBank)
    evaluator.evaluate(WEIGHTS[2], limit=2)
    want = TaskVectorBank.from_state_dicts(base, folded, exclude=backend.merge_exclude(checkpoint)).merged_state_dict(
        WEIGHTS[2], evaluator.method)
    assert_computes(evaluator.model, want, batch, base_model)


def test_a_factored_bank_that_cannot_be_is_refused_with_the_field(world):
    from dmo.config import with_overrides
    from dmo.errors import ConfigError
    from dmo.search.pool import ProxySource
    from dmo.search.proxy import ProxyEvaluator

    _, checkpoint, _, _, adapters, _, config = world
    with pytest.raises(ConfigError, match="bank 'factored' keeps LoRA factors, which 'ties' cannot merge"):
        with_overrides(config, {"search.merge.bank": ("bank", "factored"), "search.merge.method": ("method", "ties")})
    config = with_overrides(config, {"search.merge.bank": ("bank", "factored")})
    with pytest.raises(MergeError, match="a factored bank needs every expert as a LoRA adapter") as raised:
        # the base checkpoint stands in for an expert trained in full: it has no adapter
        ProxyEvaluator(ProxySource(config, checkpoint, (adapters[0], checkpoint, adapters[2])))
    assert raised.value.where == "search.merge.bank"


def test_adapters_beside_full_experts_are_folded_onto_the_base_exactly(world):
    from dmo.merging.banks import folded

    backend, checkpoint, _, base, adapters, want_folded, _ = world
    for adapter, want in zip(adapters, want_folded):
        got = folded(base, read_adapter(adapter))
        for name in want:
            torch.testing.assert_close(got[name], want[name].to(got[name].dtype), rtol=1e-5, atol=1e-5, msg=name)


def test_lora_experts_dmo_trains_keep_their_adapter_and_merge_as_factors_exactly(world, batch, tmp_path):
    """The training loop saves the folded weights and the adapter; a proxy evaluator over such experts holds
    their factors, and its proxies equal merging the folded checkpoints (the dense path) with routers trained."""
    from dmo.config import with_overrides
    from dmo.data.prepared import prepare_data
    from dmo.search.pool import ProxySource
    from dmo.search.proxy import ProxyEvaluator
    from dmo.training.jobs import base_spec, ensure_model, expert_spec
    from storage import Store

    backend, checkpoint, base_model, *_, config = world
    config = with_overrides(config, {"project.workdir": ("workdir", str(tmp_path)),
                                     "search.merge.bank": ("bank", "factored"),
                                     "training.expert.finetune": ("finetune", "lora"),
                                     "training.expert.steps": ("steps", 6)})
    data = prepare_data(config)
    with Store.open(f"sqlite:///{tmp_path / 'store.sqlite'}") as store:
        base = ensure_model(config, store, base_spec(config), data=data)
        experts = [Path(ensure_model(config, store, expert_spec(config, d), base=base, data=data).checkpoint_uri)
                   for d in config.domain_names]
    assert all((e / "adapter" / "adapter_model.safetensors").is_file() for e in experts)
    evaluator = ProxyEvaluator(ProxySource(config, checkpoint, tuple(experts)), data=data)
    assert isinstance(evaluator.bank, FactoredBank)
    dense = TaskVectorBank.from_checkpoints(checkpoint, experts, backend=backend)
    assert any(float(d.abs().max()) > 0 for d in dense.deltas)  # the experts learned something
    for weights in WEIGHTS:
        evaluator.bank.load_into(evaluator.model, weights, evaluator.method)
        want = dense.merged_state_dict(weights, evaluator.method)
        assert_computes(evaluator.model, want, batch, base_model)
        merged = evaluator.bank.merged_state_dict(weights, evaluator.method)  # the checkpoint form, too
        for name in want:
            torch.testing.assert_close(merged[name], want[name], rtol=1e-5, atol=1e-5, msg=name)
    routers = [n for n in want if ".router." in n]
    assert routers and any(float(want[n].abs().max()) > 0 for n in routers)  # routers trained, and merged


def test_banks_moved_to_a_device_build_the_same_proxies(world, batch):
    """The path a GPU evaluator takes (bank.to(device), then bind), run here on the CPU device."""
    backend, checkpoint, base_model, base, adapters, folded, _ = world
    exclude = backend.merge_exclude(checkpoint)
    for bank in (FactoredBank(base, [read_adapter(d) for d in adapters], exclude=exclude),
                 TaskVectorBank.from_state_dicts(base, folded, exclude=exclude)):
        moved, model = bank.to("cpu"), copy.deepcopy(base_model)
        moved.bind(model)
        for weights in WEIGHTS:
            moved.load_into(model, weights)
            assert_computes(model, bank.merged_state_dict(weights), batch, base_model)
