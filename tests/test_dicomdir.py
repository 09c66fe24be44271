"""DICOMDIR ingest: vendor layouts (multi-level directory files), partial copies, fallbacks.

Real-file tests use the Philips CT CD export in the shared data (a top DICOMDIR listing two
studies, one of them not on the copy, and a DIRFILE in every folder); synthetic ones build
file-sets in tmp_path with pydicom (FileSet for standard media, hand-written directory
files for multi-level layouts that use no vendor's names).
"""

from __future__ import annotations

import csv
import os
import shutil
import sys
import zipfile
from collections import Counter
from pathlib import Path, PurePosixPath

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_files
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.fileset import FileSet
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from pacs_bridge import dicomdir
from pacs_bridge import ingest as ingest_module
from pacs_bridge.ingest import ingest
from pacs_bridge.sop_classes import MEDIA_STORAGE_DIRECTORY

sys.path.insert(0, str(Path(__file__).parent))
from conftest import data_root  # noqa: E402
from fixtures_ingest import all_instances  # noqa: E402

PHILIPS = "philips_ct_phantom_tilted"
DIR_CODES = {"dicomdir_missing_files", "dicomdir_unusable", "dicomdir_unreadable"}


# ---------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def philips() -> Path:
    path = data_root() / "dicom" / "studies" / PHILIPS
    if not (path / "DICOMDIR").is_file():
        pytest.skip(f"Philips CD export not found at {path} (set RADASSIST_DATA to the dev folder)")
    return path


def _labels(study: str) -> dict[str, int]:
    """Series Instance UID -> file count, from the studies' labels.csv."""
    with open(data_root() / "dicom" / "studies" / "labels.csv", newline="") as fh:
        return {
            row["series_instance_uid"]: int(row["files"])
            for row in csv.DictReader(fh)
            if row["study"] == study
        }


def _series_counts(result) -> dict[str, int]:
    return {s.series_instance_uid: len(s.instances) for st in result.studies for s in st.series}


def _dir_warnings(result) -> list:
    return [w for w in result.warnings if w.code in DIR_CODES]


def _ct(path: Path, number: int, study: str, series: str) -> Path:
    """A tiny CT image that FileSet can index (it needs InstanceNumber, patient, study)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[study, series, str(number)])
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientID, ds.PatientName = "DDTEST", "Test^Dicomdir"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240101", "120000", "1", ""
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 1, number
    ds.Rows = ds.Columns = 4
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = (np.arange(16, dtype=np.uint16) + number).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def _fileset(tmp_path: Path, n: int = 6) -> Path:
    """A standard file-set written by pydicom's FileSet; returns its DICOMDIR."""
    staging = tmp_path / "staging"
    study, series = generate_uid(), generate_uid()
    fs = FileSet()
    for i in range(1, n + 1):
        fs.add(_ct(staging / f"ct{i}.dcm", i, study, series))
    media = tmp_path / "media"
    fs.write(media)
    shutil.rmtree(staging)
    return media / "DICOMDIR"


def _directory_file(path: Path, records: list[tuple[str, list[str], str]]) -> Path:
    """A directory file (Media Storage Directory) with (type, File ID, SOP class) records.

    Record offsets are left empty, as multi-level vendor exports leave them.
    """
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MEDIA_STORAGE_DIRECTORY
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.FileSetID = ""
    items = []
    for record_type, file_id, sop_class in records:
        item = Dataset()
        item.DirectoryRecordType = record_type
        item.ReferencedFileID = file_id
        if sop_class:
            item.ReferencedSOPClassUIDInFile = sop_class
        items.append(item)
    ds.DirectoryRecordSequence = items
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def _nested_media(root: Path, *, relative_to_own_folder: bool = False) -> Path:
    """A three-level file-set: DICOMDIR -> per-study IDX -> per-series IDX -> images.

    Names are deliberately no vendor's. The per-study file uses PRIVATE records with the
    directory SOP class; the per-series ones SERIES records without any class. File IDs are
    relative to the file-set root, or (a variant some writers produce) to the listing file's
    own folder. Returns the top DICOMDIR; 2 studies x 2 series x 3 images on disk.
    """
    top_records = []
    for s in range(2):
        study_uid = generate_uid(entropy_srcs=["nested", str(s)])
        study_dir = f"ST{s}"
        series_records = []
        for k in range(2):
            series_uid = generate_uid(entropy_srcs=["nested", str(s), str(k)])
            image_records = []
            for i in range(1, 4):
                name = f"IM{i}"
                _ct(root / study_dir / f"SE{k}" / name, i, study_uid, series_uid)
                fid = [name] if relative_to_own_folder else [study_dir, f"SE{k}", name]
                image_records.append(("IMAGE", fid, ""))
            _directory_file(root / study_dir / f"SE{k}" / "IDX", image_records)
            fid = [f"SE{k}", "IDX"] if relative_to_own_folder else [study_dir, f"SE{k}", "IDX"]
            series_records.append(("SERIES", fid, ""))
        _directory_file(
            root / study_dir / "IDX",
            [("PRIVATE", fid, MEDIA_STORAGE_DIRECTORY) for _, fid, _ in series_records],
        )
        top_records.append(("STUDY", [study_dir, "IDX"], ""))
    return _directory_file(root / "DICOMDIR", top_records)


