"""Ingest on real files: every file loads or is rejected with a reason, grouping, sources."""

from __future__ import annotations

import io
import json
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_files
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ImplicitVRLittleEndian

from pacs_bridge.errors import CorruptFileError, IngestError, NotDicomError
from pacs_bridge.ingest import group, ingest, ingest_bytes, read_instance
from pacs_bridge.sop_classes import classify, sop_class_name
from pacs_bridge.sr_text import render_sr
from pacs_bridge.study import InstanceKind

sys.path.insert(0, str(Path(__file__).parent))
from fixtures_ingest import all_instances, bundled  # noqa: E402

# Reasons a rejection may carry: the typed errors' codes plus the source-level ones.
KNOWN_REASONS = {
    "not_dicom",
    "corrupt",
    "truncated",
    "unsupported",
    "unsafe_archive",
    "missing_file",
    "not_found",
    "unreadable",
    "dicomdir",
}


def _assert_every_file_accounted(result, files: list[Path]) -> None:
    """Each file is an instance, a rejection, a duplicate or a DICOMDIR index; no crash."""
    loaded = {i.source for i in all_instances(result)}
    rejected = {r.source for r in result.rejections}
    duplicates = {w.source for w in result.warnings if w.code == "duplicate_instance"}
    internal = [r for r in result.rejections if r.reason == "internal"]
    assert internal == [], f"crashes: {internal}"
    unknown = {r.reason for r in result.rejections} - KNOWN_REASONS
    assert not unknown, f"rejections without a known reason: {unknown}"
    assert all(r.message for r in result.rejections)
    from_archives = {src.split("!", 1)[0] for src in loaded | rejected if "!" in src}
    for f in files:
        s = str(f)
        if f.name.upper().startswith("DICOMDIR"):  # an index, followed rather than loaded
            continue
        accounted = s in loaded or s in rejected or s in duplicates or s in from_archives
        assert accounted, f"{s} neither loaded nor rejected"


def test_conformance_corpus_loads_or_rejects_every_file(dicom_dir: Path) -> None:
    root = dicom_dir / "conformance"
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    result = ingest([root], keep_duplicates=True)
    _assert_every_file_accounted(result, files)
    reasons = Counter(r.reason for r in result.rejections)
    by_name = {Path(r.source).name: r for r in result.rejections}
    # The deliberately broken files are rejected for the right reason.
    assert by_name["emri_small_jpeg_2k_lossless_too_short.dcm"].reason == "truncated"
    assert by_name["GH1376.dcm"].reason == "corrupt"  # 1.3 MB of a 9.3 MB array, encapsulated
    assert by_name["GH177_D_CLUNIE_CT1_IVRLE_BigEndian_undefined_length.dcm"].reason == "corrupt"
    # The fo-dicom DICOMDIR names 20 files that were not shipped: one warning with the count,
    # not one rejection per file (pacs_bridge/dicomdir.py).
    (missing,) = [w for w in result.warnings if w.code == "dicomdir_missing_files"]
    assert "20 not found" in missing.message
    assert reasons["missing_file"] == 0
    # Good files load: most of the corpus, and the well-known ones by name.
    loaded_names = {Path(i.source).name for i in all_instances(result)}
    assert {"CT1_J2KR", "MR1_JPLL", "liver.dcm", "test_SR.dcm", "rtdose.dcm"} <= loaded_names
    assert len(loaded_names) > 0.85 * len(files)


def test_conformance_non_image_objects_are_recognised(dicom_dir: Path) -> None:
    result = ingest([dicom_dir / "conformance"], keep_duplicates=True)
    kinds = {Path(i.source).name: i for i in all_instances(result)}
    assert kinds["test_SR.dcm"].kind is InstanceKind.SR
    assert kinds["label.seg"].kind is InstanceKind.SEG
    assert kinds["wave_dfl"].kind is InstanceKind.WAVEFORM
    assert "12 channel(s)" in kinds["wave_dfl"].description
    assert kinds["rtdose.dcm"].kind is InstanceKind.RT
    assert kinds["rtdose.dcm"].description.startswith("RT Dose Storage: dose grid")
    assert kinds["partial_overlaps.dcm"].description.startswith(
        "Segmentation Storage: 5 segment(s): GREEN"
    )
    assert kinds["CT1_UNC"].kind is InstanceKind.IMAGE
    for inst in kinds.values():
        if inst.kind is not InstanceKind.IMAGE:
            assert inst.description, inst.source


