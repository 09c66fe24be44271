"""`radassist analyze` end to end: ingest -> analyze -> note (+ SR/SC), in a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
RADIOGRAPH = "conformance/fo-dicom/CR-MONO1-10-chest"
AI_EN = "AI draft — not reviewed by a physician"
AI_ZH = "AI 草稿——未经医师审核"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "radassist_cli.main", "analyze", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def model_ready() -> bool:
    weights = Path(os.environ.get("RADASSIST_WEIGHTS", REPO / "weights"))
    return ((weights / "models" / "model.pt").is_file()
            and (REPO / "imaging" / "analyze" / "__init__.py").is_file())


needs_model = pytest.mark.skipif(not model_ready(),
                                 reason="weights/models/model.pt or imaging.analyze not there yet")


def test_missing_path_is_one_clear_line(tmp_path):
    proc = run(str(tmp_path / "nope.dcm"))
    assert proc.returncode == 2
    assert "no such file" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_age_is_rejected(tmp_path):
    proc = run(str(tmp_path), "--age", "400")
    assert proc.returncode == 2 and "plausible age" in proc.stderr


@needs_model
def test_radiograph_note_sr_and_sc(dicom_dir, tmp_path):
    source = dicom_dir / RADIOGRAPH
    sr, sc = tmp_path / "sr.dcm", tmp_path / "sc.dcm"
    proc = run(str(source), "--age", "67", "--sex", "M", "--history", "fever and cough",
               "--sr", str(sr), "--sc", str(sc))
    assert proc.returncode == 0, proc.stderr
    assert AI_EN in proc.stdout and "## 3." in proc.stdout
    study_uid = pydicom.dcmread(source, stop_before_pixels=True, force=True).StudyInstanceUID
    report = hd.sr.srread(sr)
    assert report.StudyInstanceUID == study_uid and report.VerificationFlag == "UNVERIFIED"
    capture = pydicom.dcmread(sc)
    assert capture.StudyInstanceUID == study_uid and capture.ImageComments == AI_EN
    hd.imread(sc)

    as_json = run(str(source), "--age", "67", "--history", "fever and cough", "--format", "json")
    again = run(str(source), "--age", "67", "--history", "fever and cough", "--format", "json")
    assert as_json.returncode == 0 and as_json.stdout == again.stdout  # byte for byte
    note = json.loads(as_json.stdout)
    assert note["study_instance_uid"] == study_uid
    assert not note["out_of_distribution"]  # a real chest radiograph: diagnosed
    assert len(note["differential"]) >= 3
    zh = run(str(source), "--lang", "zh")
    assert zh.returncode == 0 and AI_ZH in zh.stdout


@needs_model
def test_photo_like_input_is_flagged_not_diagnosed(tmp_path):
    rng = np.random.default_rng(0)
    photo = (rng.random((256, 256, 3)) * 255).astype(np.uint8)
    photo[:128] = [30, 160, 40]  # saturated colour blocks: nothing like a radiograph
    path = tmp_path / "holiday.png"
    Image.fromarray(photo).save(path)
    proc = run(str(path), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    note = json.loads(proc.stdout)
    assert note["out_of_distribution"] is True and note["differential"] == []