def _lower_case_copy(src: Path, dst: Path) -> None:
    for path in sorted(src.rglob("*")):
        target = dst / path.relative_to(src).as_posix().lower()
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)


def _zip(folder: Path, out: Path, keep=lambda p: True) -> Path:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and keep(path):
                zf.write(path, path.relative_to(folder).as_posix())
    return out


@pytest.fixture
def read_counts(monkeypatch) -> Counter:
    """How often each source went through the ingest parser (`_read_dicom`)."""
    counts: Counter = Counter()
    original = ingest_module._read_dicom

    def counting(source, fp, head):
        counts[source] += 1
        return original(source, fp, head)

    monkeypatch.setattr(ingest_module, "_read_dicom", counting)
    return counts


# ---------------------------------------------------------------------------- the Philips export


def test_philips_dicomdir_follows_lower_level_dirfiles(philips: Path) -> None:
    result = ingest([philips / "DICOMDIR"])
    assert result.rejections == ()
    assert len(result.studies) == 1
    expected = _labels(PHILIPS)
    assert sorted(expected.values()) == [1, 5, 54, 58]
    assert _series_counts(result) == expected
    (warning,) = _dir_warnings(result)
    assert warning.code == "dicomdir_missing_files"
    assert "1 not found" in warning.message and "S21570" in warning.message
    assert warning.source == str(philips / "DICOMDIR")


def test_philips_folder_walk_reads_each_image_once_without_noise(
    philips: Path, read_counts: Counter
) -> None:
    result = ingest([philips])
    assert result.rejections == ()
    assert _series_counts(result) == _labels(PHILIPS)
    assert [w.code for w in _dir_warnings(result)] == ["dicomdir_missing_files"]
    assert not [w for w in result.warnings if w.code == "duplicate_instance"]
    images = {i.source for i in all_instances(result)}
    assert len(images) == 118
    assert all(read_counts[s] == 1 for s in images)
    # Lower-level DIRFILEs are read by the DICOMDIR loader, not again as queued files.
    parsed_indexes = [s for s in read_counts if Path(s).name == "DIRFILE"]
    assert parsed_indexes == []


def test_philips_lower_level_dirfile_alone_finds_its_root(philips: Path) -> None:
    # S21610/DIRFILE's File IDs start with "S21610": relative to the folder above it.
    result = ingest([philips / "S21610" / "DIRFILE"])
    assert result.rejections == () and _dir_warnings(result) == []
    assert _series_counts(result) == _labels(PHILIPS)
    result = ingest([philips / "S21610"])
    assert result.rejections == () and _dir_warnings(result) == []
    assert _series_counts(result) == _labels(PHILIPS)


def test_philips_index_is_typed_and_complete(philips: Path) -> None:
    index = dicomdir.load(philips / "DICOMDIR")
    assert index.usable and index.root == philips
    assert len(index.files) == 118 and len(set(index.files)) == 118
    assert len(index.directory_files) == 6  # the DICOMDIR, S21610/DIRFILE, 4 series DIRFILEs
    assert index.references == 124
    assert [m.file_id for m in index.missing] == ["S21570/DIRFILE"]
    assert index.missing[0].record_type == "STUDY"


def test_philips_zip_with_two_series_missing_warns_once(philips: Path, tmp_path: Path) -> None:
    dropped = {"S2010", "S3010"}
    archive = _zip(
        philips,
        tmp_path / "cd.zip",
        keep=lambda p: p.name == "DIRFILE" or p.name == "DICOMDIR" or p.parent.name not in dropped,
    )
    result = ingest([archive])
    assert result.rejections == ()
    assert sum(_series_counts(result).values()) == 6
    (warning,) = _dir_warnings(result)
    assert warning.code == "dicomdir_missing_files"
    # the other study's DIRFILE + 54 + 58 images: counted through the nested DIRFILEs
    assert "113 not found" in warning.message
    assert warning.source == f"{archive}!DICOMDIR"