def test_sag_mprage_is_one_series_of_192(dicom_dir: Path) -> None:
    result = ingest([dicom_dir / "volumes" / "SAG-anon_MR_brain_MPRAGE"])
    assert result.rejections == ()
    assert len(result.studies) == 1
    (series,) = result.studies[0].series
    assert len(series.instances) == 192
    numbers = [i.instance_number for i in series.instances]
    assert numbers == sorted(numbers)
    assert series.modality == "MR"


def test_pydicom_bundled_files_never_crash() -> None:
    files = [Path(p) for p in get_testdata_files() if Path(p).is_file()]
    result = ingest(files, keep_duplicates=True)
    _assert_every_file_accounted(result, files)
    by_name = {Path(r.source).name: r.reason for r in result.rejections}
    assert by_name["MR_truncated.dcm"] == "truncated"
    assert by_name["rtplan_truncated.dcm"] == "truncated"
    assert by_name["README.txt"] == "not_dicom"
    assert len(all_instances(result)) > 100


def test_truncated_native_pixel_data_is_refused(tmp_path: Path) -> None:
    data = bundled("CT_small.dcm").read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[:-1000])
    with pytest.raises(CorruptFileError) as info:
        read_instance(str(cut), cut.read_bytes())
    assert info.value.reason == "truncated"
    assert "cut.dcm" in str(info.value)
    # In a folder, the broken file is reported and the good one still loads.
    shutil.copy(bundled("MR_small.dcm"), tmp_path / "good.dcm")
    result = ingest([tmp_path])
    assert [r.reason for r in result.rejections] == ["truncated"]
    assert len(all_instances(result)) == 1


def test_received_compressed_dataset_without_file_meta_is_not_truncated() -> None:
    ds = pydicom.dcmread(bundled("JPEG2000.dcm"))
    del ds.file_meta
    inst = read_instance("c-store:TEST", ds)
    assert inst.kind is InstanceKind.IMAGE
    ds.PixelData = b""
    with pytest.raises(CorruptFileError):
        read_instance("c-store:TEST", ds)


def test_header_only_dataset_without_pixels_is_not_truncated() -> None:
    ds = pydicom.dcmread(bundled("CT_small.dcm"))
    del ds.PixelData
    inst = read_instance("no-pixels", ds)
    assert inst.kind is InstanceKind.IMAGE  # CT Image Storage by class


def test_dataset_without_preamble_or_file_meta(tmp_path: Path) -> None:
    ds = pydicom.dcmread(bundled("CT_small.dcm"))
    bare = tmp_path / "bare.dcm"
    ds.preamble = None
    ds.file_meta = FileMetaDataset()
    pydicom.dcmwrite(bare, ds, enforce_file_format=False, implicit_vr=True, little_endian=True)
    raw = bare.read_bytes()
    assert raw[128:132] != b"DICM" and raw[:4] != b"DICM"
    result = ingest([bare])
    (inst,) = all_instances(result)
    assert inst.sop_instance_uid == ds.SOPInstanceUID
    assert [w.code for w in inst.warnings] == ["missing_file_meta"]
    # File meta is supplied so the pixels can be decoded later.
    assert inst.dataset.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert inst.dataset.pixel_array.shape == (128, 128)


def test_dicomdir_resolves_its_files(tmp_path: Path) -> None:
    dicomdir = bundled("DICOMDIR")
    result = ingest([dicomdir])
    assert result.rejections == ()
    instances = all_instances(result)
    assert len(instances) == 31
    patients = {st.patient_id for st in result.studies}
    assert patients == {"77654033", "98890234"}
    # A copy with one referenced file removed warns once, naming that file.
    copy = tmp_path / "media"
    shutil.copytree(dicomdir.parent, copy)
    victim = next(p for p in sorted(copy.rglob("*")) if p.is_file() and p.parent != copy)
    victim.unlink()
    result = ingest([copy / "DICOMDIR"])
    assert result.rejections == ()
    (missing,) = [w for w in result.warnings if w.code == "dicomdir_missing_files"]
    assert "1 not found" in missing.message and victim.name.upper() in missing.message.upper()
    assert len(all_instances(result)) == 30


