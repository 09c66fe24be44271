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