# ---------------------------------------------------------------------------- synthetic media


def test_fileset_missing_file_warns_once_with_count(tmp_path: Path) -> None:
    top = _fileset(tmp_path)
    result = ingest([top])
    assert result.rejections == () and _dir_warnings(result) == []
    assert len(all_instances(result)) == 6
    victim = sorted(p for p in top.parent.rglob("*") if p.is_file() and p != top)[2]
    victim.unlink()
    for source in ([top], [top.parent]):  # the DICOMDIR itself, and its folder walked
        result = ingest(source)
        assert result.rejections == (), source
        assert len(all_instances(result)) == 5
        (warning,) = _dir_warnings(result)
        assert warning.code == "dicomdir_missing_files"
        assert "references 6 files; 1 not found" in warning.message


def test_fileset_in_zip_missing_member_warns_once(tmp_path: Path) -> None:
    top = _fileset(tmp_path)
    victims = sorted(p for p in top.parent.rglob("*") if p.is_file() and p != top)[:2]
    archive = _zip(top.parent, tmp_path / "media.zip", keep=lambda p: p not in victims)
    result = ingest([archive])
    assert result.rejections == ()
    assert len(all_instances(result)) == 4
    (warning,) = _dir_warnings(result)
    assert warning.code == "dicomdir_missing_files" and "2 not found" in warning.message


def test_unreadable_dicomdir_falls_back_to_its_folder(tmp_path: Path) -> None:
    top = _fileset(tmp_path)
    top.write_bytes(top.read_bytes()[:200])  # cut inside the record sequence
    result = ingest([top])
    assert len(all_instances(result)) == 6
    assert result.rejections == ()
    (warning,) = _dir_warnings(result)
    assert warning.code == "dicomdir_unusable" and "its folder" in warning.message


def test_dicomdir_whose_references_all_miss_falls_back_to_its_folder(tmp_path: Path) -> None:
    top = _fileset(tmp_path)
    for child in sorted(p for p in top.parent.iterdir() if p.is_dir()):
        child.rename(child.with_name("moved_" + child.name))
    result = ingest([top])
    assert len(all_instances(result)) == 6
    assert result.rejections == ()
    (warning,) = _dir_warnings(result)
    assert warning.code == "dicomdir_unusable"
    assert "none of its 6 referenced files found" in warning.message


@pytest.mark.parametrize("relative_to_own_folder", [False, True])
def test_nested_directory_files_any_names(tmp_path: Path, relative_to_own_folder: bool) -> None:
    top = _nested_media(tmp_path / "disc", relative_to_own_folder=relative_to_own_folder)
    for source in ([top], [top.parent]):
        result = ingest(source)
        assert result.rejections == (), source
        assert _dir_warnings(result) == []
        assert len(result.studies) == 2
        assert sorted(_series_counts(result).values()) == [3, 3, 3, 3]


def test_nested_lower_case_copy_and_missing_series(tmp_path: Path) -> None:
    _nested_media(tmp_path / "disc")
    copy = tmp_path / "copy"
    _lower_case_copy(tmp_path / "disc", copy)
    assert (copy / "dicomdir").is_file() and not (copy / "DICOMDIR").exists()
    result = ingest([copy / "dicomdir"])
    assert result.rejections == () and _dir_warnings(result) == []
    assert sum(_series_counts(result).values()) == 12
    shutil.rmtree(copy / "st1" / "se0")  # a series folder with its IDX: 1 missing reference
    for source in ([copy / "dicomdir"], [copy]):
        result = ingest(source)
        assert result.rejections == ()
        assert sum(_series_counts(result).values()) == 9
        (warning,) = _dir_warnings(result)
        assert "1 not found" in warning.message and "ST1/SE0/IDX" in warning.message


def test_nested_media_in_zip(tmp_path: Path) -> None:
    top = _nested_media(tmp_path / "disc")
    drop = top.parent / "ST0" / "SE1" / "IM2"
    result = ingest([_zip(top.parent, tmp_path / "disc.zip", keep=lambda p: p != drop)])
    assert result.rejections == ()
    assert sum(_series_counts(result).values()) == 11
    (warning,) = _dir_warnings(result)
    assert "1 not found" in warning.message and "ST0/SE1/IM2" in warning.message


