"""`imaging.analyze` on real DICOM: sane observations, determinism, OOD, saliency alignment."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_model import require_weights, study_of, write_blank_png, write_photo_png
from pydicom.data import get_testdata_file

import imaging


@pytest.fixture(scope="module")
def model():
    from imaging.model import get_model

    return get_model(require_weights())

CHEST_CR = "conformance/fo-dicom/CR-MONO1-10-chest"


def _codes(series, kind):
    return [o.code for o in series.observations if o.kind == kind]


def test_import_imaging_is_cheap_and_analyze_is_the_function():
    import subprocess
    import sys

    code = ("import sys, imaging; assert 'torch' not in sys.modules, 'torch imported'; "
            "import imaging.analyze as m; from imaging import analyze; "
            "assert callable(analyze) and callable(imaging.analyze)")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name, modality", [("CT_small.dcm", "CT"), ("MR_small.dcm", "MR")])
def test_cross_sectional_series(model, name, modality):
    a = imaging.analyze(study_of(get_testdata_file(name)))
    assert a.model_version == model.version
    (s,) = a.series
    assert s.header_modality == modality
    kinds = {o.kind for o in s.observations}
    assert {"modality", "quality"} <= kinds
    probs = [o.probability for o in s.observations if o.kind == "modality"]
    assert abs(sum(probs) - 1.0) < 1e-4 and all(0.0 <= p <= 1.0 for p in probs)
    assert not s.out_of_distribution, s.warnings  # real CT and MR slices: read, not refused
    assert s.top("modality").code == f"modality:{modality}"
    assert _codes(s, "plane") and _codes(s, "region")
    from imaging.datasets import FINDINGS

    radiograph = {f"finding:{name}" for name in FINDINGS}
    assert not set(_codes(s, "finding")) & radiograph, "chest-radiograph findings on CT/MR"
    for o in s.observations:
        if o.kind == "finding":  # CT/MR heads carry the threshold chosen on train folds
            assert o.threshold is not None and 0.0 < o.threshold < 1.0
    assert s.embedding.dtype == np.float32 and abs(np.linalg.norm(s.embedding) - 1) < 1e-4
    assert s.key_image.dtype == np.uint8 and s.key_image.ndim == 2
    assert s.source_sop_instance_uids


def test_radiograph_findings_saliency_and_determinism(model, dicom_dir):
    study = study_of(dicom_dir / CHEST_CR)
    a = imaging.analyze(study)
    b = imaging.analyze(study)
    (s,) = a.series
    assert not s.out_of_distribution, s.warnings
    assert s.top("modality").code == "modality:XR"
    assert s.top("region").code == "region:chest_radiograph"
    findings = _codes(s, "finding")
    assert findings[0] if findings else False
    assert "finding:pneumonia" in findings
    for sal in s.saliency:
        assert sal.array.shape == s.key_image.shape
        assert sal.array.dtype == np.float32
        assert 0.0 <= sal.array.min() and sal.array.max() <= 1.0
    reported = [o.code for o in s.observations if o.kind == "finding" and o.probability >= 0.5]
    assert sorted(x.finding_code for x in s.saliency) == sorted(reported)
    # bit for bit: observations, embedding, key image and saliency
    (t,) = b.series
    assert s.observations == t.observations
    assert s.embedding.tobytes() == t.embedding.tobytes()
    assert s.key_image.tobytes() == t.key_image.tobytes()
    assert [x.array.tobytes() for x in s.saliency] == [x.array.tobytes() for x in t.saliency]


def test_blank_and_photo_are_out_of_distribution(model, tmp_path):
    blank, photo = tmp_path / "blank.png", tmp_path / "photo.png"
    write_blank_png(blank)
    write_photo_png(photo)
    for path, reason in ((blank, "blank"), (photo, "colour photograph")):
        (s,) = imaging.analyze(study_of(path)).series
        assert s.out_of_distribution, path
        assert s.quality_score == 0.0
        assert any(reason in w for w in s.warnings), s.warnings
        assert not _codes(s, "finding") and not _codes(s, "region")
        ood = [o for o in s.observations if o.code == "quality:ood"]
        assert ood and ood[0].probability == 1.0


def test_unsupported_modality_flagged(model, dicom_dir):
    (s,) = imaging.analyze(study_of(dicom_dir / "conformance/nema-wg04/J2KR/NM1_J2KR")).series
    assert s.header_modality == "NM"
    assert s.out_of_distribution
    assert any("unsupported modality NM" in w for w in s.warnings)


def test_non_image_series_skipped_with_warning(model, tmp_path):
    import shutil

    from pacs_bridge.ingest import ingest

    shutil.copy(get_testdata_file("test-SR.dcm"), tmp_path / "sr.dcm")
    studies = ingest([tmp_path]).studies
    assert studies
    a = imaging.analyze(studies[0])
    assert a.series == ()
    (listed,) = a.listed
    assert listed.role == "non_image" and "structured_report" in listed.reason


def test_long_stack_is_subsampled_with_driving_slices(model):
    from imaging.analyze import analyze_stack
    from imaging.pixels import series_stacks
    from imaging.types import ImageStack

    (ct,) = series_stacks(study_of(get_testdata_file("CT_small.dcm")).series[0])
    base = ct.array[:1]
    volume = np.concatenate([np.roll(base, k, axis=2) for k in range(60)]).astype(np.float32)
    stack = ImageStack("1.2.3", "CT", "MONOCHROME2", volume, windows=ct.windows,
                       sop_instance_uids=tuple(f"1.2.3.{i}" for i in range(60)))
    s = analyze_stack(model, stack)
    assert s.n_images == 60
    assert any(w.startswith("subsampled") for w in s.warnings)
    assert 0 <= s.key_slice < 60
    for o in s.observations:
        assert all(0 <= i < 60 for i in o.slices)
        assert len(o.slices) <= 3
    assert not s.out_of_distribution, s.warnings
    driven = [o.slices for o in s.observations if o.kind in ("region", "plane")]
    assert driven and all(len(sl) == 3 for sl in driven)
    assert model.spec.max_slices_per_stack == 24  # the bundle's inference.json


def test_study_level_warnings_reach_the_analysis(model):
    """What ingest or the bridge found wrong with the study as a whole (here: instances the
    bridge set aside) is carried into the Analysis, from which the note and the SR word it."""
    import dataclasses

    from pacs_bridge.study import IngestWarning

    study = study_of(get_testdata_file("CT_small.dcm"))
    warned = dataclasses.replace(study, warnings=(IngestWarning(
        "instances_set_aside", "1 instance(s) set aside: decoding them killed the analysis "
        "process; not analysed"),))
    assert imaging.analyze(study).warnings == ()
    assert imaging.analyze(warned).warnings == (
        "instances_set_aside: 1 instance(s) set aside: decoding them killed the analysis "
        "process; not analysed",)
