"""bench/retest_dev_size.py rescores on a config copy whose dev splits alone are larger."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_scaled_config_scales_only_the_dev_splits_and_generated_benchmarks(tmp_path):
    from retest_dev_size import scaled_config

    from dmo.config import load_config

    original = load_config(REPO / "configs" / "demo.yaml")
    scaled = load_config(scaled_config(REPO / "configs" / "demo.yaml", 4, tmp_path))
    for before, after in zip(original.domains, scaled.domains, strict=True):
        assert after.sizes.dev == 4 * before.sizes.dev
        assert (after.sizes.train, after.sizes.test) == (before.sizes.train, before.sizes.test)
    for before, after in zip(original.benchmarks, scaled.benchmarks, strict=True):
        assert after.size == (4 * before.size if before.generator is not None else before.size)
    assert Path(scaled.project.workdir).resolve() == tmp_path.resolve()
    assert scaled.model == original.model and scaled.training == original.training  # the same checkpoints load
