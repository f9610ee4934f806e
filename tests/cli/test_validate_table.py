"""`dmo validate`'s table puts each proxy figure beside the real ranking's agreement with itself."""

from __future__ import annotations

import numpy as np

from dmo.fidelity.validate import ValidationPlan, _Planned, summarise
from dmo.mixture import Mixture


def test_with_repeats_every_row_shows_the_real_ranking_s_own_rho_and_regret_beside_the_proxy_s():
    from dmo.cli.common import console
    from dmo.cli.validate_cmd import print_summary

    rng = np.random.default_rng(0)
    names = ["ocr", "chart"]
    planned = [_Planned(Mixture.of(["a", "b"], [w, 1 - w]), "draw") for w in np.linspace(0.1, 0.9, 6)]
    proxy = [{b: float(rng.normal()) for b in names} for _ in planned]
    real = {(i, r): {b: float(i + rng.normal(scale=1.5)) for b in names} for i in range(6) for r in range(2)}
    summary = summarise(planned, proxy, real, names, ValidationPlan(mixtures=6, repeats=2, picks=0))
    summary["metric"] = "em"
    width = console.width
    console.width = 200  # one table row per line, whatever terminal runs the tests
    try:
        with console.capture() as captured:
            print_summary(1, summary)
        table = captured.get()
        without = summarise(planned, proxy, {(i, 0): real[i, 0] for i in range(6)}, names,
                            ValidationPlan(mixtures=6, repeats=1, picks=0))
        without["metric"] = "em"
        with console.capture() as captured:
            print_summary(1, without)
        table_without = captured.get()
    finally:
        console.width = width
    lines = table.splitlines()
    assert any("real vs real" in line for line in lines)
    retest = summary["retest"]
    mean_row = next(line for line in lines if line.lstrip("│ ").startswith("mean score"))
    assert f"{retest['mean_score']['spearman']:.3f}" in mean_row and f"{retest['mean_score']['regret']:.2f}" in mean_row
    ocr_row = next(line for line in lines if line.lstrip("│ ").startswith("ocr"))
    ocr = retest["per_benchmark"]["ocr"]
    assert f"{ocr['spearman']:.3f}" in ocr_row and f"{ocr['regret']:.2f}" in ocr_row
    assert "real vs real ρ" not in table_without and "--repeats 2" in table_without


def test_the_transfer_lines_show_the_band_pick_the_no_proxy_law_and_the_blend_beside_the_calibrated_proxy():
    from dmo.cli.common import console
    from dmo.cli.validate_cmd import print_summary

    names = ["ocr"]
    planned = [_Planned(Mixture.of(["a", "b"], [w, 1 - w]), "draw") for w in np.linspace(0.1, 0.9, 4)]
    summary = summarise(planned, [{"ocr": float(i)} for i in range(4)], {(i, 0): {"ocr": float(i)} for i in range(4)},
                        names, ValidationPlan(mixtures=4, picks=0))
    summary["metric"] = "em"
    row = {"spearman": 0.5, "spearman_90": [0.1, 0.8], "kendall": 0.4, "regret": 1.25}
    calibrated = {**row, "band": 0.62, "band_regret": 0.125}
    summary["calibration_transfer"] = {"raw": row, "calibrated": calibrated, "fitted_on_validations": [1], "fitted_on": 20,
                                       "judged_on": 4, "mixture_law": {**row, "spearman": 0.777, "regret": 3.5},
                                       "blend": {**row, "spearman": 0.888, "regret": 0.25}}
    width = console.width
    console.width = 400  # one line per print: the transfer line is long
    try:
        with console.capture() as captured:
            print_summary(2, summary)
        summary["calibration_transfer"]["mixture_law"] = None
        with console.capture() as without:
            print_summary(2, summary)
    finally:
        console.width = width
    transfer_line = next(line for line in captured.get().splitlines() if "--calibrated" in line)
    assert "band pick 0.12, band 0.62" in transfer_line  # the tie-aware pick's regret beside the plain pick's
    blend_line = next(line for line in captured.get().splitlines() if "blend" in line)
    assert "0.888" in blend_line and "0.25" in blend_line and "--calibrated" not in blend_line
    law_line = next(line for line in captured.get().splitlines() if "mixture law" in line)
    assert "0.777" in law_line and "3.50" in law_line and "--calibrated` ranks by" in law_line
    assert "too few earlier mixtures" in without.get() and "0.777" not in without.get()
