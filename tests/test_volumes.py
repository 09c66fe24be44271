"""Series to volumes on real series: ordering, spacing, orientation, and geometry warnings.

Series come from the real `pacs_bridge.ingest`, as in production.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pydicom
import pytest

from imaging.pixels import series_stacks
from pacs_bridge.ingest import ingest
from pacs_bridge.study import Series

FAILING_CODES = {
    "gantry_tilt",
    "not_a_volume",
    "duplicate_positions",
    "uneven_spacing",
    "missing_slices",
    "mixed_orientation",
    "mixed_size",
    "mixed_pixel_spacing",
    "too_few_slices",
    "skipped_instance",
}


def _series(folder: Path) -> list[Series]:
    result = ingest([folder])
    assert not result.rejections, result.rejections
    return [s for study in result.studies for s in study.series if s.is_image]


def _codes(stack) -> set[str]:
    return {w.split(":", 1)[0] for w in stack.warnings}


@pytest.fixture(scope="module")
def volumes(dicom_dir: Path) -> Path:
    return dicom_dir / "volumes"


@pytest.fixture(scope="module")
def mprage(volumes: Path):
    (series,) = _series(volumes / "SAG-anon_MR_brain_MPRAGE")
    return series, series_stacks(series)


def test_sagittal_mprage_is_one_volume_with_header_geometry(mprage, volumes: Path):
    series, stacks = mprage
    assert len(stacks) == 1
    (stack,) = stacks
    assert stack.array.shape == (192, 256, 256) and stack.array.dtype == np.float32
    assert stack.photometric == "MONOCHROME2" and stack.modality == "MR"
    assert not stack.warnings, stack.warnings

    files = sorted((volumes / "SAG-anon_MR_brain_MPRAGE").iterdir())
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    iop = np.array(headers[0].ImageOrientationPatient, dtype=float)
    np.testing.assert_allclose(stack.orientation, iop, atol=1e-9)
    spacing = [float(v) for v in headers[0].PixelSpacing]
    assert stack.spacing[1:] == pytest.approx(spacing)
    normal = np.cross(iop[:3], iop[3:])
    dist = {
        h.SOPInstanceUID: float(np.dot(normal, np.array(h.ImagePositionPatient, float)))
        for h in headers
    }
    ordered = sorted(dist.values())
    steps = np.diff(ordered)
    assert stack.spacing[0] == pytest.approx(float(np.median(steps)), abs=1e-4)
    assert stack.spacing[0] == pytest.approx(float(headers[0].SliceThickness), abs=1e-3)
    # slices ascend along the normal and the origin is the first slice's position
    along = [dist[uid] for uid in stack.sop_instance_uids]
    assert along == sorted(along)
    first = next(h for h in headers if h.SOPInstanceUID == stack.sop_instance_uids[0])
    np.testing.assert_allclose(stack.origin, [float(v) for v in first.ImagePositionPatient])
    # and each slice holds its own instance's pixels
    k = 100
    idx = next(i for i, h in enumerate(headers) if h.SOPInstanceUID == stack.sop_instance_uids[k])
    np.testing.assert_array_equal(stack.array[k], pydicom.dcmread(files[idx]).pixel_array)
    assert stack.windows[0].name == "header"


def test_one_bad_instance_is_skipped_and_the_rest_loads(mprage):
    series, _ = mprage
    broken_ds = series.instances[10].dataset.copy()
    broken_ds.PixelData = broken_ds.PixelData[:1000]
    broken = dataclasses.replace(series.instances[10], dataset=broken_ds)
    damaged = dataclasses.replace(
        series, instances=(*series.instances[:10], broken, *series.instances[11:])
    )
    (stack,) = series_stacks(damaged)
    assert stack.array.shape[0] == 191
    assert broken.sop_instance_uid not in stack.sop_instance_uids
    skipped = [w for w in stack.warnings if w.startswith("skipped_instance:")]
    assert len(skipped) == 1 and broken.source in skipped[0]
    # the hole it leaves is measured, not hidden
    assert {"uneven_spacing", "missing_slices"} <= _codes(stack)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("gantrytilting", {"gantry_tilt"}),
        ("notavolume", {"not_a_volume"}),
        ("slicecount", {"too_few_slices"}),
        ("sliceincrement/001", {"uneven_spacing", "missing_slices"}),
        ("sliceincrement/002", {"uneven_spacing", "missing_slices"}),
        ("sliceorientation", {"mixed_orientation"}),
    ],
)
def test_dicom2nifti_failing_series_warn(volumes: Path, case: str, expected: set[str]):
    (series,) = _series(volumes / "dicom2nifti/failing" / case)
    stacks = series_stacks(series)
    for stack in stacks:
        assert expected <= _codes(stack), (case, stack.warnings)
    if case == "sliceorientation":
        assert len(stacks) == 2  # split, never stacked
        assert stacks[0].orientation != stacks[1].orientation
    else:
        assert len(stacks) == 1


def test_gantry_tilt_spacing_is_along_the_normal(volumes: Path):
    (series,) = _series(volumes / "dicom2nifti/failing/gantrytilting")
    (stack,) = series_stacks(series)
    iop = np.array(stack.orientation)
    normal = np.cross(iop[:3], iop[3:])
    # positions advance 5 mm in z; along the tilted normal that is 5 * cos(tilt)
    assert stack.spacing[0] == pytest.approx(5.0 * abs(normal[2]), rel=1e-3)


GOOD = [
    "anatomical",
    "ge/anatomical",
    "philips/anatomical",
    "siemens/anatomical",
    "hitachi/anatomical",
    "philips_enhanced/anatomical",
    "siemens_multiframe/anatomical",
    "hyperfine/anatomical",
    "generic/anatomical",
    "generic/compressed",
    "generic/compressed_jpeg",
    "generic/compressed_jpegls",
    "generic/compressed_rle",
    "generic/rgb",
]


@pytest.mark.parametrize("case", GOOD)
def test_dicom2nifti_good_series_load_as_one_volume(volumes: Path, case: str):
    (series,) = _series(volumes / "dicom2nifti" / case)
    (stack,) = series_stacks(series)
    assert not (_codes(stack) & FAILING_CODES), stack.warnings
    assert stack.array.shape[0] >= 4
    assert np.isfinite(stack.spacing[0]) and stack.spacing[0] > 0
    assert stack.orientation is not None and stack.origin is not None


def test_enhanced_multiframe_spacing_from_functional_groups(volumes: Path):
    (series,) = _series(volumes / "dicom2nifti/philips_enhanced/anatomical")
    (stack,) = series_stacks(series)
    ds = series.instances[0].dataset
    measures = ds.PerFrameFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    assert stack.spacing[1:] == pytest.approx([float(v) for v in measures.PixelSpacing])
    positions = [
        np.array(f.PlanePositionSequence[0].ImagePositionPatient, float)
        for f in ds.PerFrameFunctionalGroupsSequence
    ]
    iop = np.array(stack.orientation)
    normal = np.cross(iop[:3], iop[3:])
    steps = np.diff(sorted(float(np.dot(normal, p)) for p in positions))
    assert stack.spacing[0] == pytest.approx(float(np.median(steps)), abs=1e-4)
    assert sorted(stack.frame_numbers) == list(range(1, 9))


def test_lossless_variants_of_one_series_give_identical_volumes(volumes: Path):
    ref = None
    for case in ("compressed", "compressed_jpeg", "compressed_jpegls", "compressed_rle"):
        (series,) = _series(volumes / "dicom2nifti/generic" / case)
        (stack,) = series_stacks(series)
        if ref is None:
            ref = stack
            continue
        assert stack.spacing == ref.spacing and stack.origin == ref.origin
        np.testing.assert_array_equal(stack.array, ref.array)


def test_mixed_sizes_are_split_not_stacked(volumes: Path):
    (a,) = _series(volumes / "dicom2nifti/anatomical")
    (b,) = _series(volumes / "dicom2nifti/hitachi/anatomical")
    mixed = dataclasses.replace(a, instances=a.instances + b.instances)
    stacks = series_stacks(mixed)
    assert len(stacks) == 2
    assert {s.array.shape[1:] for s in stacks} == {(256, 256), (64, 64)}
    for stack in stacks:
        assert "mixed_size" in _codes(stack)
