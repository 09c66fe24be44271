"""What a series header says before any pixel is read: region words through the mapping
table, the plane from ImageOrientationPatient (geometry first, oblique beyond a stated angle),
the patient position; and how `interpret` uses them beside the image heads (issue 18)."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
from fixtures_model import require_weights
from pydicom.dataset import Dataset

from imaging.datasets import REGIONS
from imaging.series_header import (
    HEADER_REGION_RATIO,
    OBLIQUE_DEGREES,
    agreement_ratio,
    header_regions,
    plane_geometry,
    position_parts,
    region_terms,
    terms_in,
)


def _tilted(axis: str, degrees: float) -> tuple[float, ...]:
    """An IOP whose slice normal is `degrees` away from the `axis` plane's normal."""
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    if axis == "axial":  # rows along x, columns tilted from y towards z
        return (1.0, 0.0, 0.0, 0.0, c, -s)
    if axis == "coronal":
        return (1.0, 0.0, 0.0, 0.0, s, -c)
    return (0.0, 1.0, 0.0, s, 0.0, -c)


@pytest.mark.parametrize("axis", ["axial", "coronal", "sagittal"])
def test_the_plane_comes_from_the_dominant_normal_with_its_angle(axis):
    exact = plane_geometry(_tilted(axis, 0.0))
    assert (exact.plane, exact.nearest, exact.angle) == (axis, axis, 0.0)
    tilted = plane_geometry(_tilted(axis, 20.0))
    assert (tilted.plane, tilted.angle) == (axis, pytest.approx(20.0, abs=0.2))


def test_beyond_the_stated_angle_the_plane_is_oblique():
    assert OBLIQUE_DEGREES == 35.0
    near = plane_geometry(_tilted("axial", OBLIQUE_DEGREES - 1))
    far = plane_geometry(_tilted("axial", OBLIQUE_DEGREES + 5))
    assert near.plane == "axial"
    assert (far.plane, far.nearest) == ("oblique", "axial")
    assert far.angle == pytest.approx(OBLIQUE_DEGREES + 5, abs=0.2)
    # double oblique: the normal leans towards two axes at once
    double = plane_geometry((0.8, 0.6, 0.0, -0.36, 0.48, 0.8))
    assert double.plane == "oblique" and double.angle > OBLIQUE_DEGREES
    assert plane_geometry(None) is None and plane_geometry((1, 0, 0, 1, 0, 0)) is None


@pytest.mark.parametrize("text,regions", [
    ("1A TRAUMA/PLAIN HEAD DM", ("head",)),       # Philips CT study description
    ("/Head", ("head",)),                         # its protocol
    ("MR-Brain w/o Contrast", ("head",)),
    ("C-SPINE", ("spine_muscles",)),
    ("Thoracic spine sag T2", ("spine_muscles",)),  # the phrase wins over "thoracic"
    ("CT THORAX", ("thorax",)),
    ("CT CAP with contrast", ("thorax", "abdomen", "reproductive_urinary")),
    ("Schaedel nativ", ("head",)),                  # German vendor exam tree
    ("LWS sag", ("spine_muscles",)),
    ("头颅平扫", ("head",)),
    ("胸椎 MRI", ("spine_muscles",)),                # not the thorax
    ("EPI PE=AP", ()),                               # phase encoding is no anatomy
    ("sag_asc_35sl", ()),
])
def test_description_words_map_through_the_table(text, regions):
    found = tuple(dict.fromkeys(r for t in terms_in(text) for r in t.regions))
    assert found == regions


def test_the_table_names_only_the_models_regions():
    table = region_terms()
    assert len(table) > 100
    assert all(set(t.regions) <= set(REGIONS) for t in table.values())
    assert {t.kind for t in table.values()} == {"anatomy", "abbreviation", "language",
                                                 "technique"}


def test_the_most_specific_field_decides_and_technique_words_come_last():
    ds = Dataset()
    ds.BodyPartExamined = "CHEST"
    ds.StudyDescription = "MR BRAIN"
    assert header_regions(ds)[:2] == (("thorax",), "BodyPartExamined")
    ds = Dataset()
    ds.SeriesDescription = "t1_mprage_sag"
    ds.StudyDescription = "Research^Knee"
    assert header_regions(ds)[:2] == (("spine_muscles",), "StudyDescription")
    ds.StudyDescription = "Research"
    assert header_regions(ds) == (("head",), "SeriesDescription", ("MPRAGE",))


