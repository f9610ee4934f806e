"""Run inside the lmms-eval virtualenv (`make lmms-venv`) by tests/evaluation/test_lmms_eval.py.

    .venv-lmms/bin/python tests/evaluation/lmms_eval_check.py WORKDIR

Builds a tiny random LLaVA checkpoint, moves its weights in memory (a model that exists nowhere
on disk, as a proxy does), and scores it on one local lmms-eval task through a dmo benchmark.
The task's reference answers are the model's own greedy answers as dmo's path decodes them, with
every other one spoiled, so the score is exactly 50 only if lmms-eval saw the prompts, images and
answers dmo's own scorer sees. Prints one JSON object.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

SAMPLES = 12
NEW_TOKENS = 8


def main(workdir: Path) -> dict:
    from hf_support import hf_project, tiny_llava

    from dmo.config.loader import parse_config
    from dmo.data.domains import load_benchmarks
    from dmo.data.encoding import prompt_batch
    from dmo.data.prepared import PreparedData
    from dmo.data.sharegpt import write_jsonl
    from dmo.data.synthetic import generate_splits
    from dmo.errors import ConfigError
    from dmo.evaluation import evaluate
    from dmo.evaluation.benchmarks import declared_benchmarks
    from dmo.evaluation.scoring import until_end
    from dmo.models.backends import backend_for

    checkpoint = tiny_llava(workdir / "llava")
    disk_bytes = {p.name: p.read_bytes() for p in checkpoint.glob("*.safetensors")}
    task_dir = workdir / "tasks"
    task_dir.mkdir()
    data_file = task_dir / "digits.jsonl"
    samples = generate_splits("digit", domain="digits", sizes={"train": 1, "dev": SAMPLES, "test": 1}, seed=5,
                              image_size=32)["dev"]
    write_jsonl(samples, data_file, image_dir="images")
    (task_dir / "utils.py").write_text((REPO / "configs/examples/lmms_tasks/utils.py").read_text())
    task_yaml = (REPO / "configs/examples/lmms_tasks/sharegpt_exact_match.yaml").read_text()
    task_yaml = task_yaml.replace("/absolute/path/to/benchmark.jsonl", str(data_file))
    task_yaml = task_yaml.replace("max_new_tokens: 16", f"max_new_tokens: {NEW_TOKENS}")
    (task_dir / "sharegpt_exact_match.yaml").write_text(task_yaml)

    import yaml

    project = yaml.safe_load(hf_project((REPO / "configs/tiny.yaml").read_text(), checkpoint, workdir / "work"))
    project["benchmarks"] = [
        {"name": "digits_file", "file": str(data_file), "metric": "exact_match"},
        {"name": "digits_lmms", "metric": "lmms_eval",
         "lmms_eval": {"task": "sharegpt_exact_match", "tasks_dir": str(task_dir), "score": "exact_match"}},
    ]
    config = parse_config(yaml.safe_dump(project), source="check.yaml")
    backend = backend_for(config)
    model = backend.load(checkpoint)
    torch.manual_seed(1)
    with torch.no_grad():  # weights that exist only in memory, as a proxy's do
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    encoder = backend.checkpoint_encoder(config, checkpoint)
    data = PreparedData({}, encoder)
    data.add_benchmarks(load_benchmarks(config, ("search",)))

    # dmo's own answers, then references that make exactly every other one right.
    split = data.encoded_benchmark("digits_file")
    rows = backend.generate(model, prompt_batch(split, list(range(len(split))), data.pad_id),
                            max_new_tokens=NEW_TOKENS, eos_id=data.eos_id, pad_id=data.pad_id).tolist()
    answers = [encoder.decode(until_end(row, data.eos_id)) for row in rows]
    lines = [json.loads(line) for line in data_file.read_text().splitlines()]
    for index, line in enumerate(lines):
        line["messages"][1]["content"] = answers[index] if index % 2 == 0 else f"{answers[index]} spoiled"
    data_file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    data = PreparedData({}, encoder)
    data.add_benchmarks(load_benchmarks(config, ("search",)))

    result = evaluate(model, data, declared_benchmarks(config, "search"), backend=backend, max_new_tokens=NEW_TOKENS)
    errors = {}
    for name, change in {"unknown_task": {"task": "nope"}, "unknown_score": {"score": "bleu"}}.items():
        broken = dict(project, benchmarks=[{**project["benchmarks"][1],
                                            "lmms_eval": {**project["benchmarks"][1]["lmms_eval"], **change}}])
        try:
            bad = parse_config(yaml.safe_dump(broken), source="check.yaml")
            evaluate(model, data, declared_benchmarks(bad, "search"), backend=backend, max_new_tokens=NEW_TOKENS)
            errors[name] = None
        except ConfigError as error:
            errors[name] = error.render()
    return {
        "scores": {name: score.score for name, score in result.benchmarks.items()},
        "samples": {name: score.samples for name, score in result.benchmarks.items()},
        "distinct_answers": len(set(answers)),
        "checkpoint_unchanged": disk_bytes == {p.name: p.read_bytes() for p in checkpoint.glob("*.safetensors")},
        "checkpoints_written": sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*.safetensors")),
        "errors": errors,
    }


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
