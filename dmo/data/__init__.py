"""Domain data: samples, synthetic generators, ShareGPT JSONL, mixtures, tokenizer, encoding."""

from __future__ import annotations

from dmo._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "dataset_info_entry": "dmo.data.sharegpt",
        "DomainData": "dmo.data.sample",
        "generate_splits": "dmo.data.synthetic",
        "GENERATORS": "dmo.data.synthetic",
        "load_domain": "dmo.data.domains",
        "load_domains": "dmo.data.domains",
        "load_tokenizer": "dmo.data.tokenizer",
        "mixture_counts": "dmo.data.mixture",
        "MixtureStream": "dmo.data.mixture",
        "read_jsonl": "dmo.data.sharegpt",
        "Sample": "dmo.data.sample",
        "SPLITS": "dmo.data.sample",
        "train_tokenizer": "dmo.data.tokenizer",
        "write_domains": "dmo.data.domains",
        "write_jsonl": "dmo.data.sharegpt",
    },
)

__all__ = [
    "dataset_info_entry",
    "DomainData",
    "generate_splits",
    "GENERATORS",
    "load_domain",
    "load_domains",
    "load_tokenizer",
    "mixture_counts",
    "MixtureStream",
    "read_jsonl",
    "Sample",
    "SPLITS",
    "train_tokenizer",
    "write_domains",
    "write_jsonl",
]
