"""The bridge against a real Orthanc: C-MOVE in, routing, results back by C-STORE and
STOW-RS (checked by REST and QIDO-RS), DICOMweb and C-GET pulls, watch, concurrency,
bad input, retries ending in "failed", and the status command.

The bridge runs in-process here (a real DICOM listener and HTTP endpoint on loopback);
the SIGKILL test in test_bridge_durability.py runs it as a subprocess.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from fixtures_bridge import (  # noqa: F401 (the `bridges` fixture)
    bridges_fixture,
    make_study,
    store,
    wait_finished,
    write_config,
    write_files,
)
from fixtures_orthanc import (
    Orthanc,
    free_port,
    needs_dicomweb,
    orthanc_fixture,  # noqa: F401 (the `orthanc` fixture)
)
from pydicom import dcmread
from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE

from pacs_bridge.service.config import load_config
from pacs_bridge.service.service import BridgeService
from radassist_cli.main import main as cli

pytestmark = pytest.mark.orthanc

ANALYSE_CHEST_CT = """
[routing]
default = "skip"
[[routing.rules]]
action = "analyse"
modality = ["CT"]
body_part = ["CHEST"]
"""




def upload(o: Orthanc, datasets) -> None:
    for ds in datasets:
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        o.upload(buf.getvalue())


def dimse_destination(o: Orthanc) -> dict:
    return {"kind": "dimse", "ae_title": o.aet, "host": "127.0.0.1", "port": o.dicom_port}


def assert_results_in_orthanc(o: Orthanc, study_uid: str, result_uids, n_source: int) -> None:
    """SR and SC are in the study (REST) and QIDO-RS lists them by Study Instance UID."""
    found = o.study_instances(study_uid)
    assert len(found) == n_source + 2
    by_uid = {i["MainDicomTags"]["SOPInstanceUID"]: i for i in found}
    assert set(result_uids) <= set(by_uid)
    classes = {o.instance_tags(by_uid[u]["ID"])["SOPClassUID"] for u in result_uids}
    assert classes == {"1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.7"}
    for u in result_uids:
        tags = o.instance_tags(by_uid[u]["ID"])
        assert tags["StudyInstanceUID"] == study_uid
        assert "AI draft" in tags.get("SeriesDescription", "")
    from dicomweb_client.api import DICOMwebClient

    qido = DICOMwebClient(o.dicomweb_url).search_for_instances(study_instance_uid=study_uid)
    qido_uids = {i["00080018"]["Value"][0] for i in qido}
    assert set(result_uids) <= qido_uids and len(qido_uids) == n_source + 2


def test_orthanc_moves_study_to_bridge_results_come_back(orthanc, bridges, capsys):
    needs_dicomweb()
    svc, cfg = bridges(
        destination=dimse_destination(orthanc),
        source={"ae_title": orthanc.aet, "port": orthanc.dicom_port, "move_destination": "BRIDGE"},
        routing=ANALYSE_CHEST_CT,
    )
    orthanc.add_modality("BRIDGE", "BRIDGE", svc.scp.port)
    chest = make_study(12, seed="move-chest")
    head = make_study(4, seed="move-head")
    for ds in head:
        ds.BodyPartExamined = "HEAD"
    upload(orthanc, chest + head)
    uid, head_uid = chest[0].StudyInstanceUID, head[0].StudyInstanceUID

    for study_uid in (uid, head_uid):
        assert cli(["bridge", "pull", "--config", str(cfg), "--study", study_uid]) == 0
    assert "12 instance(s) received, 0 refused (PACS lists 12)" in capsys.readouterr().out

    rec = wait_finished(svc, uid)
    assert rec.state == "sent", rec.last_error
    assert rec.instance_count == 12 and rec.attempts == 1
    assert_results_in_orthanc(orthanc, uid, rec.result_uids, 12)
    # routing: the head CT is received and kept, visibly skipped, nothing sent for it
    skipped = wait_finished(svc, head_uid)
    assert skipped.state == "skipped" and "CT/HEAD" in skipped.route
    assert len(orthanc.study_instances(head_uid)) == 4
    assert len(svc.spool.instance_files(head_uid)) == 4


def test_dicomweb_pull_with_stow_destination(orthanc, bridges, capsys):
    needs_dicomweb()
    svc, cfg = bridges(
        destination={"kind": "dicomweb", "url": orthanc.dicomweb_url},
        source={"url": orthanc.dicomweb_url, "ae_title": orthanc.aet, "port": orthanc.dicom_port},
    )
    orthanc.add_modality("BRIDGE", "BRIDGE", svc.scp.port)
    web, dimse = make_study(6, seed="qido-wado"), make_study(5, seed="c-get")
    upload(orthanc, web + dimse)

    uid = web[0].StudyInstanceUID
    assert cli(["bridge", "pull", "--config", str(cfg), "--study", uid, "--via", "dicomweb"]) == 0
    assert "6 instance(s) received, 0 refused (PACS lists 6)" in capsys.readouterr().out
    rec = wait_finished(svc, uid)
    assert rec.state == "sent", rec.last_error
    assert_results_in_orthanc(orthanc, uid, rec.result_uids, 6)
    # the STOW-RS copies are readable DICOM files (preamble and file meta were sent)
    sr_id = next(
        i["ID"] for i in orthanc.study_instances(uid)
        if i["MainDicomTags"]["SOPInstanceUID"] == rec.result_uids[0]
    )
    with urllib.request.urlopen(f"{orthanc.url}/instances/{sr_id}/file") as r:
        assert dcmread(io.BytesIO(r.read())).SOPInstanceUID == rec.result_uids[0]

    get_uid = dimse[0].StudyInstanceUID
    argv = ["bridge", "pull", "--config", str(cfg), "--study", get_uid, "--get"]
    assert cli(argv) == 0
    assert "5 instance(s) received" in capsys.readouterr().out
    assert wait_finished(svc, get_uid).state == "sent"


@pytest.mark.parametrize("via", ["dimse", "dicomweb"])
def test_pull_of_unknown_study_is_one_clear_error(orthanc, bridges, capsys, via):
    if via == "dicomweb":
        needs_dicomweb()  # without the plugin Orthanc answers any DICOMweb URL with 404
    svc, cfg = bridges(source={"ae_title": orthanc.aet, "port": orthanc.dicom_port,
                               "url": orthanc.dicomweb_url})
    orthanc.add_modality("BRIDGE", "BRIDGE", svc.scp.port)
    argv = ["bridge", "pull", "--config", str(cfg), "--study", "1.2.3.999", "--via", via]
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not found" in err and "Traceback" not in err


def test_watch_once_pulls_new_studies_and_sends_results(orthanc, tmp_path, capsys):
    needs_dicomweb()
    datasets = make_study(5, seed="watch")
    upload(orthanc, datasets)
    cfg = write_config(
        tmp_path / "watch", dicom_port=0, destination=dimse_destination(orthanc),
        source={"url": orthanc.dicomweb_url},
    )
    assert cli(["bridge", "watch", "--config", str(cfg), "--once", "--timeout", "120"]) == 0
    out = capsys.readouterr().out
    uid = datasets[0].StudyInstanceUID
    assert "1 new stud(ies) pulled" in out and f"{uid} sent" in out
    assert len(orthanc.study_instances(uid)) == 7
    # the second poll finds nothing new (the study and its results are known)
    assert cli(["bridge", "watch", "--config", str(cfg), "--once", "--timeout", "5"]) == 0
    assert "0 new stud(ies) pulled" in capsys.readouterr().out
    assert len(orthanc.study_instances(uid)) == 7


def test_five_concurrent_associations(orthanc, bridges):
    svc, _ = bridges(destination=dimse_destination(orthanc))
    studies = [make_study(20, seed=f"concurrent-{k}") for k in range(5)]
    results: dict[int, list] = {}

    def send(k: int) -> None:
        results[k] = store(svc.scp.port, studies[k], calling=f"SCU{k}")

    threads = [threading.Thread(target=send, args=(k,)) for k in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(results[k] == [0] * 20 for k in range(5)), results
    for datasets in studies:
        uid = datasets[0].StudyInstanceUID
        rec = wait_finished(svc, uid)
        assert rec.state == "sent" and rec.instance_count == 20
        assert {p.stem for p in svc.spool.instance_files(uid)} == {
            d.SOPInstanceUID for d in datasets
        }
        assert len(orthanc.study_instances(uid)) == 2  # SR + SC (sources went to the bridge)


def _garbage_file(path: Path) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buf = io.BytesIO()
    buf.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(buf, meta)
    buf.write(b"\xff\xfe\x00\x00garbage, not a data set" * 20)
    path.write_bytes(buf.getvalue())
    return path


def test_bad_input_is_refused_logged_and_nothing_else_lost(tmp_path, bridges, caplog):
    caplog.set_level(logging.WARNING, logger="radassist.bridge")
    svc, _ = bridges(allowed=["TESTSCU"])
    good = make_study(3, seed="bad-input")
    files = write_files(good, tmp_path / "files")
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(files[1].read_bytes()[:-700])  # pixel data cut short
    garbage = _garbage_file(tmp_path / "garbage.dcm")

    statuses = store(svc.scp.port, [files[0], garbage, truncated, files[2]])
    assert statuses[0] == 0x0000 and statuses[3] == 0x0000
    assert 0xC000 <= (statuses[1] or 0) <= 0xCFFF, statuses[1]  # cannot understand: garbage
    assert statuses[2] == 0xC211, hex(statuses[2] or 0)  # cannot understand: truncated
    # an unknown SOP class: its presentation context is rejected, the others still work
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context("1.2.826.0.1.3680043.8.498.1234567", [ExplicitVRLittleEndian])
    ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", svc.scp.port, ae_title="BRIDGE")
    assert assoc.is_established
    assert [c.abstract_syntax for c in assoc.rejected_contexts] == [
        "1.2.826.0.1.3680043.8.498.1234567"
    ]
    assert [c.result for c in assoc.rejected_contexts] == [0x03]  # abstract syntax unsupported
    assert assoc.send_c_store(good[1]).Status == 0x0000
    assoc.release()
    # a calling AE title not on the allow-list: the association is rejected. Under heavy
    # load pynetdicom's requestor can see the socket close before it reads the A-ASSOCIATE-RJ
    # ("no association"); only a rejection that was read counts, so such a race is retried
    outcomes = []
    for _ in range(3):
        with pytest.raises(ConnectionError) as refused:
            store(svc.scp.port, [files[0]], calling="INTRUDER")
        outcomes.append(str(refused.value))
        if "refused" in outcomes[-1]:
            break
    assert "refused" in outcomes[-1], outcomes

    log = caplog.text
    assert log.count("refused instance from c-store:TESTSCU: 0xC2") == 2
    assert "0xC211 truncated" in log and "'INTRUDER'" in log
    assert "not on the allow-list" in log and "TEST^BRIDGE" not in log
    assert svc.health()["status"] == "ok"
    uid = good[0].StudyInstanceUID
    assert {p.stem for p in svc.spool.instance_files(uid)} == {d.SOPInstanceUID for d in good}
    assert svc.journal.get(uid).instance_count == 3
    counts = svc.receiver.counts()
    assert counts["ok"] == 3 and sum(counts.values()) == 5
    assert len(svc.journal.studies()) == 1  # the refused objects left no trace but the log


def test_failing_analysis_retries_with_backoff_then_fails_visibly(bridges, tmp_path):
    svc, cfg = bridges(analyzer="fixtures_bridge:failing_analyzer", max_attempts=3, backoff=0.1)
    datasets = make_study(2, seed="failing")
    assert store(svc.scp.port, datasets) == [0, 0]
    uid = datasets[0].StudyInstanceUID
    rec = wait_finished(svc, uid)
    assert rec.state == "failed" and rec.attempts == 3
    assert "deliberate analyzer failure" in rec.last_error
    notes = [t.note for t in svc.journal.transitions(uid)]
    assert "attempt 1 failed; retry in 0.1 s" in notes
    assert "attempt 2 failed; retry in 0.2 s" in notes
    assert notes[-1] == "gave up after 3 attempt(s)"
    # the HTTP status endpoint and the status command show it
    with urllib.request.urlopen(f"http://127.0.0.1:{svc.http.port}/status") as r:
        status = json.load(r)
    assert status["states"] == {"failed": 1}
    assert status["studies"][0]["last_error"] == rec.last_error


def test_status_command(bridges, capsys):
    svc, cfg = bridges(destination={"kind": "dimse", "ae_title": "NOBODY", "port": free_port()},
                       max_attempts=1, delivery_max_age_hours=0.0005)  # gives up after ~2 s
    datasets = make_study(3, seed="status")
    store(svc.scp.port, datasets)
    uid = datasets[0].StudyInstanceUID
    rec = wait_finished(svc, uid)
    assert rec.state == "failed" and "association refused" in rec.last_error
    assert len(svc.spool.load_results(uid)) == 2  # analysed once, kept for a later resend
    assert cli(["bridge", "status", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "service: running" in out and uid in out and "failed" in out
    assert cli(["bridge", "status", "--config", str(cfg), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["studies"][0]["instance_count"] == 3
    # a failed study and an unreachable destination make the service degraded (HTTP 503)
    assert data["service"]["status"] == "degraded"
    assert any("failed stud" in p for p in data["service"]["problems"])
    assert any("destination unreachable" in p for p in data["service"]["problems"])


# Transfer syntaxes: one local pydicom test file each (never downloaded).
TS_FILES = [
    "CT_small.dcm",  # explicit VR little endian
    "MR_small_implicit.dcm",  # implicit VR little endian
    "SC_rgb_small_odd_big_endian.dcm",  # explicit VR big endian (retired, still sent)
    "image_dfl.dcm",  # deflated explicit VR little endian
    "SC_rgb_dcmtk_+eb+cy+n1.dcm",  # JPEG baseline
    "JPEG-lossy.dcm",  # JPEG extended
    "SC_rgb_jpeg_gdcm.dcm",  # JPEG lossless SV1
    "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS lossless
    "JPEGLSNearLossless_08.dcm",  # JPEG-LS near-lossless
    "GDCMJ2K_TextGBR.dcm",  # JPEG 2000 lossless
    "JPEG2000.dcm",  # JPEG 2000
    "SC_rgb_rle_32bit.dcm",  # RLE lossless
]


def test_common_transfer_syntaxes_are_accepted_and_stored_as_sent(bridges):
    from pydicom.data import get_testdata_file

    svc, _ = bridges()
    files, seen = [], set()
    for name in TS_FILES:
        path = Path(get_testdata_file(name, download=False))
        ds = dcmread(path)
        # some test files lack study UIDs or share an instance UID: give them their own
        if {"StudyInstanceUID", "SeriesInstanceUID"} - set(ds.dir()) or (
            ds.SOPInstanceUID in seen
        ):
            ds.StudyInstanceUID = generate_uid(entropy_srcs=[name, "study"])
            ds.SeriesInstanceUID = generate_uid(entropy_srcs=[name, "series"])
            ds.SOPInstanceUID = generate_uid(entropy_srcs=[name, "instance"])
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            path = svc.spool.root.parent / name  # re-encoded, pixel data left compressed
            ds.save_as(path)
        seen.add(ds.SOPInstanceUID)
        files.append(path)
    originals = [dcmread(p) for p in files]
    ae = AE(ae_title="TESTSCU")
    for ds in originals:
        ae.add_requested_context(ds.SOPClassUID, [ds.file_meta.TransferSyntaxUID])
    assoc = ae.associate("127.0.0.1", svc.scp.port, ae_title="BRIDGE")
    assert assoc.is_established and not assoc.rejected_contexts
    from pynetdicom import _config

    chunked = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True  # send each file's encoded bytes unchanged
    try:
        statuses = [assoc.send_c_store(p).Status for p in files]
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = chunked
        assoc.release()
    assert statuses == [0x0000] * len(files)
    for ds in originals:
        spooled = svc.spool.study_dir(ds.StudyInstanceUID) / f"{ds.SOPInstanceUID}.dcm"
        back = dcmread(spooled)
        assert back.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
        assert back.PixelData == ds.PixelData


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import shutil
    import subprocess

    if not shutil.which("openssl"):
        pytest.skip("openssl not installed (needed to make a test certificate)")
    crt, key = tmp_path / "bridge.crt", tmp_path / "bridge.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(crt), "-days", "1", "-subj", "/CN=localhost"],
        check=True, capture_output=True,
    )
    return crt, key


def test_tls_listener(bridges, tmp_path):
    import ssl

    crt, key = _self_signed(tmp_path)
    svc, _ = bridges(extra=f'[scp.tls]\ncertificate = "{crt}"\nprivate_key = "{key}"\n')
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(crt))
    datasets = make_study(2, seed="tls")
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", svc.scp.port, ae_title="BRIDGE",
                         tls_args=(ctx, "localhost"))
    assert assoc.is_established
    assert [assoc.send_c_store(ds).Status for ds in datasets] == [0, 0]
    assoc.release()
    # a plain (unencrypted) peer gets no association
    with pytest.raises(ConnectionError):
        store(svc.scp.port, datasets[:1])
    assert len(svc.spool.instance_files(datasets[0].StudyInstanceUID)) == 2


def test_restart_while_sending_resends_without_reanalysing(orthanc, tmp_path, monkeypatch):
    """Analysed, then the destination was down and the bridge stopped: a restart sends the
    spooled results; the analyzer is not called again."""
    analyses = tmp_path / "analyses.log"
    monkeypatch.setenv("BRIDGE_TEST_ANALYSIS_LOG", str(analyses))
    down = {"kind": "dimse", "ae_title": "NOBODY", "port": free_port()}
    cfg = write_config(tmp_path / "b", dicom_port=0, destination=down, max_attempts=50,
                       backoff=0.2)
    svc = BridgeService(load_config(cfg))
    svc.start()
    datasets = make_study(3, seed="restart-sending")
    uid = datasets[0].StudyInstanceUID
    try:
        assert store(svc.scp.port, datasets) == [0, 0, 0]
        deadline = time.monotonic() + 60
        while (svc.journal.get(uid) is None or svc.journal.get(uid).attempts < 2) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.05)
        assert svc.journal.get(uid).state == "sending"
    finally:
        svc.stop()
    cfg = write_config(tmp_path / "b", dicom_port=0, destination=dimse_destination(orthanc))
    svc = BridgeService(load_config(cfg))
    svc.start()
    try:
        rec = wait_finished(svc, uid)
    finally:
        svc.stop()
    assert rec.state == "sent"
    assert analyses.read_text().splitlines() == [uid]
    assert sorted(i["MainDicomTags"]["SOPInstanceUID"] for i in orthanc.study_instances(uid)) == (
        sorted(rec.result_uids)
    )
