"""DICOMDIR: the index of a DICOM file-set (a CD, DVD or USB export), read as vendors write it.

Why this is more than "read the record sequence and open each Referenced File ID":

- **Multi-level directories.** Some vendors (Philips, for one) put only STUDY records in the
  top DICOMDIR; each points at a lower-level directory file (itself a Media Storage Directory
  object) that lists SERIES records, whose files list the IMAGE records. (The standard's own
  way, Offset of Referenced Lower-Level Directory Entity, stays inside one DICOMDIR.) In the
  exports we have seen, File IDs even in lower-level files are relative to the file-set root
  (the top DICOMDIR's folder), but a directory file read on its own (a folder handed over
  without its top DICOMDIR) does not know where that root is. So each directory file's
  references are resolved against the base that makes them resolve: the file-set root first,
  then its own folder and its ancestors.
  Lower-level directory files are recognised by their content (Media Storage Directory SOP
  class, or a directory record sequence), never by their name.
- **Copies are partial.** A disc image often lists studies or volumes that are not on the
  copy. That is one fact ("8 of 120 files not found"), not 8 errors: `DicomdirIndex` keeps
  the missing references so the caller can warn once with a count.
- **Copies change case.** File IDs are upper case (PS3.10 allows A-Z, 0-9 and _ only), but
  media copied through other systems often end up lower case: resolution is exact first, then
  case-insensitive, one cached folder listing per folder.
- **pydicom's `FileSet`** builds its tree from the record offsets (OffsetOfTheNextDirectory
  Record, ...), which multi-level exports leave empty (it raises KeyError on the Philips
  export), so the record sequence is walked directly; the set of record types that name
  instances (rather than containers) comes from `pydicom.fileset.DIRECTORY_RECORDERS`.

The same loader serves files on disk (`DiskStore`) and members of a zip (`ArchiveStore`).
Nothing here knows about images or models: this module only indexes files.
"""

from __future__ import annotations

import io
import os
import warnings
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath
from typing import Protocol

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.fileset import DIRECTORY_RECORDERS

from common.errors import CorruptFileError, NotDicomError
from pacs_bridge.sop_classes import MEDIA_STORAGE_DIRECTORY
from pacs_bridge.study import IngestWarning

_DIRECTORY_RECORD_SEQUENCE = 0x00041220
_MSD_BYTES = MEDIA_STORAGE_DIRECTORY.encode("ascii")
# Records that stand for one stored instance. Any other record type that carries a File ID
# (STUDY, SERIES, PRIVATE, ...) may point at a lower-level directory file, so its file is
# opened as a possible directory; an instance record's file is left to the ingest queue.
_CONTAINER_TYPES = {"PATIENT", "STUDY", "SERIES", "PRIVATE", "TOPIC", "VISIT", "RESULTS"}
_INSTANCE_TYPES = (set(DIRECTORY_RECORDERS) - _CONTAINER_TYPES) | {
    # retired or newer instance-level record types pydicom has no recorder for
    "OVERLAY",
    "MODALITY LUT",
    "VOI LUT",
    "CURVE",
    "STORED PRINT",
    "HL7 STRUC DOC",
    "ANNOTATION",
    "INVENTORY",
}
_BASE_SAMPLE = 16  # references tried per candidate base before one is chosen
_MAX_DIRECTORY_FILES = 10_000  # a guard against pathological media, far above real exports


# ---------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Reference:
    """One Referenced File ID from a directory record."""

    parts: tuple[str, ...]  # the File ID's components, as written
    record_type: str  # DirectoryRecordType, e.g. "IMAGE", "SERIES"
    sop_class_uid: str  # ReferencedSOPClassUIDInFile, "" when the record does not say

    @property
    def file_id(self) -> str:
        return "/".join(self.parts)

    @property
    def may_be_directory(self) -> bool:
        """True when the file may be a lower-level directory file (so it is opened here)."""
        if self.sop_class_uid:
            return self.sop_class_uid == MEDIA_STORAGE_DIRECTORY
        return self.record_type not in _INSTANCE_TYPES


