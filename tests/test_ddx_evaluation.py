"""The ddx evaluation on a miniature data folder laid out like the dev data (symlinks)."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


def mini_medpix(data_dir: Path, out: Path, n_train: int = 25, n_val: int = 6) -> Path:
    """A folder with the first cases of each split; images are symlinks, never copies."""
    src = data_dir / "medpix"
    rows = list(csv.DictReader(open(src / "images.csv", newline="")))
    keep: dict[str, list[str]] = {"train": [], "val": []}
    for r in rows:
        ids = keep.get(r["split"])
        if ids is not None and r["U_id"] not in ids and len(ids) < (
                n_train if r["split"] == "train" else n_val):
            ids.append(r["U_id"])
    wanted = set(keep["train"]) | set(keep["val"])
    dst = out / "medpix"
    (dst / "images").mkdir(parents=True)
    with open(dst / "images.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for r in rows:
            if r["U_id"] in wanted:
                writer.writerow(r)
                (dst / r["image"]).symlink_to(src / r["image"])
    cases = [c for c in json.loads((src / "cases.json").read_text()) if c["U_id"] in wanted]
    (dst / "cases.json").write_text(json.dumps(cases))
    desc = [d for d in json.loads((src / "descriptions.json").read_text())
            if d["U_id"] in wanted]
    (dst / "descriptions.json").write_text(json.dumps(desc))
    return out


@pytest.mark.skipif(not (Path(os.environ.get("RADASSIST_WEIGHTS", REPO / "weights"))
                          / "models" / "model.pt").is_file(),
                    reason="weights/models/model.pt not there yet")
def test_evaluate_ddx_reports_metrics_with_intervals(data_dir, tmp_path, monkeypatch):
    from imaging.evaluation.ddx import evaluate_ddx

    monkeypatch.setenv("RADASSIST_CACHE", str(tmp_path / "cache"))
    mini = mini_medpix(data_dir, tmp_path / "mini")
    predictions = io.StringIO()
    metrics = evaluate_ddx(mini, "val", mini, predictions, progress=False)
    for key in ("medpix.ddx_hit@1", "medpix.ddx_hit@5", "medpix.ddx_hit@10",
                "medpix.ddx_hit@5_no_history", "baselines.medpix.ddx_region_frequent_hit@5",
                "baselines.medpix.ddx_nearest_case_hit@1",
                "baselines.medpix.ddx_nearest_case_hit@1_no_history"):
        m = metrics[key]
        assert 0.0 <= m["value"] <= 1.0 and m["ci95"][0] <= m["value"] <= m["ci95"][1]
        assert m["n"] == 6
    assert metrics["medpix.ddx_hit@1"]["value"] <= metrics["medpix.ddx_hit@10"]["value"]
    assert metrics["medpix.ddx_library_cases"] == 25  # train split only
    lines = [json.loads(line) for line in predictions.getvalue().splitlines()]
    # one line per case and history setting, each a complete ranked list
    assert len(lines) == 12 and all(len(p["differential"]) == 10 for p in lines)
    assert {(p["case"], p["history_used"]) for p in lines} == {
        (p["case"], h) for p in lines for h in (True, False)}
    first = lines[0]["differential"][0]
    assert {"rank", "id", "name_en", "names", "likelihood", "band"} <= set(first)
    assert lines[0]["reference_diagnosis"] and lines[0]["kind"] == "ddx"
    # the lines alone re-score to the reported figures
    for history, suffix in ((True, ""), (False, "_no_history")):
        for k in (1, 5, 10):
            rescored = np.mean([p[f"hit@{k}"] for p in lines if p["history_used"] is history])
            assert rescored == pytest.approx(  # metrics keep 4 decimals
                metrics[f"medpix.ddx_hit@{k}{suffix}"]["value"], abs=5e-5)
