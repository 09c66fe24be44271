"""What a batch run analyses: one `StudyTask` per study of a folder tree, a DICOMDIR or a
DICOMweb QIDO query.

Discovery reads headers only (the Study Instance UID, nothing decoded); plain PNG/JPEG files
are one study each, named by the UID their bytes give (as ingest names them). A task's
`listing` is a cheap signature of its input (paths, sizes, modification times; for QIDO the
PACS's instance count), used by a re-run to skip studies already done without reading them.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from common.errors import IngestError, NetworkError, RadAssistError
from pacs_bridge.plain_images import is_plain_image, plain_study_uid

log = logging.getLogger("radassist.batch.sources")

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
QIDO_PAGE = 100


@dataclass(frozen=True)
class StudyTask:
    """One study to analyse: its files (folder, DICOMDIR) or its PACS (QIDO)."""

    study_uid: str
    files: tuple[str, ...] = ()
    qido_url: str = ""  # DICOMweb base URL the worker retrieves the study from (WADO-RS)
    listing: str = ""
    size: int = 0  # bytes (or instances for QIDO): big studies are scheduled first

    def __post_init__(self) -> None:
        if not self.study_uid:
            raise ValueError('Argument "study_uid" must not be empty.')
        if bool(self.files) == bool(self.qido_url):
            raise ValueError("A StudyTask has either files or a qido_url, not both or neither.")


@dataclass(frozen=True)
class Discovery:
    tasks: tuple[StudyTask, ...]
    skipped_files: int  # not DICOM, not an image, or a DICOM directory file
    source_kind: str  # "folder", "dicomdir" or "qido"


def discover(source: str) -> Discovery:
    """The studies of `source`: a folder tree, a DICOMDIR file or a QIDO-RS study query URL."""
    if source.startswith(("http://", "https://")):
        return Discovery(tuple(_qido(source)), 0, "qido")
    path = Path(source)
    if not path.exists():
        raise IngestError(source, "no such file or folder", reason="not_found")
    if path.is_file():
        files = _dicomdir_files(path)
        kind = "dicomdir"
    else:
        files = sorted(_walk(path))
        kind = "folder"
    by_study: dict[str, list[Path]] = defaultdict(list)
    skipped = 0
    for f in files:
        uid = _study_uid(f)
        if uid is None:
            skipped += 1
        else:
            by_study[uid].append(f)
    tasks = [_file_task(uid, paths) for uid, paths in sorted(by_study.items())]
    return Discovery(tuple(tasks), skipped, kind)


def _walk(root: Path) -> Iterator[Path]:
    for folder, dirs, names in os.walk(root, followlinks=True):
        dirs.sort()
        for name in names:
            if not name.startswith("."):
                yield Path(folder) / name


def _dicomdir_files(path: Path) -> list[Path]:
    """The files a DICOMDIR references, vendor lower-level directory files followed (as
    ingest follows them); references to files not on this media are logged, once."""
    from pacs_bridge import dicomdir

    try:
        index = dicomdir.load(path)
    except RadAssistError as exc:
        raise IngestError(str(path), f"not a usable DICOMDIR ({exc.message})",
                          reason="dicomdir") from exc
    if index.missing:
        log.warning("%s: %d referenced file(s) not on this media", path, len(index.missing))
    return sorted(Path(f) for f in index.files)


def _study_uid(path: Path) -> str | None:
    try:
        with open(path, "rb") as fp:
            head = fp.read(132)
            if is_plain_image(head):
                return plain_study_uid(head + fp.read())
        ds = dcmread(path, stop_before_pixels=True,
                     specific_tags=["StudyInstanceUID", "SOPClassUID"])
    except (InvalidDicomError, OSError, ValueError, EOFError):
        return None
    media_class = str(getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", ""))
    if media_class == MEDIA_STORAGE_DIRECTORY or "StudyInstanceUID" not in ds:
        return None
    return str(ds.StudyInstanceUID).strip() or None


def _file_task(uid: str, paths: list[Path]) -> StudyTask:
    h = hashlib.sha1()
    size = 0
    for p in sorted(paths):
        st = p.stat()
        size += st.st_size
        h.update(f"{p.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return StudyTask(uid, files=tuple(str(p) for p in sorted(paths)),
                     listing="files:" + h.hexdigest(), size=size)


def _qido(url: str) -> Iterator[StudyTask]:
    """Every study a QIDO-RS query lists, e.g.
    `http://pacs/dicom-web/studies?ModalitiesInStudy=CT&StudyDate=20240101-20241231`."""
    from pacs_bridge.service.pull import dicomweb_client

    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if path.endswith("/studies"):
        path = path[: -len("/studies")]
    base = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
    filters = {k: v for k, v in parse_qsl(parts.query) if k not in ("limit", "offset")}
    client = dicomweb_client(base)
    offset = 0
    while True:
        try:
            page = client.search_for_studies(
                search_filters=filters, limit=QIDO_PAGE, offset=offset,
                fields=["NumberOfStudyRelatedInstances"])
        except Exception as exc:  # requests errors, HTTP status errors
            raise NetworkError(base, f"QIDO-RS query failed: {exc}") from exc
        for item in page:
            uid = (item.get("0020000D", {}).get("Value") or [""])[0]
            n = (item.get("00201208", {}).get("Value") or [0])[0]
            if uid:
                yield StudyTask(uid, qido_url=base, listing=f"qido:{n}", size=int(n or 0))
        if len(page) < QIDO_PAGE:
            return
        offset += len(page)
