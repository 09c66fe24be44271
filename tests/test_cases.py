"""Teaching-case library: de-identification, build from the real data, search."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from imaging.cases import CaseLibrary, build, read_medpix
from imaging.cases.deid import scrub
from imaging.cases.library import CaseRecord

REPO = Path(__file__).resolve().parent.parent


def test_scrub_removes_identifiers_and_keeps_medicine():
    text = ("Seen by Dr. Smith on 01/02/2003 (MRN 1234567), call 555-123-4567 or "
            "jdoe@example.org; 93 year-old man, 73-year-old wife; admitted Jan2003; "
            "fever and cough for 3 days")
    out = scrub(text)
    for leaked in ("Smith", "01/02/2003", "1234567", "555-123-4567", "jdoe@", "93", "2003"):
        assert leaked not in out
    assert "90+ year-old" in out and "73-year-old" in out and "fever and cough for 3 days" in out
    assert scrub(out) == out


def test_build_indexes_train_split_deidentified(data_dir, tmp_path):
    db = tmp_path / "cases.sqlite"
    n = build(data_dir, db, splits=("train",))
    assert n == len(read_medpix(data_dir, ("train",))) > 100
    con = sqlite3.connect(db)
    splits = {s for (s,) in con.execute("SELECT DISTINCT split FROM cases")}
    assert splits == {"train"}
    histories = [h for (h,) in con.execute("SELECT history FROM cases")]
    assert not any(__import__("re").search(r"\b(19|20)\d{2}\b", h) for h in histories)
    con.close()
    library = CaseLibrary.load(db)
    hits = library.search(history="elderly man with hematuria and urinary retention", k=5)
    assert len(hits) == 5 and hits == sorted(hits, key=lambda h: -h.similarity)
    assert any(h.region == "reproductive_urinary" for h in hits)
    assert library.search(history="") == []


def test_search_by_image_and_exclusion():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(50, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    rows = [CaseRecord(f"C{i:03d}", "train", "head", ("MR",), f"history {i}", "", f"dx {i}",
                       "", 40, "F") for i in range(50)]
    library = CaseLibrary(rows, emb)
    hits = library.search(embedding=emb[7], k=3)
    assert hits[0].case_id == "C007" and hits[0].similarity == pytest.approx(1.0, abs=1e-5)
    assert library.search(embedding=emb[7], k=3, exclude=["C007"])[0].case_id != "C007"
    both = library.search(embedding=emb[7], history="history 7", k=1)
    assert both[0].case_id == "C007"


def test_cli_build_and_search(data_dir, tmp_path):
    db = tmp_path / "lib.sqlite"
    run = [sys.executable, "-m", "radassist_cli.main"]
    built = subprocess.run([*run, "cases", "build", "--data", str(data_dir), "--db", str(db),
                            "--no-images"], cwd=REPO, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    assert "indexed" in built.stdout and db.is_file()
    found = subprocess.run([*run, "cases", "search", "--db", str(db), "--history",
                            "sudden left hemiparesis", "-k", "3"], cwd=REPO,
                           capture_output=True, text=True)
    assert found.returncode == 0 and len(found.stdout.strip().splitlines()) == 3
    missing = subprocess.run([*run, "cases", "build", "--data", str(tmp_path)], cwd=REPO,
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "no medpix/cases.json" in missing.stderr
    assert "Traceback" not in missing.stderr
