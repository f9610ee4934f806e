"""Domain data: samples, synthetic generators, ShareGPT JSONL, mixtures, tokenizer, encoding."""

from __future__ import annotations

from dmo.data.domains import load_domain, load_domains, write_domains
from dmo.data.mixture import MixtureStream, check_weights, mixture_counts
from dmo.data.sample import SPLITS, DomainData, Sample
from dmo.data.sharegpt import dataset_info_entry, read_jsonl, write_jsonl
from dmo.data.synthetic import GENERATORS, generate_splits
from dmo.data.tokenizer import load_tokenizer, train_tokenizer

__all__ = [
    "GENERATORS",
    "SPLITS",
    "DomainData",
    "MixtureStream",
    "Sample",
    "check_weights",
    "dataset_info_entry",
    "generate_splits",
    "load_domain",
    "load_domains",
    "load_tokenizer",
    "mixture_counts",
    "read_jsonl",
    "train_tokenizer",
    "write_domains",
    "write_jsonl",
]
