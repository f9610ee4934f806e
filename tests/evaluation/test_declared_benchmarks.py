"""Benchmarks declared apart from the domains: their own files and metrics, scored by a real search.

The tiny project trains three domains (general, ocr, counting); the search here scores its proxies
on three other sets — digits read off an image (exact match), counts with ten "annotators" each
(VQA accuracy), chart values (relaxed accuracy) — and keeps a fourth for reporting only.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dmo.errors import DataError
from search_support import configured


def _benchmark_file(folder: Path, generator: str, *, size: int, seed: int, annotators: bool = False) -> Path:
    from dmo.data.sharegpt import write_jsonl
    from dmo.data.synthetic import generate_splits

    samples = generate_splits(generator, domain=folder.name, sizes={"train": 1, "dev": size, "test": 1}, seed=seed,
                              image_size=32)["dev"]
    path = folder / "bench.jsonl"
    write_jsonl(samples, path, image_dir="images")
    if annotators:  # seven annotators give the answer, three a wrong one: every right answer earns min(7/3, 1) = 1
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        for line in lines:
            answer = line["messages"][1]["content"]
            line["answers"] = [answer] * 7 + ["none"] * 3
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture(scope="module")
def benchmark_files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("benchmarks")
    specs = {"digits": ("digit", {}), "counts": ("counting", {"annotators": True}), "charts": ("chart", {}),
             "held_out": ("ocr", {})}
    files = {}
    for index, (name, (generator, extra)) in enumerate(specs.items()):
        (root / name).mkdir()
        files[name] = _benchmark_file(root / name, generator, size=12, seed=100 + index, **extra)
    return files


def _declared(tiny_config, files):
    return configured(tiny_config, search__trials=3, benchmarks=[
        {"name": "digits", "file": str(files["digits"]), "metric": "exact_match"},
        {"name": "counts", "file": str(files["counts"]), "metric": "vqa_accuracy", "weight": 2.0},
        {"name": "charts", "file": str(files["charts"]), "metric": "relaxed_accuracy"},
        {"name": "held_out", "file": str(files["held_out"]), "metric": "anls", "role": "report"},
    ])


def test_a_search_scores_declared_benchmarks_by_their_metrics_and_never_reads_a_report_one(
        tiny_config, tiny_store, tiny_models, tiny_data, benchmark_files, tmp_path, dmo_cli):
    from dmo.data.prepared import PreparedData
    from dmo.search.pool import LocalPool
    from dmo.search.proxy import ProxyEvaluator
    from dmo.search.searches import create_search, proxy_source, run_search

    report = benchmark_files["held_out"]
    hidden = tmp_path / "held_out.jsonl"
    report.rename(hidden)  # a search that opened the report file would fail on it
    try:
        config = _declared(tiny_config, benchmark_files)
        base, experts = tiny_models
        search = create_search(tiny_store, config, base=base, experts=experts)
        data = PreparedData(tiny_data.domains, tiny_data.encoder)
        outcome = run_search(tiny_store, search, LocalPool(ProxyEvaluator(proxy_source(tiny_store, search), data=data)))
    finally:
        hidden.rename(report)
    assert outcome.completed == 3 and set(data.benchmarks) == {"digits", "counts", "charts"}
    assert search.metric == "benchmark" and search.benchmarks == ("digits", "counts", "charts")
    assert search.benchmark_metrics == {"digits": "exact_match", "counts": "vqa_accuracy", "charts": "relaxed_accuracy"}
    trials = tiny_store.trials(search.id)
    for trial in trials:
        assert set(trial.scores) == {"digits", "counts", "charts"}
        expected = (trial.scores["digits"] + 2 * trial.scores["counts"] + trial.scores["charts"]) / 4  # weight 2
        assert trial.objective[0] == pytest.approx(expected)
    # The stored scores are the proxy's: a fresh evaluator re-scores the best mixture to the same points.
    best = tiny_store.best_trials(search.id, top_k=1)[0]
    fresh = ProxyEvaluator(proxy_source(tiny_store, search))
    again = fresh.evaluate([best.weights[d] for d in config.domain_names]).scores["benchmark"]
    assert again == pytest.approx(best.scores, abs=1e-9)

    # What a user reads: dmo best --json and the exported JSON recipe name every benchmark's metric and score.
    shown = dmo_cli("best", "--search", search.id, "--store-url", tiny_store.url, "--json")
    assert shown.code == 0, shown.err
    report_json = json.loads(shown.out)
    assert report_json["search"]["metric"] == "benchmark"
    assert report_json["search"]["benchmarks"] == search.benchmark_metrics
    assert report_json["trials"][0]["scores"] == pytest.approx(best.scores)
    table = dmo_cli("best", "--search", search.id, "--store-url", tiny_store.url)
    assert table.code == 0 and "vqa_accuracy" in table.out and "declared benchmarks" in table.out
    recipe = tmp_path / "recipe.json"
    exported = dmo_cli("export", search.id, "--format", "json", "--out", recipe, "--store-url", tiny_store.url,
                       "-c", tmp_path / "absent.yaml")
    assert exported.code == 0, exported.err
    provenance = json.loads(recipe.read_text())["provenance"]
    assert provenance["benchmarks"] == search.benchmark_metrics and set(provenance["scores"]) == set(search.benchmarks)


def test_declared_scores_are_the_scorers_on_the_decoded_answers(tiny_config, tiny_models, tiny_data, benchmark_files):
    """Re-derive one benchmark's score by hand: greedy answers decoded to text, scored by the registry's scorer."""
    from dmo.data.domains import load_benchmarks
    from dmo.data.encoding import prompt_batch
    from dmo.data.prepared import PreparedData
    from dmo.evaluation import evaluate
    from dmo.evaluation.benchmarks import declared_benchmarks
    from dmo.evaluation.scorers import get_scorer
    from dmo.models.backends import backend_for

    config = _declared(tiny_config, benchmark_files)
    data = PreparedData(tiny_data.domains, tiny_data.encoder)
    data.add_benchmarks(load_benchmarks(config, ("search",)))
    backend = backend_for(config)
    _, experts = tiny_models
    model = backend.load(Path(experts["counting"].checkpoint_uri))
    result = evaluate(model, data, declared_benchmarks(config, "search"), backend=backend, max_new_tokens=8)
    split = data.encoded_benchmark("counts")
    rows = backend.generate(model, prompt_batch(split, list(range(len(split))), data.pad_id), max_new_tokens=8,
                            eos_id=data.eos_id, pad_id=data.pad_id).tolist()
    answers = [data.encoder.decode(row[: row.index(data.eos_id)] if data.eos_id in row else row) for row in rows]
    references = [s.reference_answers for s in data.benchmarks["counts"]]
    assert len(references[0]) == 10
    assert result.benchmarks["counts"].score == pytest.approx(get_scorer("vqa_accuracy").aggregate(answers, references))
    assert result.benchmarks["counts"].likelihood is None  # no second pass where the metric does not need it
    assert {b: s.metric for b, s in result.benchmarks.items()} == {
        "digits": "exact_match", "counts": "vqa_accuracy", "charts": "relaxed_accuracy"}


def test_a_malformed_benchmark_line_or_missing_image_is_refused_with_file_and_line(tiny_config, benchmark_files):
    from dmo.data.domains import load_benchmarks

    broken = benchmark_files["digits"].parent / "broken.jsonl"  # beside the images its lines name
    lines = benchmark_files["digits"].read_text().splitlines()
    broken.write_text(lines[0] + "\n" + lines[1][:-3] + "\n")
    config = configured(tiny_config, benchmarks=[{"name": "broken", "file": str(broken)}])
    with pytest.raises(DataError, match="malformed JSON") as caught:
        load_benchmarks(config, ("search",))
    assert caught.value.where == f"{broken}:2"
    record = json.loads(lines[0])
    record["images"] = ["images/nowhere.png"]
    broken.write_text(json.dumps(record) + "\n")
    with pytest.raises(DataError, match="image not found") as caught:
        load_benchmarks(config, ("search",))
    assert caught.value.where == f"{broken}:1"
    record["answers"] = "seven"
    broken.write_text(json.dumps(record) + "\n")
    with pytest.raises(DataError, match="'answers' must be a list"):
        load_benchmarks(config, ("search",))


def test_benchmark_config_errors_name_the_field():
    from dmo.config import parse_config

    base = "domains:\n  - {name: a, source: {kind: synthetic, generator: general}}\n"
    cases = {
        "benchmarks:\n  - {name: x, file: x.jsonl, metric: vqa}\n": "unknown metric 'vqa'",
        "benchmarks:\n  - {name: x, file: x.jsonl, role: report}\n": "no benchmark has role 'search'",
        "benchmarks:\n  - {name: x, file: x.jsonl}\n  - {name: x, file: y.jsonl}\n": "duplicate benchmark names: x",
        ("benchmarks:\n  - {name: x, file: x.jsonl, weight: 2}\n"
         "search: {objective: {kind: weighted, weights: {x: 1}}}\n"): "keep one",
        ("benchmarks:\n  - {name: x, file: x.jsonl}\n"
         "search: {objective: {kind: weighted, weights: {a: 1}}}\n"): "unknown search benchmarks: a",
        "benchmarks:\n  - {name: x, file: x.jsonl, generator: count_color}\n": "exactly one of 'file', 'generator'",
        "benchmarks:\n  - {name: x}\n": "exactly one of 'file', 'generator'",
        "benchmarks:\n  - {name: x, generator: count_colour}\n": "unknown benchmark generator 'count_colour'",
        "benchmarks:\n  - {name: x, domain: b}\n": "names unknown domain 'b'",
    }
    from dmo.errors import ConfigError

    for text, message in cases.items():
        with pytest.raises(ConfigError) as caught:
            parse_config(base + text, source="bench.yaml")
        assert message in caught.value.render(), (text, caught.value.render())


def test_dmo_eval_scores_the_report_benchmarks_a_search_never_saw(tiny_config, tiny_models, benchmark_files, tmp_path,
                                                                 dmo_cli, repo_root):
    import yaml

    data = yaml.safe_load((repo_root / "configs" / "tiny.yaml").read_text())
    data["project"]["workdir"] = str(tiny_config.project.workdir)
    data["benchmarks"] = [{"name": "digits", "file": str(benchmark_files["digits"])},
                          {"name": "held_out", "file": str(benchmark_files["held_out"]), "role": "report",
                           "metric": "anls"}]
    project = tmp_path / "bench.yaml"
    project.write_text(yaml.safe_dump(data))
    _, experts = tiny_models
    checkpoint = experts["ocr"].checkpoint_uri
    scored = dmo_cli("eval", checkpoint, "-c", project, "--benchmarks", "report", "--json")
    assert scored.code == 0, scored.err
    result = json.loads(scored.out)
    assert result["split"] == "report" and set(result["benchmarks"]) == {"held_out"}
    held_out = result["benchmarks"]["held_out"]
    assert held_out["metric"] == "anls" and 0 <= held_out["score"] <= 100 and held_out["samples"] == 12
    assert result["average"]["benchmark"] == held_out["score"]
    del data["benchmarks"][1]
    project.write_text(yaml.safe_dump(data))
    dmo_cli("eval", checkpoint, "-c", project, "--benchmarks", "report").refused("the config declares no report benchmark")


def test_generated_and_domain_benchmarks_load_beside_files(tiny_config, tiny_data, benchmark_files):
    from dmo.data.domains import load_benchmarks

    config = configured(tiny_config, benchmarks=[
        {"name": "ocr_dev", "domain": "ocr", "metric": "anls"},
        {"name": "present", "generator": "shape_present", "size": 20, "metric": "yes_no_f1"},
        {"name": "digits", "file": str(benchmark_files["digits"]), "role": "report"},
        {"name": "ocr_test", "domain": "ocr", "role": "report"}])
    loaded = load_benchmarks(config, ("search",), tiny_data.domains)
    assert load_benchmarks(config, ("report",), tiny_data.domains)["ocr_test"] == tiny_data.domains["ocr"].test
    assert list(loaded) == ["ocr_dev", "present"]  # the report file is not read
    assert loaded["ocr_dev"] == tiny_data.domains["ocr"].dev and len(loaded["present"]) == 20
    assert {s.answer for s in loaded["present"]} == {"yes", "no"}
    assert [s.answer for s in load_benchmarks(config, ("search",))["present"]] == [s.answer for s in loaded["present"]]
