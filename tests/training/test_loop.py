from __future__ import annotations

import json

import pytest
import torch

from dmo.models.backends import get_backend
from dmo.models.checkpoint import load_checkpoint
from dmo.training.jobs import base_spec, initial_model
from dmo.training.loop import TrainingRun, read_loss_curve, train
from dmo.training.resume import resume_dir_for
from dmo.training.schedule import lr_at

MOD_MLLM = get_backend("mod_mllm")


def _run(config, steps, **overrides):
    settings = config.training.base.model_copy(update={"steps": steps, **overrides})
    return TrainingRun(name="t", mixture=base_spec(config).mixture, settings=settings, seed=0)


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    lrs = [lr_at(s, lr=1.0, total_steps=100, warmup_steps=10, min_lr_ratio=0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] == pytest.approx(0.1, abs=1e-3)


def test_training_lowers_loss(tiny_config, tiny_data, tmp_path):
    model = initial_model(tiny_config, tiny_data, None, seed=0)
    result = train(_run(tiny_config, 40), model, tiny_data, tmp_path / "m", backend=MOD_MLLM)
    losses = [json.loads(line)["loss"] for line in (tmp_path / "m" / "training_metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 40
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    assert result.final_loss == losses[-1]
    assert result.loss_curve == tuple((step, loss) for step, loss in enumerate(losses, start=1))


def test_loss_curve_is_thinned_to_the_limit_and_keeps_the_last_step(tmp_path):
    path = tmp_path / "m.metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in range(1, 1001)))
    curve = read_loss_curve(path, max_points=7)
    assert len(curve) <= 7 and curve[0] == (1, 1.0) and curve[-1] == (1000, 1e-3)
    assert [s for s, _ in curve] == sorted({s for s, _ in curve})



def test_interrupted_run_resumes_to_the_same_weights(tiny_config, tiny_data, tmp_path):
    run = _run(tiny_config, 10, checkpoint_every=4)
    reference = train(run, initial_model(tiny_config, tiny_data, None, seed=0), tiny_data, tmp_path / "ref", backend=MOD_MLLM)

    model = initial_model(tiny_config, tiny_data, None, seed=0)
    calls = {"n": 0}
    original_forward = model.forward

    def dying_forward(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt("killed")
        return original_forward(*args, **kwargs)

    model.forward = dying_forward
    with pytest.raises(KeyboardInterrupt):
        train(run, model, tiny_data, tmp_path / "cut", backend=MOD_MLLM)
    assert not (tmp_path / "cut").exists(), "no checkpoint under the final name after a crash"
    assert resume_dir_for(tmp_path / "cut").is_dir()

    resumed = train(run, initial_model(tiny_config, tiny_data, None, seed=0), tiny_data, tmp_path / "cut", backend=MOD_MLLM)
    assert resumed.resumed_from_step == 4
    assert not resume_dir_for(tmp_path / "cut").exists()
    a = load_checkpoint(tmp_path / "ref").state_dict()
    b = load_checkpoint(tmp_path / "cut").state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    lines = (tmp_path / "cut" / "training_metrics.jsonl").read_text().splitlines()
    assert [json.loads(l)["step"] for l in lines] == list(range(1, 11))
    assert reference.final_loss == pytest.approx(resumed.final_loss, rel=1e-5)


def test_vision_tower_stays_frozen_in_sft(tiny_config, tiny_data, tmp_path):
    model = initial_model(tiny_config, tiny_data, None, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train(_run(tiny_config, 3, freeze_vision=True), model, tiny_data, tmp_path / "m", backend=MOD_MLLM)
    after = load_checkpoint(tmp_path / "m").state_dict()
    vision = [k for k in before if k.startswith("model.vision_tower.")]
    assert vision and all(torch.equal(before[k], after[k]) for k in vision)
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("model.layers."))


def test_lora_expert_is_saved_folded_and_equals_the_unfolded_model(tiny_config, tiny_data, tmp_path):
    from dmo.training.lora import add_lora, fold_lora

    model = initial_model(tiny_config, tiny_data, None, seed=0)
    settings = tiny_config.training.expert.model_copy(update={"finetune": "lora", "steps": 4, "lr": 1e-2})
    targets, full = MOD_MLLM.lora_targets(settings.lora)
    peft_model = add_lora(model, settings.lora, targets=targets, modules_to_save=full)
    # Give the adapters non-zero weights so folding has something to fold.
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    from dmo.data.encoding import training_batch

    batch = training_batch(tiny_data.encoded("ocr", "dev"), list(range(4)), tiny_data.pad_id)
    batch.pop("labels")
    with torch.no_grad():
        unfolded = peft_model(**batch).logits
        dense = fold_lora(peft_model)
        folded = dense(**batch).logits
    assert not any("lora" in k for k in dense.state_dict())
    assert torch.allclose(unfolded, folded, atol=1e-5)


def test_lora_training_writes_a_plain_checkpoint(tiny_config, tiny_data, tmp_path):
    model = initial_model(tiny_config, tiny_data, None, seed=0)
    run = TrainingRun("lora", base_spec(tiny_config).mixture, tiny_config.training.expert.model_copy(update={"finetune": "lora", "steps": 3}), 0)
    train(run, model, tiny_data, tmp_path / "m", backend=MOD_MLLM)
    loaded = load_checkpoint(tmp_path / "m")
    assert not any("lora" in k or "modules_to_save" in k for k in loaded.state_dict())
