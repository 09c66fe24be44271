"""Ingest: files, folders, zips, DICOMDIRs and plain images become Study ▸ Series ▸ Instance.

Each source is read exactly once (pixel data stays encoded; `imaging` decodes it lazily), so
ingest costs little more than the read itself. Anything that cannot be read becomes a
`Rejection` carrying the reason code of its typed error: one bad file never stops the rest.
Truncated pixel data is detected here from lengths alone, without decoding, so that the
bridge can refuse such an instance before acknowledging it.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import warnings
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from pacs_bridge import dicomdir
from pacs_bridge.archive import ArchiveLimits, ZipMember, is_zip, iter_zip
from pacs_bridge.deid import Deidentifier, has_burned_in_annotation
from pacs_bridge.errors import (
    CorruptFileError,
    IngestError,
    NotDicomError,
    RadAssistError,
    TooLargeError,
)
from pacs_bridge.limits import (
    array_bytes,
    check_array_size,
    human,
    max_pixel_bytes,
    time_budget,
)
from pacs_bridge.plain_images import PLAIN_IMAGE_WARNING, is_plain_image, wrap_plain_image
from pacs_bridge.sop_classes import MEDIA_STORAGE_DIRECTORY, classify, describe
from pacs_bridge.study import (
    IngestResult,
    IngestWarning,
    Instance,
    InstanceKind,
    Rejection,
    Series,
    Study,
)

log = logging.getLogger(__name__)  # never log dataset values: they may be PHI

_HEAD = 132
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
# SOPClassUID, SOPInstanceUID, StudyInstanceUID, PixelData, FloatPixelData, DoubleFloatPixelData
# (as tags: membership by int skips pydicom's keyword lookup, which is per-file overhead).
_OBJECT_TAGS = (0x00080016, 0x00080018, 0x0020000D, 0x7FE00010, 0x7FE00008, 0x7FE00009)
_UNDEFINED_LENGTH = 0xFFFFFFFF
# Groups a dataset without preamble or file meta plausibly starts with.
_FIRST_GROUPS = {0x0000, 0x0002, 0x0004, 0x0008, 0x0010, 0x0018, 0x0020, 0x0028}
PROGRESS_THRESHOLD = 50


# ---------------------------------------------------------------------------- reading one object


def _looks_like_bare_dataset(head: bytes) -> bool:
    """True when the bytes start like a DICOM data element (no preamble, no 'DICM')."""
    if len(head) < 8:
        return False
    le = int.from_bytes(head[0:2], "little")
    be = int.from_bytes(head[0:2], "big")
    return le in _FIRST_GROUPS or be in _FIRST_GROUPS


def _transfer_syntax(ds: Dataset) -> UID | None:
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    return UID(str(ts)) if ts else None


def _ensure_file_meta(ds: Dataset) -> bool:
    """Give a dataset read without file meta the meta pixel decoders and writers need.

    Returns True when the transfer syntax had to be inferred from how the bytes were encoded.
    """
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = FileMetaDataset()
        ds.file_meta = meta
    inferred = False
    if "TransferSyntaxUID" not in meta:
        implicit, little = getattr(ds, "original_encoding", (True, True))
        if implicit is None:
            implicit, little = True, True
        if implicit:
            meta.TransferSyntaxUID = ImplicitVRLittleEndian
        else:
            meta.TransferSyntaxUID = ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        inferred = True
    if "MediaStorageSOPClassUID" not in meta and "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if "MediaStorageSOPInstanceUID" not in meta and "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return inferred


def _last_element_truncated(ds: Dataset) -> str | None:
    """Name of the last top-level element if the file ended inside its value."""
    try:
        last = next(reversed(ds.keys()), None)
    except TypeError:
        last = list(ds.keys())[-1] if len(ds) else None
    if last is None:
        return None
    raw = ds._dict.get(last)  # the raw element: converting it may raise on a broken value
    if isinstance(raw, RawDataElement) and raw.length != _UNDEFINED_LENGTH:
        value = raw.value
        if value is not None and len(value) < raw.length:
            return f"{last} ({len(value)} of {raw.length} bytes)"
    return None


def _int(ds: Dataset, keyword: str, default: int | None = None) -> int | None:
    try:
        value = ds.get(keyword)
        if value is None or value == "":
            return default
        if isinstance(value, list | tuple):
            value = value[0]
        return int(value)
    except (TypeError, ValueError, IndexError):
        return default


def expected_pixel_bytes(ds: Dataset) -> int | None:
    """Bytes a native (uncompressed) pixel data element must hold, or None if unknowable."""
    rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
    bits = _int(ds, "BitsAllocated")
    if not rows or not cols or not bits:
        return None
    frames = _int(ds, "NumberOfFrames", 1) or 1
    samples = _int(ds, "SamplesPerPixel", 1) or 1
    if "FloatPixelData" in ds:
        bits = 32
    elif "DoubleFloatPixelData" in ds:
        bits = 64
    photometric = str(ds.get("PhotometricInterpretation", "") or "")
    if photometric in ("YBR_FULL_422", "YBR_PARTIAL_422") and samples == 3:
        samples_total = rows * cols * 2 * frames
    else:
        samples_total = rows * cols * samples * frames
    if bits == 1:
        return (samples_total + 7) // 8
    if bits == 12:  # ACR-NEMA packed: two pixels in three bytes
        return (samples_total * 3 + 1) // 2
    return samples_total * ((bits + 7) // 8)


def declared_array_bytes(ds: Dataset) -> int | None:
    """Bytes of the largest array decoding would make (`limits.array_bytes`), or None."""
    rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
    bits = _int(ds, "BitsAllocated")
    if not rows or not cols or not bits:
        return None
    if "FloatPixelData" in ds:
        bits = 32
    elif "DoubleFloatPixelData" in ds:
        bits = 64
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    return array_bytes(
        rows,
        cols,
        _int(ds, "NumberOfFrames", 1) or 1,
        _int(ds, "SamplesPerPixel", 1) or 1,
        bits,
        palette=photometric == "PALETTE COLOR",
    )


def check_pixel_length(source: str, ds: Dataset) -> None:
    """Raise `CorruptFileError` (reason "truncated") if native pixel data is too short.

    Encapsulated (compressed) pixel data is recognised by its transfer syntax or, for a
    dataset received without file meta, by its undefined length; its frames are only
    checked to be present, since their sizes are unknowable without decoding.

    Either way the declared image must fit the pixel ceiling (`TooLargeError`, reason
    "too_large"; `pacs_bridge.limits`): checked from the header, before anything is
    allocated, so a few hostile bytes cannot ask for gigabytes downstream.
    """
    keyword = next((k for k in _PIXEL_KEYWORDS if k in ds), None)
    if keyword is None:
        return
    declared = declared_array_bytes(ds)
    if declared is not None:
        check_array_size(source, declared, TooLargeError)
    elem = ds.get_item(keyword)
    value = elem.value if elem is not None else None
    ts = _transfer_syntax(ds)
    undefined_length = bool(getattr(elem, "is_undefined_length", False)) or (
        isinstance(elem, RawDataElement) and elem.length == _UNDEFINED_LENGTH
    )
    if ts is None:  # received without file meta: the element's length form tells
        encapsulated = undefined_length
    elif not ts.is_transfer_syntax or ts.is_compressed:  # unknown syntaxes: not checkable
        encapsulated = True
    elif undefined_length:
        raise CorruptFileError(
            source, f"encapsulated pixel data under native transfer syntax {ts.name}"
        )
    else:
        encapsulated = False
    if encapsulated:
        if not value:
            raise CorruptFileError(source, "compressed pixel data is empty", reason="truncated")
        return
    expected = expected_pixel_bytes(ds)
    if expected is None:
        return
    actual = len(value) if value is not None else 0
    if actual < expected:
        raise CorruptFileError(
            source,
            f"pixel data holds {actual:,} bytes but the header needs {expected:,} "
            "(file truncated?)",
            reason="truncated",
        )


_DEFLATED = b"1.2.840.10008.1.2.1.99"
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR",
             b"UT", b"UV"}


def _check_deflate_bomb(source: str, fp: BinaryIO) -> None:
    """Refuse a Deflated Explicit VR Little Endian file that inflates past the ceiling.

    pydicom inflates the whole dataset in one `zlib.decompress` call, so a few hundred
    kilobytes can become gigabytes before any check of ours runs. Here the stream is
    inflated in bounded chunks and only counted (nothing kept), up to the pixel ceiling plus
    a margin for the header; the file meta is walked element by element to find where the
    deflated dataset starts.
    """
    start = fp.tell()
    data = fp.read()
    fp.seek(start)
    pos = 132 if data[128:132] == b"DICM" else 0
    if _DEFLATED not in data[pos : pos + 4096]:
        return
    while pos + 8 <= len(data):
        group, _ = struct.unpack("<HH", data[pos : pos + 4])
        if group != 0x0002:
            break
        vr = data[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            (length,) = struct.unpack("<L", data[pos + 8 : pos + 12])
            pos += 12 + length
        else:
            (length,) = struct.unpack("<H", data[pos + 6 : pos + 8])
            pos += 8 + length
    limit = max_pixel_bytes() + (64 << 20)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total, pending = 0, data[pos:]
    try:
        while pending and total <= limit:
            total += len(inflater.decompress(pending, 16 << 20))
            pending = inflater.unconsumed_tail
    except zlib.error:
        return  # not a valid stream: pydicom reports it as unreadable
    if total > limit:
        raise TooLargeError(
            source, f"the deflated dataset inflates past {human(limit)} (a deflate bomb?); "
            "the ceiling is RADASSIST_MAX_PIXEL_BYTES"
        )


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


# ---------------------------------------------------------------------------- grouping


def _sort_key(inst: Instance) -> tuple:
    n = inst.instance_number
    return (n is None, n if n is not None else 0, inst.sop_instance_uid)


def _text(ds: Dataset, keyword: str) -> str:
    try:
        return str(ds.get(keyword, "") or "").strip()
    except Exception:
        return ""


def group(
    instances: Iterable[Instance],
    warnings: list[IngestWarning] | None = None,
    *,
    keep_duplicates: bool = False,
) -> tuple[Study, ...]:
    """Group instances into studies and series by UID, sorted deterministically.

    Duplicates (same SOP Instance UID, e.g. one object sent twice or stored in several
    transfer syntaxes) keep the first copy and warn on the series, unless `keep_duplicates`
    (corpus checks want every file). `warnings`, if given, receives every duplicate warning.
    """
    studies: dict[str, dict[str, list[Instance]]] = {}
    seen: dict[str, Instance] = {}
    dup_warnings: dict[str, list[IngestWarning]] = {}
    for inst in instances:
        ds = inst.dataset
        study_uid = _text(ds, "StudyInstanceUID")
        series_uid = _text(ds, "SeriesInstanceUID")
        if inst.sop_instance_uid in seen:
            w = IngestWarning(
                "duplicate_instance",
                f"same SOP Instance UID as {seen[inst.sop_instance_uid].source}; kept the first",
                inst.source,
            )
            dup_warnings.setdefault(series_uid, []).append(w)
            if warnings is not None:
                warnings.append(w)
            if not keep_duplicates:
                continue
        seen.setdefault(inst.sop_instance_uid, inst)
        studies.setdefault(study_uid, {}).setdefault(series_uid, []).append(inst)

    result = []
    for study_uid in sorted(studies):
        series_list = []
        patient_ids: set[str] = set()
        for series_uid, members in studies[study_uid].items():
            members.sort(key=_sort_key)
            first = members[0].dataset
            patient_ids.update(_text(i.dataset, "PatientID") for i in members)
            series_warnings = list(dup_warnings.get(series_uid, ()))
            modalities = sorted({i.modality for i in members if i.modality})
            if len(modalities) > 1:
                series_warnings.append(
                    IngestWarning("mixed_modality", f"series mixes modalities {modalities}")
                )
            description = _text(first, "SeriesDescription")
            if not description and not any(i.kind is InstanceKind.IMAGE for i in members):
                description = members[0].description.split("\n", 1)[0]
            series_list.append(
                Series(
                    series_instance_uid=series_uid,
                    modality=members[0].modality,
                    description=description,
                    series_number=_int(first, "SeriesNumber"),
                    instances=tuple(members),
                    warnings=tuple(series_warnings),
                )
            )
        series_list.sort(
            key=lambda s: (s.series_number is None, s.series_number or 0, s.series_instance_uid)
        )
        first_ds = series_list[0].instances[0].dataset
        study_warnings = []
        patient_ids.discard("")
        if len(patient_ids) > 1:
            study_warnings.append(
                IngestWarning(
                    "mixed_patient_ids",
                    f"one Study Instance UID with {len(patient_ids)} different patient IDs",
                )
            )
        description = next(
            (
                _text(s.instances[0].dataset, "StudyDescription")
                for s in series_list
                if _text(s.instances[0].dataset, "StudyDescription")
            ),
            "",
        )
        result.append(
            Study(
                study_instance_uid=study_uid,
                patient_id=_text(first_ds, "PatientID"),
                description=description,
                series=tuple(series_list),
                warnings=tuple(study_warnings),
            )
        )
    return tuple(result)


# ---------------------------------------------------------------------------- walking sources


class _Run:
    """State of one ingest call: the queue of files, what was seen, and what came out."""

    def __init__(
        self, deidentify: bool | Deidentifier, limits: ArchiveLimits, image_modality: str
    ) -> None:
        self.instances: list[Instance] = []
        self.rejections: list[Rejection] = []
        self.warnings: list[IngestWarning] = []
        self.limits = limits
        self.image_modality = image_modality
        self.queue: deque[Path] = deque()
        self.seen: set[str] = set()
        self.explicit: set[str] = set()  # files named on the command line (not found by a walk)
        self.index_files: set[str] = set()  # directory files already read through a DICOMDIR
        self.store = dicomdir.DiskStore()  # shared folder listings for File ID lookups
        self.deidentifier: Deidentifier | None = None
        if isinstance(deidentify, Deidentifier):
            self.deidentifier = deidentify
        elif deidentify:
            self.deidentifier = Deidentifier()

    # -- bookkeeping

    def reject(self, exc: IngestError | RadAssistError, fallback_source: str) -> None:
        self.rejections.append(Rejection(exc.source or fallback_source, exc.reason, exc.message))

    def enqueue(self, path: Path) -> bool:
        key = os.path.abspath(path)  # no syscalls: resolve() would cost more than the read
        if key in self.seen:
            return False
        self.seen.add(key)
        self.queue.append(path)
        return True

    def add(self, inst: Instance) -> None:
        if self.deidentifier is not None:
            inst = self._deidentified(inst)
        self.instances.append(inst)

    def _deidentified(self, inst: Instance) -> Instance:
        """The same instance built from its de-identified dataset (description re-derived)."""
        ds = self.deidentifier.apply(inst.dataset, source=inst.source)
        found = list(inst.warnings)
        if has_burned_in_annotation(ds):
            found.append(
                IngestWarning(
                    "burned_in_annotation",
                    "pixels may show identifying text; de-identification does not clean pixels",
                    inst.source,
                )
            )
        return Instance(
            source=inst.source,
            sop_instance_uid=str(ds.SOPInstanceUID),
            sop_class_uid=inst.sop_class_uid,
            kind=inst.kind,
            modality=inst.modality,
            instance_number=inst.instance_number,
            dataset=ds,
            description=""
            if inst.kind is InstanceKind.IMAGE
            else describe(ds, inst.kind, inst.sop_class_uid),
            warnings=tuple(found),
        )

    # -- sources

    def expand_argument(self, arg: str | Path) -> None:
        path = Path(arg)
        if not path.exists():
            self.rejections.append(Rejection(str(arg), "not_found", "no such file or folder"))
            return
        if path.is_dir():
            self.walk(path)
        else:
            self.explicit.add(os.path.abspath(path))
            self.enqueue(path)

    def walk(self, path: Path) -> None:
        """Queue every file under a folder (sorted, hidden files skipped with one warning)."""
        hidden = 0
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if name.startswith("."):
                    hidden += 1
                    continue
                self.enqueue(Path(root) / name)
        if hidden:
            self.warnings.append(
                IngestWarning("hidden_files_skipped", f"{hidden} hidden file(s) skipped", str(path))
            )

    def read_path(self, path: Path) -> int:
        """Read one file from disk; returns how many extra work items it added (zip members)."""
        source = str(path)
        if os.path.abspath(path) in self.index_files:
            return 0  # a lower-level directory file, already read through its DICOMDIR
        try:
            with open(path, "rb") as fp:
                head = fp.read(_HEAD)
                if is_zip(head):
                    fp.seek(0)
                    return self.read_zip(source, fp)
                with time_budget(source, "reading"):  # a zip's members get one each
                    if is_plain_image(head):
                        fp.seek(0)
                        self.add(_plain_instance(source, fp.read(), self.image_modality))
                        return 0
                    fp.seek(0)
                    try:
                        ds, found = _read_dicom(source, fp, head)
                    except RadAssistError as exc:
                        fp.seek(0)
                        if not dicomdir.looks_like_dicomdir(path.name, fp.read(1024)):
                            raise
                        self.unusable_dicomdir(path, f"unreadable: {exc.message}")
                        return 0
                    if not dicomdir.is_dicomdir(ds):
                        self.add(_make_instance(source, ds, found))
                        return 0
            self.follow_dicomdir(path, ds)
        except RadAssistError as exc:
            self.reject(exc, source)
        except OSError as exc:
            self.rejections.append(Rejection(source, "unreadable", f"cannot read file ({exc})"))
        except Exception as exc:  # last line of defence: a crash here would lose the study
            log.error(
                "unexpected %s reading a file (details withheld: may hold PHI)", type(exc).__name__
            )
            self.rejections.append(
                Rejection(source, "internal", f"unexpected {type(exc).__name__} while reading")
            )
        return 0

    def read_zip(self, label: str, fp: BinaryIO) -> int:
        members: list[ZipMember] = []
        for item in iter_zip(label, fp, self.limits):
            if isinstance(item, Rejection):
                self.rejections.append(item)
            elif isinstance(item, IngestWarning):
                self.warnings.append(item)
            else:
                members.append(item)
        indexes: dict[str, Dataset] = {}
        for member in members:
            self.read_member(member, indexes)
        if indexes:  # every member is read anyway: the index only tells what is absent
            contents = {m.name: m.data for m in members}
            self.warnings.extend(dicomdir.check_archive(label, contents, indexes))
        return len(members)

    def read_member(self, member: ZipMember, indexes: dict[str, Dataset]) -> None:
        """Read one zip member; directory files go into `indexes`, checked once at the end."""
        source = member.source
        try:
            with time_budget(source, "reading"):
                self._read_member(member, indexes)
        except RadAssistError as exc:
            self.reject(exc, source)
        except Exception as exc:
            log.error(
                "unexpected %s reading a zip member (details withheld: may hold PHI)",
                type(exc).__name__,
            )
            self.rejections.append(
                Rejection(source, "internal", f"unexpected {type(exc).__name__} while reading")
            )

    def _read_member(self, member: ZipMember, indexes: dict[str, Dataset]) -> None:
        source = member.source
        head = member.data[:_HEAD]
        if is_plain_image(head):
            self.add(_plain_instance(source, member.data, self.image_modality))
            return
        try:
            ds, found = _read_dicom(source, io.BytesIO(member.data), head)
        except RadAssistError as exc:
            if not dicomdir.looks_like_dicomdir(member.name, member.data[:1024]):
                raise
            self.warnings.append(
                IngestWarning(
                    "dicomdir_unreadable",
                    f"directory file unreadable ({exc.message}); every member is read anyway",
                    source,
                )
            )
            return
        if dicomdir.is_dicomdir(ds):
            indexes[member.name] = ds
            return
        self.add(_make_instance(source, ds, found))

    def follow_dicomdir(self, path: Path, ds: Dataset) -> None:
        """Queue the files a DICOMDIR (and its lower-level directory files) reference.

        Missing references give one warning with a count. A DICOMDIR named on the command
        line that leads to no file is replaced by a walk of its folder. A DICOMDIR met while
        walking a folder only adds the warning: its files are in the walk already (`enqueue`
        drops the second sighting), and its lower-level directory files are skipped.
        """
        explicit = os.path.abspath(path) in self.explicit
        try:
            index = dicomdir.load(path, ds, store=self.store)
        except RadAssistError as exc:
            self.unusable_dicomdir(path, exc.message)
            return
        except Exception as exc:  # malformed records surface only when accessed
            self.unusable_dicomdir(path, f"records unreadable ({type(exc).__name__})")
            return
        self.index_files.update(os.path.abspath(p) for p in index.directory_files)
        if not index.usable:
            if explicit:
                why = f"none of its {index.references} referenced files found"
                self.unusable_dicomdir(path, why if index.references else "lists no files")
            elif index.references:
                self.warnings.append(index.missing_warning())
            return
        for target in index.files:
            self.enqueue(Path(target))
        warning = index.missing_warning()
        if warning is not None:
            self.warnings.append(warning)
        for bad in index.unreadable:
            self.warnings.append(
                IngestWarning(
                    "dicomdir_unreadable",
                    f"lower-level directory file unreadable ({bad.reason}); "
                    "read every file in its folder instead",
                    str(bad.path),
                )
            )
            self.walk(Path(bad.path).parent)

    def unusable_dicomdir(self, path: Path, why: str) -> None:
        """One warning; a DICOMDIR named on the command line is replaced by its folder."""
        if os.path.abspath(path) in self.explicit:
            self.warnings.append(
                IngestWarning(
                    "dicomdir_unusable",
                    f"{path.name} unusable ({why}); read every file in its folder instead",
                    str(path),
                )
            )
            self.walk(path.parent)
        else:  # met during a walk: its folder is being read already
            self.warnings.append(
                IngestWarning("dicomdir_unreadable", f"directory file ignored ({why})", str(path))
            )


# ---------------------------------------------------------------------------- public calls


def _progress(enabled: bool, total: int):
    if not enabled or total <= PROGRESS_THRESHOLD:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="file", desc="ingest", leave=False)


def ingest(
    paths: Iterable[str | Path],
    *,
    deidentify: bool | Deidentifier = False,
    progress: bool = False,
    limits: ArchiveLimits | None = None,
    image_modality: str = "OT",
    keep_duplicates: bool = False,
) -> IngestResult:
    """Read files, folders (recursive), zips, DICOMDIRs and PNG/JPEG into studies.

    Never raises for a bad source: each becomes a `Rejection`. `deidentify` applies the
    PS3.15 Basic Profile with one consistent UID remap for the whole call (pass a
    `Deidentifier` to share one remap across calls or to fix its salt). `progress` shows a
    tqdm bar on stderr when there are more than 50 files. `limits` bounds zip archives;
    `image_modality` is the Modality given to wrapped PNG/JPEG; `keep_duplicates` keeps
    every copy of a repeated SOP Instance UID (see `group`).
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    run = _Run(deidentify, limits or ArchiveLimits(), image_modality)
    for arg in paths:
        run.expand_argument(arg)
    bar = _progress(progress, len(run.queue))
    try:
        while run.queue:
            path = run.queue.popleft()
            extra = run.read_path(path)
            if bar is not None:
                if extra:
                    bar.total += extra
                bar.update(1 + extra)
    finally:
        if bar is not None:
            bar.close()
    studies = group(run.instances, run.warnings, keep_duplicates=keep_duplicates)
    return IngestResult(
        studies=studies, rejections=tuple(run.rejections), warnings=tuple(run.warnings)
    )