@dataclass(frozen=True)
class MissingReference:
    """A reference that resolves to no file (another study or volume, or a lost file)."""

    file_id: str
    record_type: str
    listed_in: PurePath  # the directory file whose record names it


@dataclass(frozen=True)
class UnreadableDirectory:
    """A lower-level directory file that exists but cannot be parsed."""

    path: PurePath
    reason: str


@dataclass(frozen=True)
class DicomdirIndex:
    """Everything a DICOMDIR and its lower-level directory files reference, resolved.

    `files` are the referenced files that are not directory files, in record order, each
    once; `directory_files` every directory file read (the top one first), so that a caller
    walking the same folder can skip them; `references` counts every File ID listed.
    """

    path: PurePath
    root: PurePath  # the folder the top directory file's references resolved against
    files: tuple[PurePath, ...]
    directory_files: tuple[PurePath, ...]
    missing: tuple[MissingReference, ...]
    unreadable: tuple[UnreadableDirectory, ...]
    references: int

    @property
    def usable(self) -> bool:
        """False when the index leads to no file at all: read the folder instead."""
        return bool(self.files)

    def missing_warning(self, source: str | None = None) -> IngestWarning | None:
        """One warning for all missing references (None when nothing is missing)."""
        if not self.missing:
            return None
        n = len(self.missing)
        kinds = ", ".join(sorted({m.record_type or "untyped" for m in self.missing}))
        first = self.missing[0].file_id
        which = f"{kinds} record {first}" if n == 1 else f"{kinds} records, e.g. {first}"
        return IngestWarning(
            "dicomdir_missing_files",
            f"{self.path.name} references {self.references} files; {n} not found ({which}): "
            "another study or volume not on this copy?",
            source if source is not None else str(self.path),
        )


# ---------------------------------------------------------------------------- records


def is_dicomdir(ds: Dataset) -> bool:
    """True for a Media Storage Directory object (by its file meta or its record sequence)."""
    meta = getattr(ds, "file_meta", None)
    sop = str(meta.get("MediaStorageSOPClassUID", "") if meta is not None else "")
    return sop == MEDIA_STORAGE_DIRECTORY or _DIRECTORY_RECORD_SEQUENCE in ds


def looks_like_dicomdir(name: str, head: bytes) -> bool:
    """Whether a file that failed to parse was meant to be a DICOMDIR.

    PS3.10 fixes the name of the root directory file ("DICOMDIR"); lower-level directory
    files are recognised by the Media Storage Directory SOP class UID in their file meta.
    """
    if PurePosixPath(name.replace("\\", "/")).name.upper() == "DICOMDIR":
        return True
    at = head.find(_MSD_BYTES)
    if at < 0:
        return False
    after = head[at + len(_MSD_BYTES) : at + len(_MSD_BYTES) + 1]
    return after not in (b"", b".") and not after.isdigit()  # not a longer UID


def references(ds: Dataset) -> Iterator[Reference]:
    """The File IDs a directory file's records name, in record order.

    Records marked inactive (the retired RecordInUseFlag = 0) are skipped. Components are
    split on backslash (the standard separator, which pydicom already splits) and on "/"
    (some writers put a whole path into one value); empty components are dropped. A File ID
    that climbs out of the file-set ("..") is ignored: an index must not point outside it.
    """
    for record in ds.get("DirectoryRecordSequence") or ():
        if record.get("RecordInUseFlag", None) == 0:
            continue
        file_id = record.get("ReferencedFileID")
        if not file_id:
            continue
        values = [file_id] if isinstance(file_id, str) else [str(p) for p in file_id]
        parts = tuple(
            p.strip() for v in values for p in v.replace("\\", "/").split("/") if p.strip()
        )
        if not parts or any(p in ("..", ".") for p in parts):
            continue
        yield Reference(
            parts=parts,
            record_type=str(record.get("DirectoryRecordType", "") or "").strip().upper(),
            sop_class_uid=str(record.get("ReferencedSOPClassUIDInFile", "") or "").strip(),
        )


