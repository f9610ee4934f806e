"""LLaMA-Factory itself reads each exported recipe: every sample loads, every image opens, and the
per-domain counts are the recipe's.

LLaMA-Factory 0.9.5 pins transformers <= 5.6, so it lives in a virtualenv of its own
(`make llamafactory-venv`, which .ci/run builds): $DMO_LLAMAFACTORY_PYTHON, default
.venv-lf/bin/python. Without it these tests skip, saying why; with DMO_REQUIRE_LLAMAFACTORY=1
(CI) they fail instead.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from dmo.recipes import ExportOptions, export_recipe

REPO = Path(__file__).resolve().parents[2]
PYTHON = Path(os.environ.get("DMO_LLAMAFACTORY_PYTHON", REPO / ".venv-lf" / "bin" / "python"))
# PyPI's torchaudio does not load beside the CPU torch pin, and LLaMA-Factory imports it at start-up
# (for audio, which image recipes never touch): this stand-in answers the import, nothing more.
STUBS = Path(__file__).with_name("llamafactory_stubs")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def llamafactory() -> Path:
    if not PYTHON.is_file():
        message = f"no LLaMA-Factory virtualenv at {PYTHON} (`make llamafactory-venv` builds it)"
        if os.environ.get("DMO_REQUIRE_LLAMAFACTORY") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return PYTHON


def _probe(python: Path, recipe: Path, model_dir: Path, *, cwd: Path | None = None, template: str = "llava") -> dict:
    env = {**os.environ, "PYTHONPATH": str(STUBS), "HF_HUB_OFFLINE": "1", "DISABLE_VERSION_CHECK": "1"}
    done = subprocess.run([str(python), str(Path(__file__).with_name("llamafactory_probe.py")), str(recipe),
                           str(model_dir), template], capture_output=True, text=True, timeout=600, env=env,
                          cwd=cwd or recipe.parent.parent)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_llamafactory_reads_the_exact_recipe_with_its_counts(llamafactory, tmp_path, tiny_store, finished_search):
    search, _ = finished_search
    result = export_recipe(tiny_store, search.id, fmt="llamafactory", out=tmp_path / "recipe",
                           options=ExportOptions(budget=400, gpus=2, per_device_batch=4, grad_accum=2))
    seen = _probe(llamafactory, tmp_path / "recipe" / "recipe.yaml", tmp_path / "tiny-llava")
    counts = {s.domain: s.count for s in result.shares if s.count}
    assert seen["mix_strategy"] == "concat" and seen["merged"] == seen["tokenized"] == 400
    assert seen["images_opened"] == 400 and seen["domains"] == counts
    assert seen["tokenized_with_answer"] == 400 and seen["max_steps"] == result.run.max_steps == 25


def test_llamafactory_reads_the_interleaved_recipe(llamafactory, tmp_path, tiny_store, finished_search):
    search, _ = finished_search
    export_recipe(tiny_store, search.id, fmt="llamafactory", out=tmp_path / "recipe",
                  options=ExportOptions(budget=400, strategy="interleave"))
    seen = _probe(llamafactory, tmp_path / "recipe" / "recipe.yaml", tmp_path / "tiny-llava")
    assert seen["mix_strategy"] == "interleave_under"
    assert seen["merged"] == seen["images_opened"] == seen["tokenized"] > 0


def test_llamafactory_reads_the_jsonl_mixture_through_its_dataset_info(llamafactory, tmp_path, tiny_store,
                                                                        finished_search):
    search, _ = finished_search
    result = export_recipe(tiny_store, search.id, fmt="jsonl", out=tmp_path / "mix", options=ExportOptions(budget=300))
    recipe = tmp_path / "mix" / "train.yaml"  # what a user writes: the dataset the directory declares
    recipe.write_text(yaml.safe_dump({"dataset_dir": str(tmp_path / "mix"), "dataset": "dmo_mixture",
                                      "per_device_train_batch_size": 4, "max_steps": 1}))
    seen = _probe(llamafactory, recipe, tmp_path / "tiny-llava")
    assert seen["merged"] == seen["tokenized"] == seen["images_opened"] == 300
    assert seen["domains"] == {s.domain: s.count for s in result.shares if s.count}


@pytest.mark.parametrize("relative", [False, True])
def test_llamafactory_reads_a_user_jsonl_domain_beside_a_synthetic_one(llamafactory, tmp_path, tiny_config, relative):
    """A user's ShareGPT domain keeps its images next to its own file: the recipe must resolve them
    (absolute paths, or copies under --relative, run from the recipe's folder as its header says)."""
    from search_support import configured, search_row

    from dmo.data.sharegpt import write_jsonl
    from dmo.data.synthetic import generate_splits
    from dmo.mixture import Mixture
    from storage import Store

    splits = generate_splits("digit", domain="mine", sizes={"train": 60, "dev": 4, "test": 4}, seed=3)
    for split, samples in splits.items():
        write_jsonl(samples, tmp_path / "mine" / f"{split}.jsonl", image_dir=split)  # the probe reads a domain off <domain>/<split>/x.png
    config = configured(tiny_config, project__workdir=str(tmp_path / "work"))
    config = config.model_copy(update={"domains": (config.domains[0], config.domains[0].model_validate({
        "name": "mine", "source": {"kind": "jsonl", **{s: tmp_path / "mine" / f"{s}.jsonl" for s in splits}}}))})
    with Store.open(f"sqlite:///{tmp_path / 'store.sqlite'}") as store:
        search = search_row(store, config, with_study=False)
        store.record_trial(search_id=search.id, number=0, mixture=Mixture(search.domains, (0.4, 0.6)),
                           merge_method="task_arithmetic", params={}, scores={}, objective=[1.0], state="complete",
                           duration_s=1.0)
        result = export_recipe(store, search.id, fmt="llamafactory", out=tmp_path / "out" / "recipe",
                               options=ExportOptions(budget=100, relative=relative))
    recipe = tmp_path / "out" / "recipe"
    if relative:  # moved elsewhere, then run as its header says: from its own folder
        recipe = (tmp_path / "out" / "recipe").rename(tmp_path / "moved")
    seen = _probe(llamafactory, recipe / "recipe.yaml", tmp_path / "tiny-llava", cwd=recipe if relative else tmp_path)
    counts = {s.domain: s.count for s in result.shares}
    assert counts == {config.domains[0].name: 40, "mine": 60}
    assert seen["merged"] == seen["tokenized"] == seen["images_opened"] == 100 and seen["domains"] == counts


def test_llamafactory_reads_a_video_recipe_opening_every_frame_and_expanding_every_video(
    llamafactory, tmp_path, tiny_config,
):
    """An image domain beside a video domain, read by LLaMA-Factory's loader and tokenized by its
    Qwen2-VL plugin: each clip of 4 frames of 32×32 becomes 2 temporal patches of 4×4 merged 2×2,
    8 video tokens; each image 4 image tokens."""
    from search_support import configured, search_row

    from dmo.mixture import Mixture
    from storage import Store

    config = configured(tiny_config, project__workdir=str(tmp_path / "work"))
    image = config.domains[0]
    video = image.model_validate({"name": "motion", "source": {"kind": "synthetic", "generator": "video_motion"},
                                  "sizes": {"train": 64, "dev": 4, "test": 4}})
    config = config.model_copy(update={"domains": (image, video)})
    with Store.open(f"sqlite:///{tmp_path / 'store.sqlite'}") as store:
        search = search_row(store, config, with_study=False)
        store.record_trial(search_id=search.id, number=0, mixture=Mixture(search.domains, (0.5, 0.5)),
                           merge_method="task_arithmetic", params={}, scores={}, objective=[1.0], state="complete",
                           duration_s=1.0)
        result = export_recipe(store, search.id, fmt="llamafactory", out=tmp_path / "recipe",
                               options=ExportOptions(budget=60))
    info = json.loads((tmp_path / "recipe" / "dataset_info.json").read_text())
    assert info["dmo_motion"]["columns"]["videos"] == "videos" and "videos" not in info[f"dmo_{image.name}"]["columns"]
    seen = _probe(llamafactory, tmp_path / "recipe" / "recipe.yaml", tmp_path / "tiny-qwen2-vl", template="qwen2_vl")
    counts = {s.domain: s.count for s in result.shares if s.count}
    assert counts == {image.name: 30, "motion": 30} and seen["domains"] == counts
    assert seen["merged"] == seen["tokenized"] == seen["tokenized_with_answer"] == 60
    assert seen["images_opened"] == 30 and seen["videos"] == 30 and seen["frames_opened"] == 30 * 4
    assert seen["vision_tokens"] == {"<|image_pad|>x4": 30, "<|image_pad|>x0": 30,
                                     "<|video_pad|>x8": 30, "<|video_pad|>x0": 30}
