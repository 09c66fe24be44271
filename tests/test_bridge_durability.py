"""SIGKILL in the middle of a 200-instance study: nothing acknowledged is lost, and the
study is analysed once and its results sent once (checked in the spool, the journal, the
analysis log and Orthanc)."""

from __future__ import annotations

import threading
import time

import pytest
from fixtures_bridge import BridgeProcess, make_study, store, write_config
from fixtures_orthanc import (
    free_port,
    orthanc_fixture,  # noqa: F401 (the `orthanc` fixture)
)
from pydicom import dcmread

from pacs_bridge.ingest import read_instance
from pacs_bridge.service.journal import Journal

pytestmark = pytest.mark.orthanc

N = 200
KILL_AFTER = 80


def test_sigkill_mid_study_loses_nothing_and_reports_once(orthanc, tmp_path):
    analyses = tmp_path / "analyses.log"
    cfg = write_config(
        tmp_path / "bridge",
        dicom_port=free_port(),
        destination={"kind": "dimse", "ae_title": orthanc.aet, "port": orthanc.dicom_port},
        inactivity=1.0,
    )
    bridge = BridgeProcess(cfg, env={"BRIDGE_TEST_ANALYSIS_LOG": str(analyses)})
    bridge.start()
    try:
        datasets = make_study(N, seed="sigkill")
        uid = datasets[0].StudyInstanceUID
        acked: list[int] = []
        enough = threading.Event()

        def on_status(i: int, code: int) -> None:
            if code == 0x0000:
                acked.append(i)
                if len(acked) >= KILL_AFTER:
                    enough.set()

        def killer() -> None:  # from another thread: lands while an instance is in flight
            enough.wait(60)
            bridge.kill()

        k = threading.Thread(target=killer)
        k.start()
        statuses = store(bridge.dicom_port, datasets, on_status=on_status)
        k.join()
        assert KILL_AFTER <= len(acked) < N, "the kill must interrupt the study"
        assert statuses[-1] is None  # the sender saw the bridge die
        assert bridge.proc.returncode == -9

        # every acknowledged instance is in the spool, complete and valid: filed under
        # studies/, or still in the slot it was fsynced into before its ack
        folder = bridge.spool / "studies" / uid
        on_disk = {}
        for path in [*folder.glob("*.dcm"), *(bridge.spool / "slots").glob("*.slot")]:
            if path.stat().st_size:
                try:
                    on_disk[read_instance(str(path), path.read_bytes()).sop_instance_uid] = path
                except Exception:  # a write cut by the kill (never acknowledged)
                    pass
        missing = [i for i in acked if datasets[i].SOPInstanceUID not in on_disk]
        assert missing == []
        assert not analyses.exists()  # the study was not complete: nothing analysed yet

        # restart; the sender retries the whole study (duplicates are harmless)
        bridge.start()
        filed = {p.stem for p in folder.glob("*.dcm")}  # recovery filed every slot
        assert {datasets[i].SOPInstanceUID for i in acked} <= filed
        assert store(bridge.dicom_port, datasets) == [0x0000] * N
        rec = bridge.wait_state(uid, ["sent", "failed"], timeout=120)
        assert rec["state"] == "sent", rec
        assert rec["instance_count"] == N and rec["attempts"] == 1
        assert analyses.read_text().splitlines() == [uid]  # analysed exactly once

        files = sorted(folder.glob("*.dcm"))
        assert {p.stem for p in files} == {d.SOPInstanceUID for d in datasets}
        assert all(dcmread(p, stop_before_pixels=True).StudyInstanceUID == uid for p in files)

        # sent exactly once: one send in the log, one journal row per object, 2 in Orthanc
        time.sleep(0.5)
        log = bridge.log()
        assert log.count("results sent to") == 1
        # no identifiers in the service log: no patient name/ID, no full study UID
        assert "TEST^BRIDGE" not in log and "BRIDGE-TEST" not in log and uid not in log
        found = orthanc.study_instances(uid)
        assert sorted(i["MainDicomTags"]["SOPInstanceUID"] for i in found) == sorted(
            rec["result_uids"]
        )
    finally:
        bridge.stop()
    journal = Journal(bridge.spool / "journal.sqlite", readonly=True)
    assert sorted(journal.sent_uids(uid)) == sorted(rec["result_uids"])
    to_states = [t.to_state for t in journal.transitions(uid)]
    assert to_states.count("analysing") == 1 and to_states.count("sent") == 1