def _parse_directory(source: str, fp) -> Dataset:
    """Parse a directory file, raising a typed error when it is not one or is broken."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(fp, force=True, stop_before_pixels=True)
    except Exception as exc:  # pydicom raises many kinds on broken structure
        raise CorruptFileError(source, f"unreadable directory file ({type(exc).__name__})") from exc
    if not is_dicomdir(ds):
        raise NotDicomError(source, "not a DICOM directory file", reason="dicomdir")
    return ds


# ---------------------------------------------------------------------------- where files live


class MediaStore(Protocol):
    """Where a file-set lives: resolve File IDs to files, and read directory files."""

    def resolve(self, base: PurePath, parts: Sequence[str]) -> PurePath | None: ...

    def read_directory(self, path: PurePath) -> Dataset: ...


class DiskStore:
    """A file-set on disk. One instance caches folder listings for case-insensitive lookups."""

    def __init__(self) -> None:
        self._listings: dict[str, dict[str, str]] = {}

    def _listing(self, folder: Path) -> dict[str, str]:
        key = os.path.abspath(folder)
        listing = self._listings.get(key)
        if listing is None:
            listing = {}
            try:
                for name in sorted(os.listdir(folder)):
                    listing.setdefault(name.upper(), name)
            except OSError:
                pass
            self._listings[key] = listing
        return listing

    def resolve(self, base: PurePath, parts: Sequence[str]) -> Path | None:
        """The file a File ID names under `base`: exact name first, then any letter case."""
        exact = Path(base).joinpath(*parts)
        if exact.is_file():
            return exact
        current = Path(base)
        for part in parts:
            name = self._listing(current).get(part.upper())
            if name is None:
                return None
            current = current / name
        return current if current.is_file() else None

    def read_directory(self, path: PurePath) -> Dataset:
        try:
            with open(path, "rb") as fp:
                return _parse_directory(str(path), fp)
        except OSError as exc:
            raise CorruptFileError(str(path), f"cannot read directory file ({exc})") from exc


class ArchiveStore:
    """A file-set inside a zip: members by name, plus directory files already parsed."""

    def __init__(
        self, members: Mapping[str, bytes], parsed: Mapping[str, Dataset] | None = None
    ) -> None:
        self._data = dict(members)
        self._parsed = dict(parsed or {})
        self._by_key: dict[str, str] = {}
        for name in sorted(self._data):
            self._by_key.setdefault(_zip_key(name), name)

    def resolve(self, base: PurePath, parts: Sequence[str]) -> PurePosixPath | None:
        wanted = _zip_key(PurePosixPath(base, *parts).as_posix())
        name = self._by_key.get(wanted)
        return PurePosixPath(name) if name is not None else None

    def read_directory(self, path: PurePath) -> Dataset:
        name = path.as_posix()
        if name in self._parsed:
            return self._parsed[name]
        return _parse_directory(name, io.BytesIO(self._data[name]))


def _zip_key(name: str) -> str:
    parts = [p for p in name.replace("\\", "/").split("/") if p and p != "."]
    return "/".join(parts).upper()


def resolve_case_insensitive(base: Path, parts: Sequence[str]) -> Path | None:
    """The file a File ID names under `base` on disk (upper-case IDs, any-case copies)."""
    return DiskStore().resolve(base, parts)


# ---------------------------------------------------------------------------- loading


def _candidate_bases(
    directory_file: PurePath, root: PurePath | None, refs: Sequence[Reference]
) -> list[PurePath]:
    """Folders a directory file's File IDs may be relative to, most likely first.

    The file-set root (when known from a higher-level directory file), then the file's own
    folder, then its ancestors: File IDs are relative to the root, which a directory file met
    on its own can be at most as many levels above as its File IDs are deep.
    """
    own = directory_file.parent
    candidates: list[PurePath] = [root] if root is not None else []
    candidates.append(own)
    depth = max((len(r.parts) for r in refs), default=1) - 1
    for ancestor in list(own.parents)[:depth]:
        if root is not None and ancestor == root:
            break
        candidates.append(ancestor)
    return list(dict.fromkeys(candidates))


def _choose_base(
    store: MediaStore, refs: Sequence[Reference], candidates: Sequence[PurePath]
) -> PurePath:
    """The candidate under which most of a sample of the references resolve (first on ties)."""
    if len(candidates) == 1 or not refs:
        return candidates[0]
    step = max(1, len(refs) // _BASE_SAMPLE)
    sample = list(refs)[::step][:_BASE_SAMPLE]
    best, best_hits = candidates[0], 0
    for base in candidates:
        hits = sum(store.resolve(base, r.parts) is not None for r in sample)
        if hits == len(sample):
            return base
        if hits > best_hits:
            best, best_hits = base, hits
    return best


def load(
    path: PurePath, dataset: Dataset | None = None, *, store: MediaStore | None = None
) -> DicomdirIndex:
    """Resolve a directory file and every lower-level directory file it leads to.

    `dataset` is the parsed directory file when the caller has it (so it is not read twice).
    Lower-level directory files are followed breadth-first, each once, whatever they are
    called. Missing references are collected, not raised. Raises `CorruptFileError` or
    `NotDicomError` only when the top file itself cannot be read as a directory.
    """
    store = store or DiskStore()
    if dataset is None:
        dataset = store.read_directory(path)
    elif not is_dicomdir(dataset):
        raise NotDicomError(str(path), "not a DICOM directory file", reason="dicomdir")
    files: dict[PurePath, None] = {}
    directories: dict[PurePath, None] = {path: None}
    missing: list[MissingReference] = []
    unreadable: list[UnreadableDirectory] = []
    total = 0
    root: PurePath | None = None
    pending: deque[tuple[PurePath, Dataset]] = deque([(path, dataset)])
    while pending:
        directory_file, ds = pending.popleft()
        refs = list(references(ds))
        total += len(refs)
        base = _choose_base(store, refs, _candidate_bases(directory_file, root, refs))
        if root is None:
            root = base
        for ref in refs:
            target = store.resolve(base, ref.parts)
            if target is None:
                missing.append(MissingReference(ref.file_id, ref.record_type, directory_file))
                continue
            if target in files or target in directories:
                continue
            if ref.may_be_directory and len(directories) < _MAX_DIRECTORY_FILES:
                try:
                    sub = store.read_directory(target)
                except (CorruptFileError, NotDicomError) as exc:
                    if ref.sop_class_uid == MEDIA_STORAGE_DIRECTORY:
                        directories[target] = None
                        unreadable.append(UnreadableDirectory(target, exc.message))
                    else:  # an instance after all: the ingest queue reads (or rejects) it
                        files[target] = None
                    continue
                directories[target] = None
                pending.append((target, sub))
                continue
            files[target] = None
    return DicomdirIndex(
        path=path,
        root=root if root is not None else path.parent,
        files=tuple(files),
        directory_files=tuple(directories),
        missing=tuple(missing),
        unreadable=tuple(unreadable),
        references=total,
    )


def check_archive(
    label: str, members: Mapping[str, bytes], parsed: Mapping[str, Dataset]
) -> list[IngestWarning]:
    """Warnings for the DICOMDIRs in a zip: one per hierarchy with missing members.

    `parsed` holds the directory files already read (member name -> dataset). The shallowest
    one is taken as a top; the lower-level ones it leads to are not checked again, so a
    Philips-style export gives one warning, not one per DIRFILE.
    """
    store = ArchiveStore(members, parsed)
    covered: set[str] = set()
    found: list[IngestWarning] = []
    for name in sorted(parsed, key=lambda n: (n.count("/"), n)):
        if name in covered:
            continue
        source = f"{label}!{name}"
        try:
            index = load(PurePosixPath(name), parsed[name], store=store)
        except (CorruptFileError, NotDicomError) as exc:
            found.append(IngestWarning("dicomdir_unreadable", exc.message, source))
            continue
        covered.update(p.as_posix() for p in index.directory_files)
        warning = index.missing_warning(source)
        if warning is not None:
            found.append(warning)
        found.extend(
            IngestWarning(
                "dicomdir_unreadable",
                f"lower-level directory file unreadable ({bad.reason}); every member is read",
                f"{label}!{bad.path.as_posix()}",
            )
            for bad in index.unreadable
        )
    return found
