"""Run every benchmark and write docs/benchmarks.md (`make bench`).

Each benchmark runs in its own process with `--json` (so one's memory and
threads do not colour the next) and measures its figure against its
comparison inside that one run. The report keeps the raw JSON beside the
tables in docs/benchmarks.json, so later changes can be compared figure by
figure.

    python bench/run_all.py                  # everything (~30 min on 2 cores once the demo is trained and validated)
    python bench/run_all.py --quick          # small settings, a smoke test of the report (~5 min)
    python bench/run_all.py --only scale mod # a subset; the other sections keep their last figures
    python bench/run_all.py --render         # rewrite benchmarks.md from benchmarks.json, measuring nothing
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    script: str
    args: tuple[str, ...]
    quick_args: tuple[str, ...]
    target: str


SECTIONS = (
    Section("merge", "1. Proxy build: dmo vs mergekit and vs memory bandwidth", "merge_throughput.py",
            ("--threads", "1"), ("--quick", "--threads", "1"),
            "≥ 50× mergekit `run_merge` on the same experts; ≥ 50 % of a large `tensor.copy_`'s bandwidth"),
    Section("mod", "2. Mixture-of-Depths vs dense (default PRD schedule)", "mod_efficiency.py",
            ("--steps", "300"), ("--steps", "20", "--patch", "8"),
            "FLOPs ≤ 0.6 of dense with accuracy within 2 points"),
    Section("search", "3. Search efficiency", "search_efficiency.py",
            ("--seeds", "10", "--budget", "40", "--dev-limit", "50"), ("--seeds", "2", "--budget", "12", "--dev-limit", "10"),
            "the default sampler reaches the dense grid's best (± 0.5) in ≤ 0.5× the evaluations of random search"),
    Section("decision", "4–5. Cost of a DMO decision, and proxy fidelity", "decision_cost.py",
            ("--mixtures", "10"), ("--mixtures", "10", "--no-run"),
            "fidelity: Spearman ρ ≥ 0.8 and top-1 regret ≤ 1 point on ≥ 10 mixtures; proxies cheaper than training"),
    Section("scale", "6. Scale with K and model size", "scale.py", ("--dev", "10"), ("--quick",),
            "proxy build stays a small share of a trial as K and the model grow"),
    Section("generation", "7. Proxy scoring: greedy generation with the per-layer KV cache", "generation.py",
            (), ("--quick",), "≥ 4× the uncached path and ≥ 50 % of the machine's matmul limit"),
    Section("generation_wide", "7b. Proxy scoring at four times the demo's width", "generation.py",
            ("--hidden", "512", "--batch", "64", "--rounds", "3"), ("--quick", "--hidden", "256"),
            "what §7's fraction of the matmul limit is at hidden 512 instead of the demo's 128"),
    Section("startup", "8. Start-up of the store commands", "startup.py", (), ("--quick",),
            "`dmo --help`, `dmo searches` and `dmo best` each answer in ≤ 0.5 s"),
    Section("subset", "9. Subset scoring: proxies ranked on anchor subsets", "subset_scoring.py", (), ("--quick",),
            "the ranking of 40 proxies from ≤ 25 % of the dev samples has Spearman ρ ≥ 0.95 against full-split scoring"),
    Section("subset_large", "9b. Subset scoring with dev splits four times as large", "subset_scoring.py",
            ("--dev-scale", "4"), ("--quick", "--dev-scale", "2"),
            "the same, with every dev split four times the demo search's (800 when it held 200, as it did "
            "until 2026-12-03; real benchmarks hold thousands)"),
    Section("video", "10. VideoLLM-MoD vs dense on a video domain", "video_mod.py", (), ("--quick",),
            "≥ 40 % less training time and ≥ 30 % less memory at no more than 1 point lower accuracy"),
    Section("bank", "11. Proxies of LoRA experts: factors in hooks or a dense bank", "bank_layouts.py",
            ("--draws", "20", "--seed", "15"), ("--draws", "2"),
            "on the demo's small model the dense bank (what `search.merge.bank: auto` picks there) scores "
            "proxies faster than the factored one, with identical scores"),
    Section("data", "Data generation", "data_generation.py", ("--train", "2000"), ("--train", "500"),
            "4 × 2,000 samples well under 30 s"),
)


def load_module(script: str):
    spec = importlib.util.spec_from_file_location(Path(script).stem, BENCH / script)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def run_section(section: Section, quick: bool) -> dict:
    args = section.quick_args if quick else section.args
    shown = " ".join(["python", f"bench/{section.script}", *args])
    command = [sys.executable, str(BENCH / section.script), *args, "--json"]
    print(f"== {section.title}: {shown}", flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    measured = {"command": shown, "seconds": seconds, "date": _now(), "quick": quick, "machine": machine()}
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {**measured, "error": f"exit {done.returncode}: {last}"}
    return {**measured, "result": json.loads(done.stdout)}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{cpu}, {len(os.sched_getaffinity(0))} cores, {memory:.0f} GiB RAM, no GPU used; "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def report_markdown(results: dict, quick: bool) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python bench/run_all.py`); do not edit by hand.",
        "",
        f"- date: {results['date']}",
        f"- machine: {results['machine']}",
        f"- mode: {'quick (smoke-test settings; not the headline figures)' if quick else 'full'}",
        "",
        "Each figure is measured in one run against its comparison, so the load of a shared",
        "machine mostly cancels out of the ratios. A figure that misses its target is reported",
        "as it is; docs/limits.md says what limits it.",
    ]
    for section in SECTIONS:
        entry = results["sections"].get(section.key)
        lines += ["", f"## {section.title}", "", f"Target: {section.target}.", ""]
        if entry is None:
            lines.append("_not run_")
            continue
        # With --only, other sections keep figures from an earlier run: each says when and how it ran.
        when = entry.get("date", results["date"])
        mode = ", quick settings" if entry.get("quick", results["quick"]) else ""
        where = entry.get("machine", results["machine"])
        elsewhere = f"; on {where}" if where != results["machine"] else ""
        lines += [f"Command: `{entry['command']}` ({entry['seconds']:.0f} s, run {when}{mode}{elsewhere})", ""]
        if "error" in entry:
            lines.append(f"**failed** ({entry['error']}); see the command's output.")
        else:
            lines.append(load_module(section.script).markdown(entry["result"]))
    return "\n".join(lines) + "\n"


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small settings: checks the report, not the figures")
    parser.add_argument("--only", nargs="+", choices=[s.key for s in SECTIONS], help="run only these sections")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument("--render", action="store_true", help="measure nothing: rewrite the report from its raw JSON")
    args = parser.parse_args(argv)
    if args.render:
        results = json.loads(args.out.with_suffix(".json").read_text())
        _write_atomically(args.out, report_markdown(results, results["quick"]))
        print(f"wrote {args.out}")
        return 0

    raw_path = args.out.with_suffix(".json")
    previous = json.loads(raw_path.read_text()) if args.only and raw_path.exists() else {"sections": {}}
    results = {
        "date": _now(),
        "machine": machine(),
        "quick": args.quick,
        # A section kept from an earlier run keeps the machine it ran on.
        "sections": {key: {"machine": previous.get("machine"), **entry} for key, entry in previous["sections"].items()},
    }
    for section in SECTIONS:
        if args.only is None or section.key in args.only:
            results["sections"][section.key] = run_section(section, args.quick)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    for path, text in ((raw_path, json.dumps(results, indent=2) + "\n"), (args.out, report_markdown(results, args.quick))):
        _write_atomically(path, text)
    print(f"wrote {args.out} and {raw_path}")
    failed = [key for key, entry in results["sections"].items() if "error" in entry]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
