"""End to end with the real analysis: a CT study goes from Orthanc to the bridge by
C-MOVE, `imaging.pipeline:report_objects` analyses it, and its SR (and secondary capture)
arrive back in Orthanc in the same study, labelled as an unreviewed AI draft."""

from __future__ import annotations

import io
import json
import os
import urllib.request
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from fixtures_bridge import make_study, store, wait_finished, write_config, write_files
from fixtures_orthanc import orthanc_fixture  # noqa: F401 (the `orthanc` fixture)
from pydicom import dcmread

from pacs_bridge.service.config import load_config
from pacs_bridge.service.service import BridgeService
from radassist_cli.main import main as cli

pytestmark = pytest.mark.orthanc

REPO = Path(__file__).resolve().parent.parent
# the same place imaging.model.loaded looks (without importing torch at collection)
WEIGHTS = Path(os.environ.get("RADASSIST_WEIGHTS", REPO / "weights")) / "models" / "model.pt"


def test_real_pipeline_results_arrive_in_orthanc(orthanc, tmp_path):
    if not WEIGHTS.exists():
        pytest.skip(f"trained weights not found at {WEIGHTS} (run `radassist train`)")
    # a real CT slice (pydicom's CT_small, 128x128) as a 6-slice study with new UIDs
    series = make_study(6, size=128, seed="bridge-real-pipeline")
    for ds in series:
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        orthanc.upload(buf.getvalue())
    uid = str(series[0].StudyInstanceUID)

    cfg = write_config(
        tmp_path / "bridge", dicom_port=0, analyzer="imaging.pipeline:report_objects",
        inactivity=0.5, max_attempts=1,
        destination={"kind": "dimse", "ae_title": orthanc.aet, "port": orthanc.dicom_port},
        source={"ae_title": orthanc.aet, "port": orthanc.dicom_port, "move_destination": "BRIDGE"},
    )
    svc = BridgeService(load_config(cfg))
    svc.start()
    try:
        orthanc.add_modality("BRIDGE", "BRIDGE", svc.scp.port)
        assert cli(["bridge", "pull", "--config", str(cfg), "--study", uid]) == 0
        rec = wait_finished(svc, uid, timeout=240)
    finally:
        svc.stop()
    assert rec.state == "sent", rec.last_error
    assert rec.instance_count == len(series) and rec.attempts == 1
    found = {i["MainDicomTags"]["SOPInstanceUID"]: i["ID"] for i in orthanc.study_instances(uid)}
    assert len(found) == len(series) + len(rec.result_uids)
    classes = []
    for result_uid in rec.result_uids:
        with urllib.request.urlopen(f"{orthanc.url}/instances/{found[result_uid]}/file") as r:
            data = r.read()
        ds = dcmread(io.BytesIO(data))
        assert ds.StudyInstanceUID == uid
        assert "AI draft" in data.decode("utf-8", "replace")
        classes.append(ds.SOPClassUID)
    assert any(c.startswith("1.2.840.10008.5.1.4.1.1.88.") for c in classes)  # an SR
    assert "1.2.840.10008.5.1.4.1.1.7" in classes  # the secondary capture


def _sr_texts(ds) -> list[str]:
    out = []
    for item in ds.get("ContentSequence", []):
        if "TextValue" in item:
            out.append(str(item.TextValue))
        out += _sr_texts(item)
    return out


def test_the_bridge_passes_the_header_context_as_analyze_does(orthanc, tmp_path):
    """A study C-STOREd to the bridge's real listener: its SR, back in Orthanc, states the
    clinical context from the header (age, sex, reason), item by item, exactly as `radassist
    analyze` of the same files does (issue 18: the worker passed no context)."""
    if not WEIGHTS.exists():
        pytest.skip(f"trained weights not found at {WEIGHTS} (run `radassist train`)")
    series = make_study(4, size=128, seed="bridge-header-context")
    for ds in series:
        ds.PatientAge, ds.PatientSex = "007Y", "F"
        ds.ReasonForStudy = "cough and fever"
    uid = str(series[0].StudyInstanceUID)
    cfg = write_config(
        tmp_path / "bridge", dicom_port=0, analyzer="imaging.pipeline:report_objects",
        inactivity=0.5, max_attempts=1,
        destination={"kind": "dimse", "ae_title": orthanc.aet, "port": orthanc.dicom_port})
    svc = BridgeService(load_config(cfg))
    svc.start()
    try:
        assert store(svc.scp.port, series) == [0] * len(series)
        rec = wait_finished(svc, uid, timeout=240)
    finally:
        svc.stop()
    assert rec is not None and rec.state == "sent", rec and rec.last_error
    found = {i["MainDicomTags"]["SOPInstanceUID"]: i["ID"] for i in orthanc.study_instances(uid)}
    srs = []
    for result_uid in rec.result_uids:
        with urllib.request.urlopen(f"{orthanc.url}/instances/{found[result_uid]}/file") as r:
            ds = dcmread(io.BytesIO(r.read()))
        if ds.SOPClassUID.startswith("1.2.840.10008.5.1.4.1.1.88."):
            srs.append(ds)
    (sr,) = srs
    texts = _sr_texts(sr)
    bridge_context = [t for t in texts if t.startswith("Clinical context: ")]
    assert "Clinical context: Age: 7 years (from the DICOM header)" in bridge_context
    assert "Clinical context: Sex: female (from the DICOM header)" in bridge_context
    assert ("Clinical context: Reason for the examination: “cough and fever” (from the DICOM "
            "header)") in bridge_context
    assert any(t.startswith("Caveat: Paediatric patient (age 7)") for t in texts)

    # the same files through `radassist analyze`: the same context, item for item
    files = write_files(series, tmp_path / "files")
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli(["analyze", str(files[0].parent), "--format", "json"]) == 0
    note = json.loads(out.getvalue())
    assert [f"Clinical context: {c['text']['en']}" for c in note["context"]] == bridge_context
    assert {c["source"] for c in note["context"]} == {"header"}
