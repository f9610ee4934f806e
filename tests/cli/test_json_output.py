"""What scripts read: `--json` output is strict JSON, and progress bars never mix into stdout."""

from __future__ import annotations

import json

import pytest

from dmo.cli.options import print_json


def _strict(text: str):
    def refuse(constant: str):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_undefined_correlations_print_as_null(capsys):
    print_json({"spearman": float("nan"), "rows": [1.5, float("inf")], "nested": {"tau": float("-inf")}})
    assert _strict(capsys.readouterr().out) == {"spearman": None, "rows": [1.5, None], "nested": {"tau": None}}


def test_training_progress_goes_to_stderr(tiny_config, tiny_data, tmp_path, capsys):
    from dmo.training.jobs import base_spec, initial_model
    from dmo.training.loop import TrainingRun, train

    settings = tiny_config.training.base.model_copy(update={"steps": 3})
    run = TrainingRun(name="progress", weights=base_spec(tiny_config).weights, settings=settings, seed=0)
    train(run, initial_model(tiny_config, tiny_data, None, seed=0), tiny_data, tmp_path / "m", show_progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "progress" in captured.err


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_the_strict_parser_used_above_does_refuse_non_finite_numbers(value):
    with pytest.raises(ValueError):
        _strict(json.dumps({"x": value}))
