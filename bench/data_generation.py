"""Samples per second of the four synthetic domains (target: 4 × 2,000 well under 30 s).

    python bench/data_generation.py [--train 2000] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

from dmo.data import GENERATORS, generate_splits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = {"train": args.train, "dev": 0, "test": 0}
    rows = []
    total_start = time.perf_counter()
    for kind in GENERATORS:
        start = time.perf_counter()
        generate_splits(kind, domain=kind, sizes=sizes, seed=0)
        seconds = time.perf_counter() - start
        rows.append({"domain": kind, "samples": args.train, "seconds": seconds, "samples_per_s": args.train / seconds})
    total = time.perf_counter() - total_start
    result = {"domains": rows, "total_seconds": total, "total_samples_per_s": args.train * len(rows) / total}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(markdown(result))


def markdown(result: dict) -> str:
    lines = ["| domain | samples | seconds | samples/s |", "|---|---:|---:|---:|"]
    for row in result["domains"]:
        lines.append(f"| {row['domain']} | {row['samples']} | {row['seconds']:.2f} | {row['samples_per_s']:.0f} |")
    total_samples = sum(row["samples"] for row in result["domains"])
    lines.append(f"| **all** | {total_samples} | {result['total_seconds']:.2f} | {result['total_samples_per_s']:.0f} |")
    return "\n".join(lines)

if __name__ == "__main__":
    main()
