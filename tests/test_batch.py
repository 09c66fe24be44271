"""`radassist batch` on a LocalCluster of two worker processes.

The resumability and kill tests use a stand-in analyzer (fixtures_batch: real SR/SC, no
model) so that a study takes a controlled time; one test runs the real model on two MedPix
images and a real MR study.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures_bridge import make_study, write_files
from fixtures_orthanc import (
    needs_dicomweb,
    orthanc_fixture,  # noqa: F401 (the `orthanc` fixture)
)

from pacs_bridge.batch.sources import discover

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
STAND_IN = "fixtures_batch:transport_report_outputs"


def _studies(root: Path, n: int) -> list[str]:
    uids = []
    for i in range(n):
        datasets = make_study(3, size=16, seed=f"batch-{i}")
        write_files(datasets, root / f"study{i}")
        uids.append(str(datasets[0].StudyInstanceUID))
    return uids


def _batch(source: Path, out: Path, *extra: str, env: dict | None = None, wait=True):
    cmd = [sys.executable, "-m", "radassist_cli.main", "batch", str(source), "--out", str(out),
           "--workers", "2", "--json", "--no-progress", *extra]
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS)]),
                **(env or {})}
    proc = subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return proc.communicate(timeout=240) + (proc.returncode,) if wait else proc


def _summary(stdout: str) -> dict:
    return json.loads(stdout[stdout.index("{"):])


def _manifest(out: Path) -> list[tuple]:
    with sqlite3.connect(out / "manifest.sqlite") as db:
        return db.execute("SELECT study_uid, status, output_path FROM studies").fetchall()


def _outputs(out: Path) -> dict[str, list[Path]]:
    """Per study folder: its complete result folders (done.json), and no leftovers."""
    found = {}
    for study in (out / "studies").iterdir():
        assert not list(study.glob(".tmp-*")), f"partial output left in {study}"
        found[study.name] = sorted(p.parent for p in study.glob("*/done.json"))
    return found


def _analysed(log: Path, uids: list[str]) -> list[str]:
    lines = log.read_text().split() if log.exists() else []
    return [u for u in lines[::2] if u in uids]


def test_batch_rerun_does_nothing_new(tmp_path):
    src, out, log = tmp_path / "src", tmp_path / "out", tmp_path / "analyses.log"
    uids = _studies(src, 3)
    env = {"BATCH_TEST_LOG": str(log)}
    stdout, stderr, rc = _batch(src, out, "--analyzer", STAND_IN, env=env)
    assert rc == 0, stderr[-3000:]
    first = _summary(stdout)
    assert (first["studies"], first["done"], first["failed"], first["workers"]) == (3, 3, 0, 2)
    assert first["dashboard"].startswith("http://127.0.0.1:")
    assert sorted(_analysed(log, uids)) == sorted(uids)
    rows = _manifest(out)
    assert sorted(r[0] for r in rows) == sorted(uids) and {r[1] for r in rows} == {"done"}
    outputs = _outputs(out)
    assert len(outputs) == 3 and all(len(v) == 1 for v in outputs.values())
    folder = outputs[uids[0]][0]
    assert len(list(folder.glob("*.dcm"))) == 2 and (folder / "note.json").is_file()

    stdout, stderr, rc = _batch(src, out, "--analyzer", STAND_IN, env=env)
    assert rc == 0, stderr[-3000:]
    second = _summary(stdout)
    assert (second["skipped"], second["done"], second["failed"]) == (3, 0, 0)
    assert "0 stud(ies) to analyse" in stderr
    assert sorted(_analysed(log, uids)) == sorted(uids)  # nothing analysed again

    # a study whose row is lost (a client killed after the outputs, before the row) is
    # found on disk by the next run, not analysed again
    with sqlite3.connect(out / "manifest.sqlite") as db:
        db.execute("DELETE FROM studies WHERE study_uid=?", (uids[1],))
    stdout, stderr, rc = _batch(src, out, "--analyzer", STAND_IN, env=env)
    third = _summary(stdout)
    assert (third["skipped"], third["done"], third["reused"]) == (2, 1, 1), stderr[-2000:]
    assert sorted(_analysed(log, uids)) == sorted(uids)


def test_failed_study_is_retried_by_the_next_run(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    uids = _studies(src, 2)
    for p in (src / "study1").glob("*.dcm"):  # study 1's pixel data cut short
        p.write_bytes(p.read_bytes()[:-200])
    stdout, stderr, rc = _batch(src, out, "--analyzer", STAND_IN)
    first = _summary(stdout)
    assert rc == 1 and first["failed"] == 1, stderr[-2000:]
    assert dict(_manifest(out)[i][:2] for i in range(2))[uids[1]] == "failed"
    write_files(make_study(3, size=16, seed="batch-1"), src / "study1")  # repaired
    stdout, stderr, rc = _batch(src, out, "--analyzer", STAND_IN)
    second = _summary(stdout)
    assert rc == 0 and (second["skipped"], second["done"]) == (1, 1), stderr[-2000:]


def test_worker_killed_mid_task_loses_and_duplicates_nothing(tmp_path):
    src, out, log = tmp_path / "src", tmp_path / "out", tmp_path / "analyses.log"
    uids = _studies(src, 4)
    env = {"BATCH_TEST_LOG": str(log), "BATCH_TEST_DELAY": "1.5"}
    proc = _batch(src, out, "--analyzer", STAND_IN, env=env, wait=False)
    deadline = time.monotonic() + 180
    victim = None
    while victim is None and time.monotonic() < deadline and proc.poll() is None:
        lines = log.read_text().splitlines() if log.exists() else []
        started = [ln.split() for ln in lines if ln.split()[0] in uids]
        if started:
            victim = int(started[0][1])
            os.kill(victim, signal.SIGKILL)  # mid-task: the analysis sleeps 1.5 s
        time.sleep(0.05)
    assert victim is not None, "no study started"
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr[-3000:]
    summary = _summary(stdout)
    assert (summary["done"], summary["failed"]) == (4, 0)
    analysed = _analysed(log, uids)
    assert len(analysed) >= 5, "the killed study was not started again"  # 4 + the repeat
    rows = _manifest(out)
    assert sorted(r[0] for r in rows) == sorted(uids) and {r[1] for r in rows} == {"done"}
    outputs = _outputs(out)
    assert sorted(outputs) == sorted(uids)
    assert all(len(v) == 1 for v in outputs.values()), outputs  # one result set per study
    for folders in outputs.values():
        assert len(list(folders[0].glob("*.dcm"))) == 2


@pytest.mark.orthanc
def test_qido_source_from_a_real_pacs(orthanc, tmp_path):
    """A QIDO-RS query against Orthanc: only the matching studies, retrieved by WADO-RS."""
    needs_dicomweb()
    uids = []
    for i, modality in enumerate(("CT", "CT", "MR")):
        datasets = make_study(2, size=16, seed=f"batch-qido-{i}")
        for ds in datasets:
            ds.Modality = modality
            path = tmp_path / "upload.dcm"
            ds.save_as(path, enforce_file_format=True)
            orthanc.upload(path.read_bytes())
        uids.append(str(datasets[0].StudyInstanceUID))
    query = f"{orthanc.dicomweb_url}/studies?ModalitiesInStudy=CT"
    stdout, stderr, rc = _batch(query, tmp_path / "out", "--analyzer", STAND_IN)
    assert rc == 0, stderr[-3000:]
    summary = _summary(stdout)
    assert (summary["source_kind"], summary["studies"], summary["done"]) == ("qido", 2, 2)
    assert sorted(_outputs(tmp_path / "out")) == sorted(uids[:2])
    stdout, stderr, rc = _batch(query, tmp_path / "out", "--analyzer", STAND_IN)
    assert rc == 0 and _summary(stdout)["skipped"] == 2


def test_discovery_of_a_dicomdir(dicom_dir):
    dicomdir = dicom_dir / "studies" / "philips_ct_phantom_tilted" / "DICOMDIR"
    if not dicomdir.is_file():
        pytest.skip(f"{dicomdir} not found")
    found = discover(str(dicomdir))
    assert found.source_kind == "dicomdir"
    assert len(found.tasks) == 1 and len(found.tasks[0].files) > 10
    tree = discover(str(dicomdir.parent))
    assert [t.study_uid for t in tree.tasks] == [found.tasks[0].study_uid]
    assert tree.skipped_files >= 1  # the DICOMDIR and DIRFILEs are not instances


def test_real_model_batch(tmp_path, data_dir):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    for name in sorted(os.listdir(data_dir / "medpix" / "images"))[:2]:
        os.symlink(data_dir / "medpix" / "images" / name, src / name)
    phantom = data_dir / "dicom" / "studies" / "siemens_mr_epi_phantom"
    if phantom.is_dir():
        os.symlink(phantom, src / "phantom", target_is_directory=True)
    stdout, stderr, rc = _batch(src, out)
    assert rc == 0, stderr[-3000:]
    summary = _summary(stdout)
    assert summary["done"] == summary["studies"] >= 2
    for folders in _outputs(out).values():
        note = json.loads((folders[0] / "note.json").read_text())
        assert note["disclaimer"]["en"] == "AI draft — not reviewed by a physician"
    stdout, stderr, rc = _batch(src, out)
    assert rc == 0 and _summary(stdout)["done"] == 0
