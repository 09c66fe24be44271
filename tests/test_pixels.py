"""Pixels in physical units, on real files: rescale, LUTs, MONOCHROME1, colour, errors, windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_color_lut, apply_modality_lut

from imaging.pixels import (
    PixelDataError,
    decode_frames,
    instance_frames,
    to_display,
    window_presets,
)
from imaging.pixels.decode import decode, fix_sequential_sos
from imaging.types import Window

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def _read(path: Path) -> pydicom.Dataset:
    return pydicom.dcmread(path, force=True)


@pytest.fixture(scope="module")
def conformance(dicom_dir: Path) -> Path:
    return dicom_dir / "conformance"


def test_ct_rescale_gives_hounsfield_units():
    ds = _read(PYDICOM_FILES / "CT_small.dcm")
    frames = instance_frames(ds)
    assert frames.dtype == np.float32 and frames.shape == (1, 128, 128)
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(frames[0], expected.astype(np.float32))
    assert float(ds.RescaleIntercept) != 0  # the test means something only if it rescales


def test_enhanced_mr_uses_per_frame_rescale(dicom_dir: Path):
    path = next((dicom_dir / "volumes/dicom2nifti/philips_enhanced").rglob("*.dcm"))
    ds = _read(path)
    frames = instance_frames(ds)
    stored = ds.pixel_array
    assert frames.shape == stored.shape == (8, 256, 256)
    for i, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        pvt = item.PixelValueTransformationSequence[0]
        slope, intercept = float(pvt.RescaleSlope), float(pvt.RescaleIntercept)
        assert slope != 1.0
        np.testing.assert_allclose(frames[i], stored[i] * slope + intercept, rtol=1e-6)
    assert "RescaleSlope" not in ds  # only the functional groups carry it


def test_modality_lut_sequence_applied(conformance: Path):
    ds = _read(conformance / "pydicom-data/mlut_18.dcm")
    frames = instance_frames(ds)
    np.testing.assert_array_equal(frames[0], apply_modality_lut(ds.pixel_array, ds))


def test_monochrome1_is_inverted_so_higher_is_brighter(conformance: Path):
    path = conformance / "fo-dicom/CR-MONO1-10-chest"
    ds = _read(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    result = decode_frames(ds, str(path))
    assert result.photometric == "MONOCHROME2"
    stored = decode(ds, str(path)).array[0].astype(np.float64)  # no file meta: our decode
    pivot = 2.0 ** int(ds.BitsStored) - 1  # unsigned, no rescale: lo + hi
    np.testing.assert_array_equal(result.array[0], (pivot - stored).astype(np.float32))
    # the brightest stored pixel (darkest on screen) is now the smallest value
    assert result.array[0].flat[int(np.argmax(stored))] == result.array[0].min()


def test_palette_colour_becomes_rgb(conformance: Path):
    ds = _read(conformance / "pydicom-data/OT-PAL-8-face.dcm")
    result = decode_frames(ds)
    assert result.photometric == "RGB"
    assert result.array.shape == (1, ds.Rows, ds.Columns, 3)
    np.testing.assert_array_equal(result.array[0], apply_color_lut(decode(ds, "x").array[0], ds))


def test_ybr_full_becomes_rgb(conformance: Path):
    ybr = decode_frames(_read(conformance / "pydicom-data/SC_ybr_full_uncompressed.dcm"))
    rgb = decode_frames(_read(conformance / "pydicom-data/SC_rgb.dcm"))
    assert ybr.photometric == rgb.photometric == "RGB"
    assert ybr.array.shape == rgb.array.shape
    # YBR_FULL stores rounded 8-bit values: the round trip is close, not exact
    diff = np.abs(ybr.array - rgb.array)
    assert diff.max() <= 8 and diff.mean() < 1.0


def test_jpeg_ybr_baseline_decodes_to_rgb():
    ds = _read(PYDICOM_FILES / "SC_rgb_dcmtk_+eb+cy+s4.dcm")
    assert ds.PhotometricInterpretation.startswith("YBR")
    result = decode_frames(ds)
    assert result.photometric == "RGB" and result.array.shape[-1] == 3
    # the test pattern has a pure red bar: R high, G and B low somewhere
    red = (result.array[..., 0] > 200) & (result.array[..., 1] < 60) & (result.array[..., 2] < 60)
    assert red.any()


def test_multiframe_has_frames_first():
    ds = _read(PYDICOM_FILES / "SC_rgb_rle_2frame.dcm")
    frames = instance_frames(ds)
    assert frames.shape == (2, ds.Rows, ds.Columns, 3)
    single = instance_frames(_read(PYDICOM_FILES / "MR_small.dcm"))
    assert single.shape == (1, 64, 64)


def test_twelve_bit_jpeg_with_bad_scan_header_is_repaired(conformance: Path):
    path = conformance / "nema-wg04/JPLY/MR1_JPLY"
    frames = instance_frames(_read(path))
    ref = instance_frames(_read(conformance / "nema-wg04/REF/MR1_UNC"))
    mse = float(np.mean((frames.astype(np.float64) - ref) ** 2))
    psnr = 10 * np.log10(float(ref.max() - ref.min()) ** 2 / mse)
    assert psnr > 40


def test_fix_sequential_sos_only_touches_se():
    header = bytes.fromhex("ffd8ffc1000b0c0002000201011100ffda0008010100000000")
    # SOI, SOF1 (12-bit, 2x2, one component), SOS with Ss = 0, Se = 0 (should be 63), Ah/Al
    fixed = fix_sequential_sos(header + b"\x12\x34\xff\xd9")
    assert fixed is not None
    assert fixed[: len(header) - 2] == header[:-2]
    assert fixed[len(header) - 2] == 63  # Se
    assert fixed[len(header) - 1] == 0  # Ah/Al untouched
    assert fixed[len(header) :] == b"\x12\x34\xff\xd9"
    assert fix_sequential_sos(fixed) is None  # already valid: no change


def test_truncated_pixel_data_is_a_typed_error_naming_the_file():
    path = PYDICOM_FILES / "MR_truncated.dcm"
    with pytest.raises(PixelDataError) as info:
        instance_frames(_read(path), str(path))
    assert info.value.reason == "truncated_pixel_data"
    assert "MR_truncated.dcm" in str(info.value)


def test_acr_nema_twelve_bit_packed_pixels_match_gdcm(conformance: Path):
    """Bits Allocated 12 (two pixels in three bytes): pydicom refuses it, GDCM reads it."""
    import gdcm

    path = conformance / "fo-dicom" / "GH340.dcm"
    reader = gdcm.ImageReader()
    reader.SetFileName(str(path))
    assert reader.Read()
    buffer = reader.GetImage().GetBuffer().encode("utf-8", "surrogateescape")
    reference = np.frombuffer(buffer, np.uint16).reshape(256, 256)
    ds = pydicom.dcmread(path, force=True)
    ours = decode(ds, str(path)).array
    assert ours.shape == (1, 256, 256) and np.array_equal(ours[0], reference)
    assert reference.std() > 10  # a real image, not zeros
    ds.PixelData = ds.PixelData[:-100]
    with pytest.raises(PixelDataError) as info:
        decode(ds, "cut.dcm")
    assert info.value.reason == "truncated_pixel_data" and "cut.dcm" in str(info.value)


def test_unsupported_transfer_syntax_is_a_typed_error():
    ds = _read(PYDICOM_FILES / "MR_small.dcm")
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: no decoder exists
    with pytest.raises(PixelDataError) as info:
        instance_frames(ds, "mpeg.dcm")
    assert info.value.reason == "unsupported_transfer_syntax"
    assert "mpeg.dcm" in str(info.value) and "MPEG2" in str(info.value)


@pytest.mark.parametrize(
    ("variant", "reference"),
    [
        ("liver_deflate.dcm", "liver.dcm"),  # Deflated Image Frame Compression (2024)
        ("liver_nonbyte_aligned_deflate.dcm", "liver_nonbyte_aligned.dcm"),
        ("liver_rle.dcm", "liver.dcm"),  # RLE of 1-bit data
        ("liver_nonbyte_aligned_rle.dcm", "liver_nonbyte_aligned.dcm"),
    ],
)
def test_framewise_syntaxes_pydicom_lacks(conformance: Path, variant: str, reference: str):
    got = instance_frames(_read(conformance / "pydicom-data" / variant))
    want = instance_frames(_read(conformance / "pydicom-data" / reference))
    assert got.shape == want.shape == (3, *want.shape[1:])
    np.testing.assert_array_equal(got, want)
    assert 0 < want.sum() < want.size  # a real binary mask, not all zeros


def test_no_pixel_data_is_a_typed_error():
    with pytest.raises(PixelDataError) as info:
        instance_frames(_read(PYDICOM_FILES / "rtplan.dcm"))
    assert info.value.reason == "no_pixel_data"


def test_ct_presets_and_header_windows():
    presets = {w.name: (w.center, w.width) for w in window_presets("CT")}
    assert presets["lung"] == (-600, 1500)
    assert presets["mediastinum"] == (40, 400)
    assert presets["bone"] == (400, 1800)
    assert presets["brain"] == (40, 80)
    header = (Window("header", 50, 350),)
    assert window_presets("CT", header)[0] == header[0]
    assert window_presets("MR") == ()
    arr = np.linspace(0, 1000, 10000, dtype=np.float32)
    auto = window_presets("MR", (), arr)[-1]
    assert auto.name == "auto" and 0 < auto.center - auto.width / 2 < 10


def test_monochrome1_header_window_follows_the_inversion(conformance: Path):
    ds = _read(conformance / "fo-dicom/CR-MONO1-10-chest")
    result = decode_frames(ds)
    if "WindowCenter" not in ds:
        pytest.skip("this file has no header window")
    pivot = 2.0 ** int(ds.BitsStored) - 1
    assert result.windows[0].center == pytest.approx(pivot - float(ds.WindowCenter))


def test_to_display_maps_window_edges():
    img = np.array([[-2000.0, -600.0 - 750.0, -600.0, -600.0 + 750.0, 3000.0]], np.float32)
    out = to_display(img, Window("lung", -600, 1500))
    assert out.dtype == np.uint8
    assert out[0, 0] == 0 and out[0, 1] == 0 and out[0, 3] == 255 and out[0, 4] == 255
    assert 126 <= out[0, 2] <= 129
    assert to_display(img, Window("lung", -600, 1500), invert=True)[0, 0] == 255
    auto = to_display(np.arange(10000, dtype=np.float32).reshape(100, 100))
    assert auto.min() == 0 and auto.max() == 255
    rgb = to_display(np.full((2, 2, 3), 100, np.float32))
    assert rgb.shape == (2, 2, 3) and int(rgb[0, 0, 0]) == 100
