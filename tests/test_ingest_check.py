"""`radassist ingest-check` on the real corpus: nothing crashes, twins agree, reasons are given."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import zstandard

from imaging.conformance import check_corpus, compare, twin_of
from radassist_cli.main import main


def test_full_corpus_and_pydicom_files(dicom_dir: Path, capsys):
    code = main(["ingest-check", str(dicom_dir), "--pydicom-testdata", "--json"])
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["crashes"] == 0, summary["crash_files"]
    assert summary["equivalence_failures"] == 0
    assert summary["files"] == summary["decoded"] + summary["rejected"] + summary["crashes"]
    assert summary["files"] > 700  # the 597 corpus files plus pydicom's test files
    assert sum(summary["rejected_by_reason"].values()) == summary["rejected"]
    assert all(reason for reason in summary["rejected_by_reason"])
    # every NEMA WG04 variant and the 8 dcm_qa_ts variants were compared (and more twins)
    families = summary["equivalence_by_family"]
    expected = {"J2KR": 8, "JPLL": 6, "JLSL": 7, "RLE": 9, "J2KI": 7, "JPLY": 4, "JLSN": 6}
    for family, n in expected.items():
        assert families[f"nema-wg04/{family}"] == {"pairs": n, "failures": 0}
    assert families["dcm_qa_ts"] == {"pairs": 8, "failures": 0}
    assert summary["equivalence_pairs"] >= 90
    assert summary["equivalence_lossless"] >= 70
    assert code == 0
    # the readable table went to stderr, so stdout is one JSON document
    assert "equivalence failures" in captured.err and "rejected by reason" in captured.err
    # known broken files are rejected with their reason, not decoded
    assert summary["rejected_by_reason"].get("truncated", 0) >= 1


def test_table_only_without_json(dicom_dir: Path, capsys):
    code = main(["ingest-check", str(dicom_dir / "conformance" / "dcm_qa_ts")])
    out = capsys.readouterr().out
    assert code == 0
    assert not out.lstrip().startswith("{")
    assert "equivalence pairs" in out and "dcm_qa_ts" in out


def test_zst_and_extensionless_files_are_read(dicom_dir: Path, tmp_path: Path):
    src = dicom_dir / "conformance" / "dcm_qa_ts"
    (tmp_path / "dcm_qa_ts").mkdir()
    for name in ("1.dcm", "4.dcm"):
        data = (src / name).read_bytes()
        (tmp_path / "dcm_qa_ts" / f"{name}.zst").write_bytes(zstandard.compress(data))
    shutil.copy(src / "9.dcm", tmp_path / "noextension")
    (tmp_path / "junk.zst").write_bytes(b"not zstandard at all")
    report = check_corpus([tmp_path])
    by_name = {Path(f.path).name: f for f in report.files}
    assert by_name["1.dcm.zst"].status == "decoded" and by_name["1.dcm.zst"].frames == 1
    assert by_name["noextension"].status == "decoded"
    assert by_name["junk.zst"].status == "rejected" and by_name["junk.zst"].reason
    assert report.summary()["crashes"] == 0


def test_pairing_rules(dicom_dir: Path):
    nema = dicom_dir / "conformance" / "nema-wg04"
    family, ref = twin_of(nema / "JPLL" / "CT1_JPLL")
    assert family == "nema-wg04/JPLL" and ref == nema / "REF" / "CT1_UNC"
    assert twin_of(nema / "REF" / "CT1_UNC") is None
    qa = dicom_dir / "conformance" / "dcm_qa_ts"
    assert twin_of(qa / "7.dcm") == ("dcm_qa_ts", qa / "1.dcm")
    assert twin_of(qa / "1.dcm") is None


def test_equivalence_check_can_fail(dicom_dir: Path):
    """A lossless variant that differs by one unit in one pixel is a failure."""
    qa = dicom_dir / "conformance" / "dcm_qa_ts"
    comp_ds = pydicom.dcmread(qa / "4.dcm")
    from imaging.pixels import instance_frames

    ref = instance_frames(pydicom.dcmread(qa / "1.dcm"))
    same = compare("t", qa / "4.dcm", qa / "1.dcm", [(comp_ds, ref.copy())], [(None, ref)])
    assert same.passed and same.lossless
    bad = ref.copy()
    bad[0, 10, 10] += 1
    diff = compare("t", qa / "4.dcm", qa / "1.dcm", [(comp_ds, bad)], [(None, ref)])
    assert not diff.passed and diff.max_abs_error == 1.0
    assert np.isfinite(diff.psnr_db)