# ---------------------------------------------------------------------------- other DICOMDIRs


def _pydicom_dicomdirs() -> list[Path]:
    return sorted(
        Path(p)
        for p in get_testdata_files()
        if Path(p).name.startswith("DICOMDIR") and "empty" not in Path(p).name
    )


def test_pydicom_dicomdirs_keep_working(tmp_path: Path) -> None:
    dicomdirs = _pydicom_dicomdirs()
    assert len(dicomdirs) >= 5
    for path in dicomdirs:
        result = ingest([path])
        assert result.rejections == (), path.name
        assert _dir_warnings(result) == [], path.name
        try:  # pydicom's own reading of the same media, where it can read it
            expected = len(FileSet(pydicom.dcmread(path)))
        except ValueError:  # DICOMDIR-nopatient: FileSet refuses its records
            expected = 31
        assert len(all_instances(result)) == expected, path
    # A lower-case copy of the media still resolves (File IDs are upper case).
    media = next(p for p in dicomdirs if p.name == "DICOMDIR" and p.parent.name == "dicomdirtests")
    copy = tmp_path / "lower"
    _lower_case_copy(media.parent, copy)
    result = ingest([copy / "dicomdir"])
    assert result.rejections == () and len(all_instances(result)) == 31


def test_empty_pydicom_dicomdir_reads_its_folder() -> None:
    (empty,) = [Path(p) for p in get_testdata_files() if Path(p).name == "DICOMDIR-empty.dcm"]
    result = ingest([empty])
    (warning,) = _dir_warnings(result)
    assert warning.code == "dicomdir_unusable" and "lists no files" in warning.message
    assert len(all_instances(result)) > 31  # the folder holds the test media and more


def test_conformance_dicomdirs_load_or_fall_back() -> None:
    root = data_root() / "dicom" / "conformance"
    if not root.is_dir():
        pytest.skip(f"conformance corpus not found at {root}")
    found = sorted(p for p in root.rglob("*") if p.is_file() and p.name.upper() == "DICOMDIR")
    assert found, "the corpus is expected to hold at least one DICOMDIR"
    for path in found:
        result = ingest([path])
        assert len(all_instances(result)) > 0, path
        assert not [r for r in result.rejections if r.reason in ("missing_file", "internal")]
        assert len(_dir_warnings(result)) <= 1


# ---------------------------------------------------------------------------- units


def test_references_normalise_file_ids() -> None:
    ds = Dataset()
    records = []
    for record_type, file_id, in_use in [
        ("IMAGE", ["A", "B"], None),
        ("IMAGE", "C/D", None),  # a whole path in one value
        ("IMAGE", ["..", "ETC"], None),  # outside the file-set: ignored
        ("IMAGE", ["E"], 0),  # inactive record: ignored
        ("SERIES", ["F", "IDX"], None),
    ]:
        item = Dataset()
        item.DirectoryRecordType = record_type
        item.ReferencedFileID = file_id
        if in_use is not None:
            item.RecordInUseFlag = in_use
        records.append(item)
    ds.DirectoryRecordSequence = records
    refs = list(dicomdir.references(ds))
    assert [r.parts for r in refs] == [("A", "B"), ("C", "D"), ("F", "IDX")]
    assert [r.may_be_directory for r in refs] == [False, False, True]


def test_archive_store_resolves_any_case_and_separator() -> None:
    store = dicomdir.ArchiveStore({"disc/dicom/im1": b"", "disc/DICOMDIR": b""})
    assert store.resolve(PurePosixPath("disc"), ("DICOM", "IM1")) == PurePosixPath("disc/dicom/im1")
    assert store.resolve(PurePosixPath("disc"), ("DICOM", "IM2")) is None


def test_resolve_case_insensitive_on_disk(tmp_path: Path) -> None:
    (tmp_path / "dicom").mkdir()
    (tmp_path / "dicom" / "im1").write_bytes(b"x")
    hit = dicomdir.resolve_case_insensitive(tmp_path, ("DICOM", "IM1"))
    assert hit is not None and os.path.samefile(hit, tmp_path / "dicom" / "im1")
    assert hit.name == "im1"  # the name on disk, so a folder walk dedups against it
    assert dicomdir.resolve_case_insensitive(tmp_path, ("DICOM", "IM2")) is None
