"""Reading one object: sniffing, parsing with pydicom, validating, wrapping as an `Instance`.

Anything that cannot be read raises a typed error (`common.errors`) carrying its
reason code; the callers in `sources` turn it into a `Rejection`.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from typing import BinaryIO

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import generate_uid

from common.errors import CorruptFileError, NotDicomError, RadAssistError
from pacs_bridge.limits import time_budget
from pacs_bridge.plain_images import PLAIN_IMAGE_WARNING, is_plain_image, wrap_plain_image
from pacs_bridge.sop_classes import MEDIA_STORAGE_DIRECTORY, classify, describe
from pacs_bridge.study import IngestWarning, Instance, InstanceKind
from pacs_bridge.transfer_syntaxes import transfer_syntax_of

from .checks import (
    _DEFLATED,
    _check_deflate_bomb,
    _int,
    _last_element_truncated,
    check_pixel_length,
)

_HEAD = 132
# SOPClassUID, SOPInstanceUID, StudyInstanceUID, PixelData, FloatPixelData, DoubleFloatPixelData
# (as tags: membership by int skips pydicom's keyword lookup, which is per-file overhead).
_OBJECT_TAGS = (0x00080016, 0x00080018, 0x0020000D, 0x7FE00010, 0x7FE00008, 0x7FE00009)
# Groups a dataset without preamble or file meta plausibly starts with.
_FIRST_GROUPS = {0x0000, 0x0002, 0x0004, 0x0008, 0x0010, 0x0018, 0x0020, 0x0028}


def _looks_like_bare_dataset(head: bytes) -> bool:
    """True when the bytes start like a DICOM data element (no preamble, no 'DICM')."""
    if len(head) < 8:
        return False
    le = int.from_bytes(head[0:2], "little")
    be = int.from_bytes(head[0:2], "big")
    return le in _FIRST_GROUPS or be in _FIRST_GROUPS


def _ensure_file_meta(ds: Dataset) -> None:
    """Give a dataset read without file meta the meta pixel decoders and writers need.

    A missing transfer syntax is inferred from how the bytes were encoded.
    """
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = FileMetaDataset()
        ds.file_meta = meta
    if "TransferSyntaxUID" not in meta:
        meta.TransferSyntaxUID = transfer_syntax_of(ds)
    if "MediaStorageSOPClassUID" not in meta and "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if "MediaStorageSOPInstanceUID" not in meta and "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


def _read_dicom(source: str, fp: BinaryIO, head: bytes) -> tuple[Dataset, list[IngestWarning]]:
    """Parse one DICOM object from an open binary file, raising a typed error on failure."""
    found: list[IngestWarning] = []
    has_preamble = head[128:132] == b"DICM" or head[:4] == b"DICM"
    if not has_preamble and not _looks_like_bare_dataset(head):
        raise NotDicomError(source, "not a DICOM file (no 'DICM' marker, no DICOM elements)")
    if _DEFLATED in head or (has_preamble and _DEFLATED in fp.read(4096)[:4096]):
        fp.seek(0)
        _check_deflate_bomb(source, fp)
    fp.seek(0)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = dcmread(fp, force=not has_preamble)
    except InvalidDicomError as exc:
        raise NotDicomError(source, f"not a DICOM file ({exc})") from exc
    except RadAssistError:
        raise
    except Exception as exc:  # pydicom raises many kinds on broken structure
        raise CorruptFileError(source, f"unreadable DICOM ({type(exc).__name__}: {exc})") from exc
    try:
        return _check_read(source, ds, caught, has_preamble, found)
    except RadAssistError:
        raise
    except Exception as exc:  # a broken value surfaces when an element is converted
        raise CorruptFileError(source, f"unreadable DICOM ({type(exc).__name__}: {exc})") from exc


def _check_read(
    source: str, ds: Dataset, caught: list, has_preamble: bool, found: list[IngestWarning]
) -> tuple[Dataset, list[IngestWarning]]:
    for w in caught:
        text = str(w.message)
        if "End of file reached" in text or "delimiter" in text.lower():
            raise CorruptFileError(
                source, f"file ends early ({text.split(' in file')[0]})", reason="truncated"
            )
    if len(ds) == 0:
        raise NotDicomError(source, "no DICOM data elements found")
    if not has_preamble and not any(t in ds for t in _OBJECT_TAGS):
        raise NotDicomError(source, "no DICOM preamble and no SOP, study or pixel attributes")
    if not has_preamble:
        found.append(
            IngestWarning(
                "missing_file_meta",
                "no DICOM preamble/file meta; read as a bare dataset",
                source,
            )
        )
    cut = _last_element_truncated(ds)
    if cut is not None:
        raise CorruptFileError(source, f"file ends inside element {cut}", reason="truncated")
    return ds, found


def _uid_or_make(
    ds: Dataset,
    keyword: str,
    entropy: Callable[[], list[str]],
    source: str,
    found: list[IngestWarning],
) -> str:
    """The UID, or a deterministic stand-in (set on the dataset) when it is missing.

    `entropy` is only called for a missing UID, so the common case reads one attribute.
    """
    value = str(ds.get(keyword, "") or "").strip()
    if value:
        return value
    value = generate_uid(entropy_srcs=["radassist missing uid", keyword, *entropy()])
    setattr(ds, keyword, value)
    found.append(IngestWarning("missing_uid", f"{keyword} missing; generated one", source))
    return value


def _make_instance(source: str, ds: Dataset, found: list[IngestWarning]) -> Instance:
    """Validate a parsed dataset and wrap it; raises typed errors."""
    try:
        if not any(t in ds for t in _OBJECT_TAGS):
            raise NotDicomError(source, "no SOP, study or pixel attributes: not a DICOM object")
        check_pixel_length(source, ds)  # before file meta is inferred: see its docstring
        _ensure_file_meta(ds)
        sop_class = str(ds.get("SOPClassUID", "") or "").strip()
        if not sop_class:
            sop_class = str(ds.file_meta.get("MediaStorageSOPClassUID", "") or "").strip()
        if sop_class == MEDIA_STORAGE_DIRECTORY:
            raise NotDicomError(
                source, "a DICOMDIR is an index, not an instance", reason="dicomdir"
            )
        study_uid = _uid_or_make(
            ds,
            "StudyInstanceUID",
            lambda: [
                str(ds.get(k, "") or "")
                for k in ("PatientID", "StudyDate", "StudyID", "AccessionNumber")
            ],
            source,
            found,
        )
        _uid_or_make(
            ds,
            "SeriesInstanceUID",
            lambda: [study_uid, str(ds.get("SeriesNumber", "")), str(ds.get("Modality", ""))],
            source,
            found,
        )
        sop_uid = _uid_or_make(ds, "SOPInstanceUID", lambda: [source], source, found)
        kind = classify(sop_class, ds)
        if not sop_class:
            found.append(IngestWarning("missing_sop_class", "SOPClassUID missing", source))
        description = "" if kind is InstanceKind.IMAGE else describe(ds, kind, sop_class)
        return Instance(
            source=source,
            sop_instance_uid=sop_uid,
            sop_class_uid=sop_class,
            kind=kind,
            modality=str(ds.get("Modality", "") or "").strip(),
            instance_number=_int(ds, "InstanceNumber"),
            dataset=ds,
            description=description,
            warnings=tuple(found),
        )
    except RadAssistError:
        raise
    except Exception as exc:  # malformed values surface only when accessed
        raise CorruptFileError(source, f"header unreadable ({type(exc).__name__}: {exc})") from exc


def read_instance(source: str, ds_or_bytes: Dataset | bytes | bytearray | memoryview) -> Instance:
    """One object (a received dataset, or the bytes of a file) as an `Instance`.

    Raises `IngestError` subclasses (`NotDicomError`, `CorruptFileError` with reason
    "truncated" for short pixel data, ...). Plain PNG/JPEG bytes are wrapped as Secondary
    Capture.
    """
    with time_budget(source, "reading"):
        if isinstance(ds_or_bytes, Dataset):
            return _make_instance(source, ds_or_bytes, [])
        data = bytes(ds_or_bytes)
        head = data[:_HEAD]
        if is_plain_image(head):
            return _plain_instance(source, data)
        ds, found = _read_dicom(source, io.BytesIO(data), head)
        return _make_instance(source, ds, found)


def _plain_instance(source: str, data: bytes, modality: str = "OT") -> Instance:
    ds = wrap_plain_image(source, data, modality=modality)
    found = [IngestWarning("plain_image", PLAIN_IMAGE_WARNING, source)]
    return _make_instance(source, ds, found)