def ingest_bytes(
    name: str,
    data: bytes,
    *,
    deidentify: bool | Deidentifier = False,
    limits: ArchiveLimits | None = None,
    image_modality: str = "OT",
) -> IngestResult:
    """Ingest an upload held in memory: one DICOM file, a zip, or a PNG/JPEG image."""
    run = _Run(deidentify, limits or ArchiveLimits(), image_modality)
    source = f"upload:{name}"
    head = bytes(data[:_HEAD])
    try:
        if is_zip(head):
            run.read_zip(source, io.BytesIO(data))
        elif is_plain_image(head):
            with time_budget(source, "reading"):
                run.add(_plain_instance(source, bytes(data), image_modality))
        else:
            with time_budget(source, "reading"):
                ds, found = _read_dicom(source, io.BytesIO(data), head)
                if dicomdir.is_dicomdir(ds):
                    raise NotDicomError(
                        source,
                        "a DICOMDIR alone has no images; upload a zip of the whole media",
                        reason="dicomdir",
                    )
                run.add(_make_instance(source, ds, found))
    except RadAssistError as exc:
        run.reject(exc, source)
    except Exception as exc:
        log.error(
            "unexpected %s reading an upload (details withheld: may hold PHI)", type(exc).__name__
        )
        run.rejections.append(
            Rejection(source, "internal", f"unexpected {type(exc).__name__} while reading")
        )
    studies = group(run.instances, run.warnings)
    return IngestResult(
        studies=studies, rejections=tuple(run.rejections), warnings=tuple(run.warnings)
    )
