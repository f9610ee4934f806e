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


def load_benchmarks(config: DmoConfig, roles: tuple[str, ...]) -> dict[str, tuple[Sample, ...]]:
    """The configured benchmarks of these roles, in config order. A search asks for ("search",) only:
    a report benchmark's file is never opened while mixtures are being chosen."""
    return {
        b.name: read_jsonl(b.file, domain=b.name, image_size=config.model.image_size)
        for b in config.benchmarks
        if b.role in roles
    }


def write_domains(domains: dict[str, DomainData], out: Path) -> dict[str, dict]:
    """Write each domain as `<out>/<domain>/<split>.jsonl` + PNGs and a LLaMA-Factory dataset_info.json."""
    import json

    out = Path(out)
    info: dict[str, dict] = {}
    for name, data in domains.items():
        for split in SPLITS:
            rel = f"{name}/{split}.jsonl"
            write_jsonl(data.split(split), out / rel, image_dir=f"images/{split}")
            info[f"{name}_{split}"] = dataset_info_entry(rel)
    write_text(out / "dataset_info.json", json.dumps(info, indent=2) + "\n", force=True)
    return info