def _png(tmp_path: Path) -> Path:
    arr = (np.arange(48 * 64) % 251).astype(np.uint8).reshape(48, 64)
    path = tmp_path / "film.png"
    Image.fromarray(arr).save(path)
    return path


def _jpeg(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
    path = tmp_path / "photo.jpg"
    Image.fromarray(arr).save(path, quality=90)
    return path


def test_png_and_jpeg_become_secondary_capture(tmp_path: Path) -> None:
    png, jpg = _png(tmp_path), _jpeg(tmp_path)
    result = ingest([png, jpg])
    assert result.rejections == ()
    assert len(result.studies) == 2
    by_name = {Path(i.source).name: i for i in all_instances(result)}
    gray, colour = by_name["film.png"], by_name["photo.jpg"]
    assert gray.sop_class_uid == "1.2.840.10008.5.1.4.1.1.7"
    assert gray.modality == "OT" and gray.kind is InstanceKind.IMAGE
    assert gray.warnings[0].message == "plain image: no DICOM geometry or patient data"
    assert np.array_equal(gray.dataset.pixel_array, np.asarray(Image.open(png)))
    assert colour.dataset.PhotometricInterpretation == "RGB"
    assert colour.dataset.pixel_array.shape == (40, 50, 3)
    # Same bytes, same UIDs (and so the same note); a written copy reads back.
    again = all_instances(ingest_bytes("x.png", png.read_bytes()))[0]
    assert again.sop_instance_uid == gray.sop_instance_uid
    assert again.dataset.StudyInstanceUID == gray.dataset.StudyInstanceUID
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, gray.dataset, enforce_file_format=True)
    assert pydicom.dcmread(io.BytesIO(buf.getvalue())).pixel_array.shape == (48, 64)
    assert all_instances(ingest([png], image_modality="XC"))[0].modality == "XC"


def test_broken_image_and_unknown_bytes_are_rejected(tmp_path: Path) -> None:
    png = _png(tmp_path)
    broken = tmp_path / "broken.png"
    broken.write_bytes(png.read_bytes()[:60])
    text = tmp_path / "notes.txt"
    text.write_text("not an image, not DICOM")
    result = ingest([broken, text, tmp_path / "missing.dcm"])
    reasons = {Path(r.source).name: r.reason for r in result.rejections}
    assert reasons == {
        "broken.png": "corrupt",
        "notes.txt": "not_dicom",
        "missing.dcm": "not_found",
    }
    with pytest.raises(NotDicomError):
        read_instance("notes", b"hello world, this is text" * 10)


def test_sr_text_is_readable(dicom_dir: Path) -> None:
    ds = pydicom.dcmread(dicom_dir / "conformance" / "dcmqi" / "sr-example" / "sr.dcm")
    text = render_sr(ds)
    lines = text.splitlines()
    assert lines[0] == "Imaging Measurement Report"
    assert "  Procedure reported: PET whole body" in lines
    assert any(line.strip().startswith("Modality: Positron emission tomography") for line in lines)
    inst = read_instance("sr.dcm", ds)
    assert inst.kind is InstanceKind.SR
    assert inst.description.startswith("Comprehensive SR Storage: Imaging Measurement Report")
    assert "Procedure reported: PET whole body" in inst.description


def test_sr_text_from_pydicom_bundled_report() -> None:
    ds = pydicom.dcmread(bundled("test-SR.dcm"))
    text = render_sr(ds)
    assert text.count("\n") > 5
    assert ": " in text and "?" not in text.splitlines()[0]