def test_the_region_ratio_is_the_measured_agreement():
    # 494 right of 584 (Gueld 2002 plus the dev studies), errors over 4 other regions
    assert HEADER_REGION_RATIO == pytest.approx(agreement_ratio(494, 584, 5))
    assert 20 < HEADER_REGION_RATIO < 24
    assert agreement_ratio(0, 0, 5) == pytest.approx(4.0)  # nothing measured: weak


@pytest.mark.parametrize("code,parts", [
    ("HFS", ("head_first", "supine")), ("HFP", ("head_first", "prone")),
    ("FFDL", ("feet_first", "decubitus_left")), ("LLD", ("decubitus_left",)),
    ("PA", ("pa",)), ("XYZ", ()), ("", ()),
])
def test_patient_position_codes(code, parts):
    assert position_parts(code) == parts


# -- interpret: geometry decides the plane; header and image disagreeing is a warning -------

class _Pred:
    """Per-slice outputs of an MR stack: the image heads say thorax and axial."""

    def __init__(self, n: int, dim: int) -> None:
        self.modality = np.tile([[0.01, 0.98, 0.01]], (n, 1))
        self.region = np.tile([[0.05, 0.05, 0.8, 0.05, 0.04, 0.01]], (n, 1))
        self.plane = np.tile([[0.9, 0.05, 0.05]], (n, 1))
        self.findings = np.zeros((n, 6))
        self.embedding = np.ones((n, dim), np.float32) / np.sqrt(dim)
        self.features = None


class _Model:
    def __init__(self, spec) -> None:
        self.spec = spec
        self.version = "test"

    def quality(self, embedding) -> float:
        return 0.5


def _interpret(monkeypatch, orientation, header):
    require_weights()
    from imaging.analyze import interpret, prepare_stack
    from imaging.model.bundle import BundleSpec
    from imaging.model.loaded import default_weights_dir
    from imaging.types import ImageStack

    quality = importlib.import_module("imaging.analyze.quality")
    monkeypatch.setattr(quality, "phantom_reason", lambda emb, model: None)
    spec = BundleSpec.from_dir(default_weights_dir())
    image = np.random.default_rng(0).random((4, 64, 64)).astype(np.float32) * 1000
    stack = ImageStack("1.2.3", "MR", "MONOCHROME2", image, orientation=orientation,
                       sop_instance_uids=("1", "2", "3", "4"))
    prepared = prepare_stack(stack, spec)
    pred = _Pred(len(prepared.idx), spec.embedding_dim)
    return interpret(_Model(spec), prepared, pred, header)


def test_geometry_decides_the_plane_and_a_disagreeing_image_is_a_warning(monkeypatch):
    from imaging.series_header import SeriesHeader

    header = SeriesHeader(body_part="BRAIN", region="head", regions=("head",),
                          region_field="BodyPartExamined", region_terms=("BRAIN",),
                          position="HFP")
    s = _interpret(monkeypatch, _tilted("sagittal", 10.0), header)
    assert s.top("plane").code == "plane:sagittal" and s.top("plane").probability == 1.0
    assert (s.plane_source, s.plane_nearest) == ("geometry", "sagittal")
    assert s.plane_angle == pytest.approx(10.0, abs=0.2)
    assert any(w.startswith("plane_mismatch: ImageOrientationPatient says sagittal")
               for w in s.warnings)
    # the header's region is weighed, not obeyed: 0.8 thorax x 1 vs 0.05 head x 22
    assert s.top("region").code == "region:head"
    assert any(w.startswith("region_mismatch: the header (BodyPartExamined: BRAIN) names head")
               for w in s.warnings)
    assert s.header_regions == ("head",) and s.patient_position == "HFP"


def test_oblique_geometry_and_the_image_alone_without_geometry(monkeypatch):
    from imaging.series_header import SeriesHeader

    oblique = _interpret(monkeypatch, _tilted("coronal", 40.0), SeriesHeader())
    assert oblique.top("plane").code == "plane:oblique"
    assert (oblique.plane_nearest, oblique.plane_source) == ("coronal", "geometry")
    free = _interpret(monkeypatch, None, SeriesHeader())
    assert free.plane_source == "image" and free.plane_angle is None
    assert free.top("plane").code == "plane:axial" and free.top("plane").probability < 1.0
    assert free.top("region").code == "region:thorax"  # no header region: the image decides
    assert not any(w.startswith(("plane_mismatch", "region_mismatch")) for w in free.warnings)
