"""Turn configured domains and benchmarks into samples: synthetic generators or user JSONL."""

from __future__ import annotations

from pathlib import Path

from dmo.config.schema import DmoConfig, DomainSettings, JsonlSource
from dmo.data.sample import SPLITS, DomainData, Sample
from dmo.data.sharegpt import dataset_info_entry, read_jsonl, write_jsonl
from dmo.data.synthetic import generate_splits
from dmo.files import write_text


def load_domain(settings: DomainSettings, *, seed: int, image_size: int) -> DomainData:
    source = settings.source
    if isinstance(source, JsonlSource):
        splits = {
            split: read_jsonl(getattr(source, split), domain=settings.name, image_size=image_size)
            for split in SPLITS
        }
    else:
        splits = generate_splits(
            source.generator,
            domain=settings.name,
            sizes=settings.sizes.model_dump(),
            seed=seed,
            image_size=image_size,
        )
    return DomainData(name=settings.name, **splits)


def load_domains(config: DmoConfig) -> dict[str, DomainData]:
    """Every configured domain, in config order."""
    return {
        d.name: load_domain(d, seed=config.project.seed, image_size=config.model.image_size)
        for d in config.domains
    }


def load_benchmarks(config: DmoConfig, roles: tuple[str, ...],
                    domains: dict[str, DomainData] | None = None) -> dict[str, tuple[Sample, ...]]:
    """The configured benchmarks of these roles, in config order. A search asks for ("search",) only:
    a report benchmark's file is never opened while mixtures are being chosen. A benchmark over a
    domain is its dev split (a search chooses on it) or, for a report benchmark, its test split (never
    seen while choosing), taken from ``domains`` when given (else the domain is loaded)."""
    loaded = {}
    for benchmark in config.benchmarks:
        if benchmark.role not in roles:
            continue
        if benchmark.domain is not None:
            if domains is None or benchmark.domain not in domains:
                settings = next(d for d in config.domains if d.name == benchmark.domain)
                domains = {**(domains or {}), benchmark.domain: load_domain(
                    settings, seed=config.project.seed, image_size=config.model.image_size)}
            data = domains[benchmark.domain]
            loaded[benchmark.name] = data.test if benchmark.role == "report" else data.dev
        elif benchmark.lmms_eval is not None:
            continue  # lmms-eval reads its task's own data when it scores
        elif benchmark.file is not None:
            loaded[benchmark.name] = read_jsonl(benchmark.file, domain=benchmark.name, image_size=config.model.image_size)
        else:
            loaded[benchmark.name] = generate_splits(
                benchmark.generator, domain=benchmark.name, sizes={"dev": benchmark.size}, seed=config.project.seed,
                image_size=config.model.image_size)["dev"]
    return loaded


def write_domains(domains: dict[str, DomainData], out: Path) -> dict[str, dict]:
    """Write each domain as `<out>/<domain>/<split>.jsonl` + PNGs and a LLaMA-Factory dataset_info.json."""
    import json

    out = Path(out)
    info: dict[str, dict] = {}
    for name, data in domains.items():
        for split in SPLITS:
            rel = f"{name}/{split}.jsonl"
            write_jsonl(data.split(split), out / rel, image_dir=f"images/{split}")
            samples = data.split(split)
            info[f"{name}_{split}"] = dataset_info_entry(rel, images=not all(s.is_video for s in samples),
                                                         videos=any(s.is_video for s in samples))
    write_text(out / "dataset_info.json", json.dumps(info, indent=2) + "\n", force=True)
    return info
