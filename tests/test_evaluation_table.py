"""The Markdown table of `radassist evaluate` shows every task that was run, the baselines
beside the model, and intervals that resample cases / patients."""

from imaging.evaluation.run import markdown_table


def test_ddx_only_result_has_its_rows():
    result = {
        "medpix.ddx_hit@5": {"value": 0.358, "ci95": [0.254, 0.478]},
        "baselines.medpix.ddx_nearest_case_hit@1": {"value": 0.09, "ci95": [0.03, 0.164]},
        "medpix.ddx_n_cases": 67,
    }
    table = markdown_table(result)
    assert "| medpix.ddx_hit@5 | 0.358 [0.254, 0.478] |" in table
    # a baseline sits in its own column, on the row of the metric it is a baseline for
    assert "| differential metric | model | nearest_case | cases |" in table
    assert "| medpix.ddx_hit@1 | n/a | 0.090 [0.030, 0.164] |" in table
    assert "ddx_n_cases" not in table  # counts are not metrics with intervals
    assert table.startswith("| differential metric |")  # no empty classification table
    result["medpix.ddx_hit@10"] = {"value": 0.448, "ci95": [0.328, 0.582]}
    table = markdown_table(result)
    assert table.index("medpix.ddx_hit@5 ") < table.index("medpix.ddx_hit@10 ")


def test_baselines_sit_beside_the_model_on_every_row():
    def m(v):
        return {"value": v, "ci95": [v - 0.1, v + 0.1], "n": 20, "groups": 7}

    keys = ("medpix.modality_acc", "nih_cxr14.pneumonia_auroc", "covid_cxr.covid_auroc")
    names = ("majority", "pixels32_logreg", "effnet_linear_probe")
    result = {"split": "test", "data_dir": "sealed", **{k: m(0.9) for k in keys},
              "baselines": {n: {k: m(0.5 + 0.1 * j) for k in keys} for j, n in enumerate(names)},
              "baselines_trained_on": {"data_dir": "dev", "split": "train", "images": 99}}
    table = markdown_table(result)
    assert ("| metric | model | majority | pixels32_logreg | effnet_linear_probe | "
            "images / cases |") in table
    for k in keys:
        assert (f"| {k} | 0.900 [0.800, 1.000] | 0.500 [0.400, 0.600] | 0.600 [0.500, 0.700] "
                f"| 0.700 [0.600, 0.800] | 20 / 7 |") in table
    assert "baselines trained on the train split of dev (99 images)" in table


def test_intervals_resample_cases_not_images():
    import numpy as np

    from imaging.evaluation.metrics import accuracy, auroc, with_ci

    rng = np.random.default_rng(1)
    correct = (rng.random(30) < 0.7).astype(float)
    cases = np.arange(30)
    # ten identical images per case: the case-level interval, not one ten times too narrow
    by_case = with_ci(np.mean, correct, groups=cases)
    by_case_images = with_ci(np.mean, np.repeat(correct, 10), groups=np.repeat(cases, 10))
    by_image = with_ci(np.mean, np.repeat(correct, 10))
    assert by_case_images["ci95"] == by_case["ci95"]
    assert (by_case_images["n"], by_case_images["groups"]) == (300, 30)
    width = by_case["ci95"][1] - by_case["ci95"][0]
    assert by_image["ci95"][1] - by_image["ci95"][0] < width / 2
    # fixed seed: reproducible, and one-class resamples are skipped rather than fatal
    y = np.repeat(np.arange(30) % 2, 3)
    groups = np.repeat(cases, 3)
    score = rng.random(90)
    assert auroc(y, score, groups) == auroc(y, score, groups)
    assert auroc(y, score, groups)["groups"] == 30
    hit = accuracy(y, np.where(rng.random(90) < 0.8, y, 1 - y), groups)
    assert hit["ci95"][0] < hit["value"] < hit["ci95"][1]


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


def test_bootstrap_auroc_equals_sklearn_with_ties():
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from imaging.evaluation.metrics import roc_auc

    rng = np.random.default_rng(5)
    for n in (4, 30, 300):
        y = np.arange(n) % 2
        score = np.round(rng.random(n), 1)  # many ties
        assert abs(roc_auc(y, score) - roc_auc_score(y, score)) < 1e-12


def test_predictions_are_read_in_the_data_label_order_whatever_the_bundle_order(tmp_path):
    """A bundle whose findings head lists its labels in another order is scored right."""
    from types import SimpleNamespace

    import numpy as np
    from PIL import Image

    from imaging.datasets import FINDINGS, MODALITIES, PLANES, REGIONS, ImageRecord
    from imaging.evaluation.run import predict_records

    path = tmp_path / "x.jpg"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(path)
    reversed_findings = tuple(reversed(FINDINGS))
    row = np.arange(len(FINDINGS), dtype=np.float32)  # value k for the bundle's k-th label

    class Model:
        spec = SimpleNamespace(labels=lambda head: {
            "modality": MODALITIES, "region": REGIONS, "plane": PLANES,
            "findings": reversed_findings}[head])

        def predict(self, x):
            n = len(x)
            return SimpleNamespace(
                modality=np.full((n, len(MODALITIES)), 1 / 3), region=np.zeros((n, len(REGIONS))),
                plane=np.zeros((n, 3)), findings=np.tile(row, (n, 1)), embedding=np.zeros((n, 4)))

    record = ImageRecord("x", "nih_cxr14", path, "test", "p1", "XR", "chest_radiograph", None)
    probs = predict_records(Model(), [record])
    for k, name in enumerate(FINDINGS):
        assert probs["findings"][0, k] == reversed_findings.index(name)
