"""Real studies as scanners and CD exports deliver them (`dicom/studies` of the shared data).

Every series is read right or kept out: MOSAIC unpacked, 4D series folded, localizers and
screens listed, phantoms out of distribution, no differential where nothing supports one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures_model import require_weights

from imaging.pixels import reader_window, saturates, series_stacks
from imaging.types import Window
from pacs_bridge.ingest import ingest
from pacs_bridge.series_role import Role, series_role


def _series(folder: Path):
    result = ingest([folder])
    return [s for study in result.studies for s in study.series]


def test_mosaic_is_unpacked_into_slices_with_geometry(studies: Path):
    (series,) = _series(studies / "siemens_mr_mosaic_epi_head")
    (stack,) = series_stacks(series)
    assert stack.array.shape == (36, 64, 64)  # 6x6 tiles of 64x64, not one 384x384 picture
    assert stack.n_volumes == 6
    codes = {w.split(":", 1)[0] for w in stack.warnings}
    assert {"mosaic", "four_d"} <= codes and "duplicate_positions" not in codes
    # slices advance along the normal by the slice spacing (3.6 mm), not all at one corner
    assert stack.spacing[0] == pytest.approx(3.6, abs=0.01)


def test_diffusion_and_fmri_are_one_4d_series_analysed_on_one_volume(studies: Path):
    (dti,) = _series(studies / "toshiba_mr_dti_head")
    (stack,) = series_stacks(dti)
    assert stack.array.shape[0] == 40 and stack.n_volumes == 13
    assert any("b = 0 volume" in w for w in stack.warnings)
    (fmri,) = _series(studies / "ge_mr_fmri_head")
    (stack,) = series_stacks(fmri)
    assert stack.array.shape[0] == 15 and stack.n_volumes == 10


def test_roles_from_the_header(studies: Path):
    roles = {s.description: series_role(s).role for s in
             _series(studies / "philips_ct_phantom_tilted" / "DICOMDIR")}
    assert roles == {"": Role.LOCALIZER, "STEREOTAXIS": Role.DIAGNOSTIC,
                     "Exam Summary": Role.DERIVED}
    (child,) = _series(studies / "siemens_mr_brain_mprage_child")
    assert series_role(child).role is Role.DIAGNOSTIC


def test_a_saturating_header_window_is_refused(studies: Path):
    (child,) = _series(studies / "siemens_mr_brain_mprage_child")
    (stack,) = series_stacks(child)
    middle = stack.array[len(stack.array) // 2]
    edge_window = Window("header", 11.0, 22.0)  # what the first slice's header says
    assert saturates(middle, edge_window)
    window, refused = reader_window(middle, (edge_window,))
    assert refused and window is not None and window.width > 100
    own, refused = reader_window(middle, stack.windows)  # the central slice's own window
    assert not refused and own.name == "header"


def test_evaluate_studies_reads_every_series_right(studies: Path):
    require_weights()
    from imaging.evaluation.studies import evaluate_studies, studies_table

    result = evaluate_studies(studies, log=lambda m: None)
    table = studies_table(result)
    assert result.crashes == [], table
    for name, (right, of) in result.totals().items():
        assert of > 0 and right == of, f"{name}: {right}/{of}\n{table}"
    assert result.ddx_without_diagnostic == [], table


def test_analyze_json_lists_every_series_and_no_differential_on_a_volunteer(studies: Path):
    require_weights()
    out = subprocess.run(
        [sys.executable, "-m", "radassist_cli.main", "analyze",
         str(studies / "siemens_mr_volunteer_planes"), "--format", "json"],
        capture_output=True, text=True, timeout=600, check=True)
    note = json.loads(out.stdout)
    assert len(note["series"]) == 3
    for item in note["series"]:
        assert {"series_instance_uid", "role", "modality", "region", "plane",
                "out_of_distribution", "warnings"} <= set(item)
        assert item["role"] == "diagnostic" and item["region"] == "head"
    assert sorted(i["plane"] for i in note["series"]) == ["axial", "coronal", "sagittal"]
    assert note["differential"] == []  # a normal volunteer, no clinical question
    assert note["summary"]["en"].startswith("MR head, 3 series")


def test_chinese_note_words_every_warning_in_chinese(studies: Path):
    require_weights()
    out = subprocess.run(
        [sys.executable, "-m", "radassist_cli.main", "analyze",
         str(studies / "philips_ct_phantom_tilted"), "--lang", "zh"],
        capture_output=True, text=True, timeout=600, check=True)
    warnings = [line for line in out.stdout.splitlines() if line.startswith("- 警告")]
    assert warnings and not any("英文原文" in w for w in warnings), warnings
    assert any("测试体模" in w for w in warnings)
    assert not any(c.isascii() and c.isalpha() for w in warnings for c in w.split("（")[0])


def test_sr_and_sc_of_a_phantom_study_carry_caveats_and_no_differential(studies: Path,
                                                                         tmp_path: Path):
    require_weights()
    import pydicom

    subprocess.run(
        [sys.executable, "-m", "radassist_cli.main", "analyze",
         str(studies / "siemens_mr_epi_phantom"), "--sr", str(tmp_path / "sr.dcm"),
         "--sc", str(tmp_path / "sc.dcm")], capture_output=True, text=True, timeout=600,
        check=True)
    sr = pydicom.dcmread(tmp_path / "sr.dcm")
    texts = [str(item.get("TextValue", "")) for item in sr.ContentSequence]
    assert any("Caveat" in t and "phantom" in t for t in texts)
    assert not any(t.startswith("Differential") for t in texts)
    sc = pydicom.dcmread(tmp_path / "sc.dcm")
    assert "AI draft" in sc.ImageComments and "phantom" in sc.ImageComments
    assert np.asarray(sc.pixel_array).ndim == 3


def test_ingest_lists_roles_and_geometry_warnings_without_decoding(studies: Path):
    from radassist_cli.cmd_ingest import result_json

    result = ingest([studies / "philips_ct_phantom_tilted" / "DICOMDIR"])
    assert not result.rejections
    (study,) = result_json(result)["studies"]
    roles = sorted(s["role"] for s in study["series"])
    assert roles == ["derived", "diagnostic", "diagnostic", "localizer"]
    tilted = [s for s in study["series"] if s["role"] == "diagnostic"]
    assert all(any(w.startswith("gantry_tilt") for w in s["geometry_warnings"])
               for s in tilted)
    (dti,) = result_json(ingest([studies / "toshiba_mr_dti_head"]))["studies"]
    assert any(w.startswith("four_d: 13 volumes of 40 slices")
               for w in dti["series"][0]["geometry_warnings"])


def test_evaluate_studies_cli_runs_on_any_folder_laid_out_like_the_dev_one(studies: Path,
                                                                          tmp_path: Path,
                                                                          capsys):
    require_weights()
    import csv

    from radassist_cli.main import main

    folder = tmp_path / "other_studies"
    folder.mkdir()
    (folder / "qa_phantom").symlink_to(studies / "siemens_mr_epi_phantom")
    with (studies / "labels.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["study"] == "siemens_mr_epi_phantom"]
    with (folder / "labels.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**r, "study": "qa_phantom"} for r in rows)
    out = tmp_path / "m.json"
    assert main(["evaluate", "--task", "studies", "--data", str(folder), "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| phantom series out of distribution, no region or plane | 4/4 |" in table
    assert json.loads(out.read_text())["crashes"] == []
