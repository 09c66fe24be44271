"""Issue 17: one hostile instance must not take the bridge down.

The poison file is built here, at run time, from the conformance corpus' JPEG-LS lossless
`JLSL_16_15_1_1F.dcm`: Columns set to 65535, a Study and Series Instance UID, Modality CT,
pixel data untouched. GDCM, run in-process on it, throws a C++ exception nobody catches and
the process aborts (SIGABRT). `imaging.pixels` refuses it before any decoder (the codestream's
SOF55 says 128 columns), so the bridge tests make the abort happen on purpose: their
analyzer (`fixtures_bridge.gdcm_transport_objects`) decodes every image with GDCM in its
own process, as `imaging.pixels` did before, then returns real SR/SC objects.

Everything is real: the bridge is `radassist bridge serve` as a subprocess, the sender is
dcmtk's `storescu`, the destination dcmtk's `storescp`.

- isolated (the default): poison and a normal CT study to one running bridge; the bridge
  stays up (same process), the normal study's SR and SC arrive, the poison study ends
  quarantined after `max_attempts` dead children, /health answers 503 "degraded" with the
  reason; a restart on that spool does not run it again; `bridge retry` releases it.
- in-process (`isolate = false`), under a supervisor-style restart loop: the poison kills
  the bridge itself; each attempt was counted before it ran, so after `max_attempts`
  aborts the restarted bridge quarantines it without running it, stays up and delivers.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures_bridge import REPO, BridgeProcess, make_study, write_config, write_files
from fixtures_orthanc import free_port
from pydicom import dcmread
from pydicom.uid import generate_uid

POISON_SOURCE = Path("conformance/pydicom-data/JLSL_16_15_1_1F.dcm")
ANALYZER = "fixtures_bridge:gdcm_transport_objects"
CRASHED = "the analyser crashed {} times on this study"

pytestmark = pytest.mark.skipif(
    not (shutil.which("storescu") and shutil.which("storescp")),
    reason="dcmtk (storescu, storescp) not installed")


def make_poison(dicom_dir: Path, out: Path, seed: str,
                study_uid: str | None = None) -> tuple[Path, str]:
    """The issue's file, from the conformance corpus: (path, its Study Instance UID)."""
    src = dicom_dir / POISON_SOURCE
    if not src.is_file():
        pytest.skip(f"conformance file {src} not found")
    ds = dcmread(src)
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.80" and ds.Columns == 128
    ds.Columns = 65535
    ds.StudyInstanceUID = study_uid or generate_uid(entropy_srcs=[seed, "poison-study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[seed, "poison-series"])
    ds.Modality = "CT"
    out.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(out, enforce_file_format=True)
    return out, str(ds.StudyInstanceUID)


def storescu(port: int, files: list[Path]) -> None:
    """dcmtk's storescu as a PACS administrator runs it (-xt: JPEG-LS lossless proposed)."""
    done = subprocess.run(
        ["storescu", "-xt", "-aet", "STORESCU", "-aec", "BRIDGE", "127.0.0.1", str(port),
         *map(str, files)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def destination(tmp_path) -> Iterator[tuple[int, Path]]:
    """dcmtk's storescp as the DIMSE destination: (port, folder it stores into)."""
    port, out = free_port(), tmp_path / "received"
    out.mkdir()
    proc = subprocess.Popen(["storescp", "-aet", "DEST", "-od", str(out), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    try:
        yield port, out
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def received_uids(folder: Path) -> dict[str, str]:
    """SOP Instance UID -> SOP Class UID of everything the destination stored."""
    return {str(ds.SOPInstanceUID): str(ds.SOPClassUID)
            for ds in (dcmread(p, stop_before_pixels=True) for p in folder.iterdir())}


def config(tmp_path: Path, dest_port: int, *, max_attempts: int, isolate: bool | None,
           screen_decoder: str | None = None) -> Path:
    return write_config(
        tmp_path / "bridge", dicom_port=free_port(), analyzer=ANALYZER, inactivity=1.0,
        max_attempts=max_attempts, backoff=0.2, isolate=isolate, screen_decoder=screen_decoder,
        destination={"kind": "dimse", "ae_title": "DEST", "port": dest_port})


def analyses(path: Path, uid: str) -> int:
    return path.read_text().splitlines().count(uid) if path.exists() else 0


def bridge_lines(bridge: BridgeProcess, *words: str) -> list[str]:
    return [line for line in bridge.log().splitlines() if any(w in line for w in words)]


def test_poison_beside_normal_study_bridge_stays_up_and_quarantines(
        dicom_dir, destination, tmp_path):
    dest_port, received = destination
    log = tmp_path / "analyses.log"
    cfg = config(tmp_path, dest_port, max_attempts=2, isolate=None)  # isolated: the default
    poison, poison_uid = make_poison(dicom_dir, tmp_path / "in" / "poison.dcm", "stays-up")
    normal = make_study(3, seed="poison-neighbour")
    normal_uid = str(normal[0].StudyInstanceUID)
    normal_files = write_files(normal, tmp_path / "in" / "normal")
    bridge = BridgeProcess(cfg, env={"BRIDGE_TEST_ANALYSIS_LOG": str(log)}).start()
    try:
        pid = bridge.proc.pid
        storescu(bridge.dicom_port, [poison])  # acknowledged: the header is fine
        storescu(bridge.dicom_port, normal_files)
        sent = bridge.wait_state(normal_uid, ["sent", "failed"], timeout=120)
        bad = bridge.wait_state(poison_uid, ["failed"], timeout=120)
        assert bridge.proc.poll() is None and bridge.proc.pid == pid  # never went down
        assert sent["state"] == "sent", sent
        got = received_uids(received)
        assert set(sent["result_uids"]) <= set(got)  # the normal study's SR and SC
        assert sorted(got[u] for u in sent["result_uids"]) == [
            "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.88.33"]
        assert bad["quarantined"] == 1 and bad["crashes"] == 2 and bad["attempts"] == 2
        assert bad["last_error"] == CRASHED.format(2)
        assert bad["result_uids"] == []
        study_dir = bridge.spool / "studies" / poison_uid
        assert len(list(study_dir.glob("*.dcm"))) == 1  # its instance kept
        assert analyses(log, poison_uid) == 2 and analyses(log, normal_uid) == 1

        code, health = bridge.get_with_code("/health")
        assert code == 503 and health["status"] == "degraded", health
        assert any("1 quarantined stud(ies)" in p for p in health["problems"]), health
        checks = health["checks"]
        assert checks["listener"]["ok"] and checks["worker"]["ok"], checks
        assert checks["worker"]["mode"] == "isolated" and checks["worker"]["children_lost"] == 2
        assert checks["destination"]["ok"], checks["destination"]
        assert checks["studies"] == {"ok": False, "failed": 0, "quarantined": 1,
                                     "waiting_to_send": 0}
        assert health["last_analysis_at"] and health["last_send_at"]
        lines = bridge_lines(bridge, "died", "quarantined", "analysed in", "results sent")
        assert sum("ERROR" in line and "the analysis process died (SIGABRT)" in line
                   for line in lines) == 2
        print("\n--- bridge log (isolated) ---\n" + "\n".join(lines))
        print(f"--- /health ({code}) ---\n{health['status']}: {health['problems']}")

        # a restart on the same spool: comes up, leaves the quarantined study alone
        bridge.stop()
        bridge.start()
        time.sleep(3.0)  # several loop turns and a completion check
        assert bridge.proc.poll() is None
        again = bridge.study(poison_uid)
        assert again["state"] == "failed" and again["quarantined"] == 1
        assert analyses(log, poison_uid) == 2
        assert bridge.get_with_code("/health")[0] == 503

        # the operator releases it: analysed again (and quarantined again: it is poison)
        done = subprocess.run(
            [sys.executable, "-m", "radassist_cli.main", "bridge", "retry", poison_uid,
             "--config", str(cfg)], capture_output=True, text=True, cwd=REPO, timeout=60,
            env={**bridge.env})
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 60
        while analyses(log, poison_uid) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        rec = bridge.wait_state(poison_uid, ["failed"], timeout=60)
        assert analyses(log, poison_uid) == 4 and rec["quarantined"] == 1
        assert bridge.proc.poll() is None
    finally:
        bridge.stop()


def test_poison_in_process_under_restart_loop_is_quarantined_not_rerun(
        dicom_dir, destination, tmp_path):
    """No isolation: the poison aborts the bridge itself. A supervisor restarts it on the
    same spool; attempts were counted before each ran, so it is quarantined, never looped."""
    dest_port, received = destination
    log = tmp_path / "analyses.log"
    cfg = config(tmp_path, dest_port, max_attempts=3, isolate=False)
    poison, poison_uid = make_poison(dicom_dir, tmp_path / "in" / "poison.dcm", "restarts")
    normal = make_study(3, seed="poison-neighbour-restarts")
    normal_uid = str(normal[0].StudyInstanceUID)
    bridge = BridgeProcess(cfg, env={"BRIDGE_TEST_ANALYSIS_LOG": str(log)}).start()
    storescu(bridge.dicom_port, [poison])
    storescu(bridge.dicom_port, write_files(normal, tmp_path / "in" / "normal"))
    exits: list[int] = []
    try:
        # the supervisor: whenever the bridge dies, start it again (at most 6 times)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and len(exits) <= 6:
            if bridge.proc.poll() is not None:
                exits.append(bridge.proc.returncode)
                bridge.start()
                continue
            try:
                rec = bridge.study(poison_uid)
            except OSError:  # it died while answering
                continue
            if rec and rec["state"] == "failed":
                break
            time.sleep(0.2)
        assert exits == [-6, -6, -6], exits  # SIGABRT each time, then no more
        rec = bridge.wait_state(poison_uid, ["failed"], timeout=5)
        assert rec["quarantined"] == 1 and rec["attempts"] == 3 and rec["crashes"] == 3
        assert rec["last_error"] == CRASHED.format(3)
        assert analyses(log, poison_uid) == 3  # the 4th claim quarantined it unrun
        sent = bridge.wait_state(normal_uid, ["sent", "failed"], timeout=60)
        assert sent["state"] == "sent"
        assert set(sent["result_uids"]) <= set(received_uids(received))
        code, health = bridge.get_with_code("/health")
        assert code == 503 and any("quarantined" in p for p in health["problems"])
        lines = bridge_lines(bridge, "recovered after restart", "quarantined", "results sent",
                             "terminate called")
        print("\n--- bridge log (in-process, restart loop) ---\n" + "\n".join(lines))
        # one more restart on that spool: up, and the quarantined study is not run again
        bridge.stop()
        bridge.start()
        time.sleep(3.0)
        assert bridge.proc.poll() is None and analyses(log, poison_uid) == 3
        assert bridge.study(poison_uid)["state"] == "failed"
    finally:
        bridge.stop()


def test_poison_inside_a_normal_study_is_set_aside_and_the_rest_analysed(
        dicom_dir, destination, tmp_path):
    """The poison instance sent as part of a normal CT study: its child dies, a screening
    child (decoding each spooled image with the same unguarded GDCM) names the file, which
    is set aside in the spool, and the study's other instances are analysed and sent."""
    dest_port, received = destination
    log = tmp_path / "analyses.log"
    cfg = config(tmp_path, dest_port, max_attempts=2, isolate=None,
                 screen_decoder="fixtures_bridge:gdcm_decode")
    normal = make_study(3, seed="poison-inside")
    uid = str(normal[0].StudyInstanceUID)
    poison, _ = make_poison(dicom_dir, tmp_path / "in" / "poison.dcm", "inside", study_uid=uid)
    poison_sop = str(dcmread(poison, stop_before_pixels=True).SOPInstanceUID)
    bridge = BridgeProcess(cfg, env={"BRIDGE_TEST_ANALYSIS_LOG": str(log)}).start()
    try:
        storescu(bridge.dicom_port, [*write_files(normal, tmp_path / "in" / "normal"), poison])
        rec = bridge.wait_state(uid, ["sent", "failed"], timeout=120)
        assert rec["state"] == "sent", rec
        assert rec["crashes"] == 0 and rec["quarantined"] == 0 and rec["attempts"] == 1, rec
        got = received_uids(received)
        assert sorted(got[u] for u in rec["result_uids"]) == [
            "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.88.33"]
        study_dir = bridge.spool / "studies" / uid
        assert {p.stem for p in study_dir.glob("*.dcm")} == {
            str(d.SOPInstanceUID) for d in normal}
        assert [p.stem for p in (study_dir / "set_aside").glob("*.dcm")] == [poison_sop]
        assert analyses(log, uid) == 2  # the attempt that died, then the rest of the study
        lines = bridge_lines(bridge, "killed the decoder", "analysed in", "results sent")
        assert any("1 of its instance(s) killed the decoder (the screening process died "
                   "(SIGABRT)" in line and "the other 3 analysed" in line for line in lines), lines
        assert poison_sop not in bridge.log()  # logs carry shortened UIDs only
        assert bridge.get_with_code("/health")[0] == 200
        print("\n--- bridge log (poison inside a study) ---\n" + "\n".join(lines))
    finally:
        bridge.stop()


def test_a_failing_screening_leaves_the_crash_as_it_was(dicom_dir, tmp_path):
    """A screening decoder that cannot even be imported must not turn the analysis crash
    into an ordinary error: the crash is still what the worker counts (and quarantines)."""
    from common.errors import WorkerCrashError
    from pacs_bridge.service.analysis import IsolatedAnalysis
    from pacs_bridge.service.config import AnalysisConfig, RoutingConfig
    from pacs_bridge.service.routing import Router
    from pacs_bridge.service.spool import Spool

    normal = make_study(2, seed="screening-fails")
    uid = str(normal[0].StudyInstanceUID)
    poison, _ = make_poison(dicom_dir, tmp_path / "poison.dcm", "screening", study_uid=uid)
    spool = Spool(tmp_path / "spool", use_slots=False)
    for path in [*write_files(normal, tmp_path / "normal"), poison]:
        ds = dcmread(path, stop_before_pixels=True)
        spool.store_instance(uid, str(ds.SOPInstanceUID), path.read_bytes())
    cfg = AnalysisConfig(analyzer=ANALYZER, screen_decoder="no_such_module:decode")
    analysis = IsolatedAnalysis(cfg, spool, Router(RoutingConfig()))
    try:
        with pytest.raises(WorkerCrashError, match="SIGABRT"):
            analysis.run(uid)
    finally:
        analysis.close()
    assert len(spool.instance_files(uid)) == 3 and spool.set_aside_files(uid) == []