def test_sop_classification_by_registry_name() -> None:
    assert classify("1.2.840.10008.5.1.4.1.1.88.59") is InstanceKind.KOS
    assert classify("1.2.840.10008.5.1.4.1.1.11.1") is InstanceKind.PRESENTATION_STATE
    assert classify("1.2.840.10008.5.1.4.1.1.104.1") is InstanceKind.ENCAPSULATED
    assert classify("1.2.840.10008.5.1.4.1.1.481.3") is InstanceKind.RT
    assert classify("1.2.840.10008.5.1.4.1.1.481.1") is InstanceKind.IMAGE  # RT Image
    assert classify("1.2.840.10008.5.1.4.1.1.9.1.1") is InstanceKind.WAVEFORM
    assert classify("1.2.840.10008.5.1.4.1.1.66") is InstanceKind.RAW
    assert classify("1.2.840.10008.5.1.4.1.1.88.22") is InstanceKind.SR
    assert classify("1.2.840.10008.5.1.4.1.1.66.7") is InstanceKind.SEG
    assert sop_class_name("1.2.3.4") == "private SOP class 1.2.3.4"


def test_encapsulated_pdf_and_kos_are_listed_not_decoded() -> None:
    pdf = pydicom.Dataset()
    pdf.SOPClassUID = "1.2.840.10008.5.1.4.1.1.104.1"
    pdf.SOPInstanceUID, pdf.StudyInstanceUID, pdf.SeriesInstanceUID = "1.2.3.1", "1.2.3", "1.2.3.2"
    pdf.Modality, pdf.DocumentTitle = "DOC", "Referral letter"
    pdf.MIMETypeOfEncapsulatedDocument = "application/pdf"
    pdf.EncapsulatedDocument = b"%PDF-1.4 fake"
    inst = read_instance("pdf", pdf)
    assert inst.kind is InstanceKind.ENCAPSULATED
    assert inst.description == (
        "Encapsulated PDF Storage: Referral letter, application/pdf, 13 bytes"
    )
    studies = group([inst])
    assert studies[0].series[0].description.startswith("Encapsulated PDF Storage")


def test_grouping_sorts_and_drops_duplicates() -> None:
    files = sorted((Path(bundled("DICOMDIR")).parent).rglob("*"))
    instances = [
        read_instance(str(p), p.read_bytes())
        for p in files
        if p.is_file() and not p.name.startswith("DICOMDIR") and "README" not in p.name
    ]
    warnings: list = []
    studies = group(list(reversed(instances)) + instances[:2], warnings)
    assert len(warnings) == 2 and {w.code for w in warnings} == {"duplicate_instance"}
    for study in studies:
        for series in study.series:
            keys = [(i.instance_number, i.sop_instance_uid) for i in series.instances]
            assert keys == sorted(keys)
    assert [s.study_instance_uid for s in studies] == sorted(s.study_instance_uid for s in studies)
    assert sum(len(s.instances) for st in studies for s in st.series) == len(instances)


def test_ingest_bytes_single_dicom_and_garbage() -> None:
    data = bundled("MR_small.dcm").read_bytes()
    result = ingest_bytes("mr.dcm", data)
    (inst,) = all_instances(result)
    assert inst.source == "upload:mr.dcm"
    result = ingest_bytes("junk.bin", b"\x00" * 10)
    assert [r.reason for r in result.rejections] == ["not_dicom"]


def test_cli_tree_and_json(tmp_path: Path, capsys) -> None:
    from radassist_cli.main import main

    shutil.copy(bundled("MR_small.dcm"), tmp_path / "mr.dcm")
    shutil.copy(bundled("rtdose.dcm"), tmp_path / "dose.dcm")
    (tmp_path / "junk.txt").write_text("junk")
    assert main(["ingest", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "▸ Series" in out and "radiotherapy: RT Dose Storage" in out
    assert "junk.txt: not a DICOM file" in out and "[not_dicom]" in out
    assert main(["ingest", str(tmp_path), "--json", "--deidentify"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["instances"] == 2
    assert doc["summary"]["rejected_by_reason"] == {"not_dicom": 1}
    assert all(st["patient_id"].startswith("ANON-") for st in doc["studies"])


def test_read_instance_raises_typed_errors() -> None:
    with pytest.raises(IngestError):
        read_instance("empty", b"")
    with pytest.raises(NotDicomError):
        read_instance("dicomdir", bundled("DICOMDIR").read_bytes())
