"""The Markdown table of `radassist evaluate` shows every task that was run."""

from imaging.evaluation.run import markdown_table


def test_ddx_only_result_has_its_rows():
    result = {
        "medpix.ddx_hit@5": {"value": 0.358, "ci95": [0.254, 0.478]},
        "baselines.medpix.ddx_nearest_case_hit@1": {"value": 0.09, "ci95": [0.03, 0.164]},
        "medpix.ddx_n_cases": 67,
    }
    table = markdown_table(result)
    assert "| medpix.ddx_hit@5 | 0.358 [0.254, 0.478] |" in table
    assert "baselines.medpix.ddx_nearest_case_hit@1" in table
    assert "ddx_n_cases" not in table  # counts are not metrics with intervals


def test_ece_floor_is_what_perfect_calibration_shows_at_this_sample_size():
    import numpy as np

    from imaging.evaluation.metrics import ece_floor, expected_calibration_error

    rng = np.random.default_rng(3)
    p = rng.beta(0.6, 0.6, size=145)  # confident predictions, as a trained head makes
    small, large = ece_floor(p, n_sim=400), ece_floor(np.tile(p, 40), n_sim=100)
    assert small["n"] == 145 and small["p05"] <= small["median"] <= small["p95"]
    assert small["median"] > 0.03  # 145 images: far from zero even when perfectly calibrated
    assert large["median"] < small["median"] / 3  # shrinks like 1/sqrt(n)
    y = rng.random(145) < p  # a truly calibrated sample lands inside the range
    assert expected_calibration_error(y, p) <= small["p95"] + 0.02
    y_bad = rng.random(145) < np.clip(p * 0.4, 0, 1)  # overconfident: far outside it
    assert expected_calibration_error(y_bad, p) > small["p95"]
    table = markdown_table({"nih_cxr14.ece": {"value": 0.066, "ci95": [0.057, 0.123]},
                            "nih_cxr14.ece_perfect_calibration": small})
    assert "perfectly calibrated" in table and "145 images" in table
