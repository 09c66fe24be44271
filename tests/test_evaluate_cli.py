"""`radassist evaluate` on a small subset writes every required key with its CI."""

from __future__ import annotations

import json

import pytest
from fixtures_model import require_weights

from radassist_cli.main import main


@pytest.fixture(scope="module")
def weights_dir():
    return require_weights()

REQUIRED = ("medpix.modality_acc", "medpix.region_acc", "medpix.plane_acc",
            "medpix.caption_recall@10", "nih_cxr14.pneumonia_auroc", "nih_cxr14.ece",
            "covid_cxr.covid_auroc")


def test_evaluate_subset_writes_keys_and_predictions(data_dir, weights_dir, tmp_path,
                                                     monkeypatch, capsys):
    monkeypatch.setenv("RADASSIST_CACHE", str(tmp_path / "cache"))
    out, preds = tmp_path / "metrics.json", tmp_path / "preds.jsonl"
    code = main(["evaluate", "--data", str(data_dir), "--split", "val", "--limit", "3",
                 "--task", "classify", "--out", str(out), "--predictions", str(preds),
                 "--weights", str(weights_dir)])
    assert code == 0
    result = json.loads(out.read_text())
    for key in REQUIRED:
        assert key in result, key
        assert set(result[key]) >= {"value", "ci95"}, key
    assert "nih_cxr14.pneumonia_auroc_by_view" in result
    assert "count" in result["medpix.plane_excluded"]
    for name in ("majority", "pixels32_logreg", "effnet_linear_probe"):
        assert "medpix.modality_acc" in result["baselines"][name], name
    lines = [json.loads(x) for x in preds.read_text().splitlines()]
    assert lines and {"id", "modality", "region", "plane", "findings"} <= set(lines[0])
    assert "| metric | model |" in capsys.readouterr().out


def test_baselines_marked_unavailable_without_train_split(data_dir, weights_dir,
                                                          tmp_path, monkeypatch):
    """A sealed-set-like folder (only `test`) with no --train-data / --library still evaluates
    the model; the baselines are skipped, saying how to get them."""
    import csv

    monkeypatch.setenv("RADASSIST_CACHE", str(tmp_path / "cache"))
    sealed = tmp_path / "sealed" / "nih_cxr14"
    sealed.mkdir(parents=True)
    (sealed / "images").symlink_to(data_dir / "nih_cxr14" / "images")
    with (data_dir / "nih_cxr14/labels.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "val"][:12]
    with (sealed / "labels.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({**r, "split": "test"})
    out = tmp_path / "m.json"
    assert main(["evaluate", "--data", str(tmp_path / "sealed"), "--split", "test",
                 "--task", "classify", "--out", str(out), "--weights", str(weights_dir)]) == 0
    result = json.loads(out.read_text())
    assert "--train-data" in result["baselines"]["skipped"]
    assert "nih_cxr14.pneumonia_auroc" in result
