"""`radassist evaluate` on a sealed-like folder (only a `test` split) still scores the baselines,
fitted on `--train-data`'s train split, with intervals over cases / patients."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from fixtures_model import require_weights

from radassist_cli.main import main

BASELINES = ("majority", "pixels32_logreg", "effnet_linear_probe")
METRICS = ("medpix.modality_acc", "medpix.region_acc", "medpix.plane_acc",
           "medpix.caption_recall@10", "nih_cxr14.pneumonia_auroc", "nih_cxr14.ece",
           "covid_cxr.covid_auroc")
TABLES = {"medpix": "images.csv", "nih_cxr14": "labels.csv", "covid_cxr": "metadata.csv"}


def _positive(dataset: str, row: dict) -> bool | None:
    """The class a row is balanced on (None: any)."""
    if dataset == "nih_cxr14":
        return "Pneumonia" in row["finding_labels"]
    if dataset == "covid_cxr":
        return "COVID-19" in row["finding"] if row["modality"].strip() != "CT" else None
    return None


def mini_folder(data_dir: Path, out: Path, source_split: str, split: str, n: int,
                extra_medpix_cases: tuple[str, ...] = ()) -> Path:
    """A folder laid out like the dev data with a few rows of `source_split` (renamed `split`):
    the first `n` MedPix cases, `n` positive and `n` negative NIH / COVID radiographs.
    Images are symlinks, never copies."""
    for dataset, table in TABLES.items():
        src = data_dir / dataset
        with (src / table).open(newline="", encoding="utf-8", errors="replace") as fh:
            rows = list(csv.DictReader(fh))
        keep: list[dict] = []
        if dataset == "medpix":
            cases = list(dict.fromkeys(r["U_id"] for r in rows if r["split"] == source_split))
            wanted = set(cases[:n]) | set(extra_medpix_cases)
            keep = [r for r in rows if r["U_id"] in wanted]
        else:
            taken = {True: 0, False: 0}
            for r in rows:
                cls = _positive(dataset, r)
                if r["split"] == source_split and cls is not None and taken[cls] < n:
                    taken[cls] += 1
                    keep.append(r)
        dst = out / dataset
        dst.mkdir(parents=True)
        (dst / "images").symlink_to(src / "images")
        with (dst / table).open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows({**r, "split": split} for r in keep)
        if dataset == "medpix":
            ids = {r["U_id"] for r in keep}
            for name in ("cases.json", "descriptions.json"):
                items = json.loads((src / name).read_text())
                (dst / name).write_text(json.dumps([x for x in items if x["U_id"] in ids]))
    return out


def first_case(folder: Path) -> tuple[str, int]:
    with (folder / "medpix" / "images.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return rows[0]["U_id"], sum(r["U_id"] == rows[0]["U_id"] for r in rows)


@pytest.fixture(scope="module")
def folders(data_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("sealed")
    sealed = mini_folder(data_dir, base / "sealed", "val", "test", 3)
    # the train folder also holds one evaluated case: it must be left out of the baselines
    shared_case, shared_images = first_case(sealed)
    train = mini_folder(data_dir, base / "train", "train", "train", 6, (shared_case,))
    return sealed, train, shared_images


def _evaluate(tmp_path, monkeypatch, sealed: Path, *extra: str) -> dict:
    monkeypatch.setenv("RADASSIST_CACHE", str(tmp_path.parent / "evaluate_sealed_cache"))
    out = tmp_path / "metrics.json"
    code = main(["evaluate", "--data", str(sealed), "--split", "test", "--task", "classify",
                 "--out", str(out), "--weights", str(require_weights()), *extra])
    assert code == 0
    return json.loads(out.read_text())


def test_sealed_folder_scores_every_baseline_on_every_metric(folders, tmp_path, monkeypatch,
                                                             capsys):
    sealed, train, shared_images = folders
    result = _evaluate(tmp_path, monkeypatch, sealed, "--train-data", str(train))
    assert result["split"] == "test"
    assert "skipped" not in result["baselines"], result["baselines"]
    trained = result["baselines_trained_on"]
    assert trained["data_dir"] == str(train) and trained["split"] == "train"
    assert trained["left_out_shared_cases_patients_images"] == shared_images
    with (sealed / "medpix" / "images.csv").open(newline="") as fh:
        medpix = list(csv.DictReader(fh))
    # intervals resample the 3 cases, not their images
    assert result["medpix.modality_acc"]["n"] == len(medpix) > 3
    assert result["medpix.modality_acc"]["groups"] == len({r["U_id"] for r in medpix}) == 3
    for key in METRICS:
        model = result[key]
        assert model["value"] is not None, key
        for name in BASELINES:
            m = result["baselines"][name][key]
            assert m["value"] is not None, (name, key)
            assert m["ci95"][0] <= m["value"] <= m["ci95"][1], (name, key)
            assert (m["n"], m["groups"]) == (model["n"], model["groups"]), (name, key)
    table = capsys.readouterr().out
    assert "| metric | model | majority | pixels32_logreg | effnet_linear_probe |" in table
    for key in METRICS:
        row = next(line for line in table.splitlines() if line.startswith(f"| {key} |"))
        assert "n/a" not in row, row
    assert f"baselines trained on the train split of {train}" in table


def test_baselines_default_to_the_library_folder(folders, tmp_path, monkeypatch):
    """Without --train-data the baselines train on --library's train split (and without
    --library on --data's: tests/test_evaluate_cli.py, where that folder has none)."""
    from imaging.evaluation import run

    sealed, train, _ = folders
    asked: list[Path] = []

    def fake_baselines(train_dir, eval_recs, limit, log=print):
        asked.append(Path(train_dir))
        return {"trained_on": {"data_dir": str(train_dir)}, "skipped": "not run in this test"}

    monkeypatch.setattr(run, "_baselines", fake_baselines)
    _evaluate(tmp_path, monkeypatch, sealed, "--library", str(train))
    assert asked == [train]


def test_train_data_without_train_split_is_an_error(folders, tmp_path, monkeypatch, capsys):
    sealed, _, _ = folders
    code = main(["evaluate", "--data", str(sealed), "--split", "test", "--task", "classify",
                 "--out", str(tmp_path / "m.json"), "--weights", str(require_weights()),
                 "--train-data", str(sealed)])
    assert code != 0
    assert "no train split" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()
