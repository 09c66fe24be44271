"""dciodvfy (dicom3tools) finds no error in the SR and the secondary capture we send back.

The objects are built by `imaging.pipeline.dicom_objects` from really ingested sources (a
CT and an MR slice from pydicom, the fo-dicom CR chest radiograph and a wrapped NIH JPEG
from the shared data) with a fixture analysis in place of the model, with and without a
differential. Warnings are allowed: the private `99RADASSIST` codes (see
`imaging.dicom_out.sr`) and the sources' own values (retired person-name forms, empty
study dates) are reported as warnings.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from imaging.ddx.knowledge_view import load_view
from imaging.dicom_out.sc import UNPAIRED_BODY_PARTS
from imaging.notes import Resources, compose
from imaging.types import ClinicalContext

sys.path.insert(0, str(Path(__file__).parent))
from fixtures_notes import (  # noqa: E402
    chest_radiograph_analysis,
    mr_head_analysis,
    write_knowledge,
)

DCIODVFY = shutil.which("dciodvfy")
pytestmark = pytest.mark.skipif(
    DCIODVFY is None,
    reason="dciodvfy not installed (Debian package dicom3tools; .ci/run installs it)")


def _source(kind: str, request) -> Path:
    if kind == "ct":
        return Path(get_testdata_file("CT_small.dcm"))
    if kind == "mr":
        return Path(get_testdata_file("MR_small.dcm"))
    data_dir = request.getfixturevalue("data_dir")  # skips, saying why, when absent
    if kind == "cr":
        return data_dir / "dicom" / "conformance" / "fo-dicom" / "CR-MONO1-10-chest"
    images = data_dir / "nih_cxr14" / "images"
    first = min(images.glob("*.jpg"), default=None) if images.is_dir() else None
    if first is None:
        pytest.skip(f"no NIH ChestX-ray14 JPEG under {images}")
    return first


def dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    """(error lines, warning lines) of dciodvfy's report on one file."""
    run = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=120)
    lines = (run.stdout + run.stderr).splitlines()
    return ([line for line in lines if line.startswith("Error")],
            [line for line in lines if line.startswith("Warning")])


@pytest.fixture(scope="module")
def resources(tmp_path_factory) -> Resources:
    return Resources(view=load_view(write_knowledge(tmp_path_factory.mktemp("kb"))))


@pytest.mark.parametrize("history", ["fever, cough", ""])
@pytest.mark.parametrize("kind", ["ct", "mr", "cr", "jpg"])
def test_sr_and_sc_have_no_dciodvfy_error(tmp_path, request, resources, kind, history):
    from imaging.pipeline import dicom_objects
    from pacs_bridge.ingest import ingest

    study = ingest([str(_source(kind, request))]).studies[0]
    series = study.series[0]
    instance = series.instances[0]
    template = mr_head_analysis() if kind in ("ct", "mr") else chest_radiograph_analysis()
    analysed = dataclasses.replace(
        template.series[0], series_instance_uid=series.series_instance_uid,
        header_modality=instance.dataset.Modality, key_slice=0,
        source_sop_instance_uids=(instance.sop_instance_uid,))
    if kind == "ct":
        analysed = dataclasses.replace(analysed, observations=tuple(
            dataclasses.replace(o, code="modality:CT") if o.code == "modality:MR" else o
            for o in analysed.observations))
    analysis = dataclasses.replace(template, study_instance_uid=study.study_instance_uid,
                                   series=(analysed,))
    note = compose(analysis, ClinicalContext(age=60, history=history), resources=resources)
    sr, sc = dicom_objects(study, analysis, note)
    for name, obj in (("sr", sr), ("sc", sc)):
        path = tmp_path / f"{name}.dcm"
        obj.save_as(path, enforce_file_format=True)
        errors, _ = dciodvfy(path)
        assert errors == [], f"{kind} {name}: {errors}"

    # what the fixes put there: the Image Library names the source, the SC's Laterality
    ds = pydicom.dcmread(tmp_path / "sr.dcm")
    library = [item for item in ds.ContentSequence
               if item.ConceptNameCodeSequence[0].CodeValue == "111028"]
    assert len(library) == 1
    entries = [entry for group in library[0].ContentSequence
               for entry in group.ContentSequence if entry.ValueType == "IMAGE"]
    assert [e.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for e in entries] == [
        instance.sop_instance_uid]
    sc = pydicom.dcmread(tmp_path / "sc.dcm")
    assert "Laterality" in sc or sc.BodyPartExamined in UNPAIRED_BODY_PARTS
