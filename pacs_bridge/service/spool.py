"""Durable storage of received instances: on disk (file and directory fsynced) before the ack.

Layout under the spool root::

    studies/<StudyInstanceUID>/<SOPInstanceUID>.dcm   received instances, as sent
    results/<StudyInstanceUID>/<SOPInstanceUID>.dcm   analysis results waiting to be sent

A write goes to a hidden temporary file in the target folder, is fsynced, renamed into
place, and the folder is fsynced, so that after a crash a file either exists completely
or not at all. Leftover temporary files are unacknowledged partial writes and are removed
by `recover()`.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import threading
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset

_SAFE_UID = re.compile(r"^[0-9][0-9.]{0,63}$")
_TMP_PREFIX = ".tmp-"


def safe_name(uid: str) -> str:
    """A file name for a UID; anything that is not a plain UID is hashed (no path tricks)."""
    uid = uid.strip().rstrip("\0")
    if _SAFE_UID.match(uid) and ".." not in uid:
        return uid
    return "x" + hashlib.sha256(uid.encode("utf-8", "replace")).hexdigest()[:40]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.studies = self.root / "studies"
        self.results = self.root / "results"
        self._known_dirs: set[Path] = set()
        self._lock = threading.Lock()
        for d in (self.root, self.studies, self.results):
            self._ensure_dir(d)

    def _ensure_dir(self, path: Path) -> None:
        if path in self._known_dirs:
            return
        with self._lock:
            if not path.is_dir():
                path.mkdir(parents=True, exist_ok=True)
                _fsync_dir(path.parent)  # the new directory entry itself must survive a crash
            self._known_dirs.add(path)

    def study_dir(self, study_uid: str) -> Path:
        return self.studies / safe_name(study_uid)

    def result_dir(self, study_uid: str) -> Path:
        return self.results / safe_name(study_uid)

    def write_bytes(self, folder: Path, sop_instance_uid: str, data: bytes) -> Path:
        """Write one file durably; returns only after file and folder are fsynced."""
        self._ensure_dir(folder)
        final = folder / f"{safe_name(sop_instance_uid)}.dcm"
        tmp = folder / f"{_TMP_PREFIX}{final.name}.{threading.get_ident()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        _fsync_dir(folder)
        return final

    def store_instance(self, study_uid: str, sop_instance_uid: str, data: bytes) -> Path:
        return self.write_bytes(self.study_dir(study_uid), sop_instance_uid, data)

    def store_result(self, study_uid: str, dataset: Dataset) -> Path:
        buf = io.BytesIO()
        dataset.save_as(buf, enforce_file_format=True)
        return self.write_bytes(self.result_dir(study_uid), dataset.SOPInstanceUID, buf.getvalue())

    def instance_files(self, study_uid: str) -> list[Path]:
        folder = self.study_dir(study_uid)
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.glob("*.dcm") if not p.name.startswith(_TMP_PREFIX))

    def load_results(self, study_uid: str) -> list[Dataset]:
        folder = self.result_dir(study_uid)
        if not folder.is_dir():
            return []
        return [dcmread(p) for p in sorted(folder.glob("*.dcm"))]

    def clear_results(self, study_uid: str) -> None:
        folder = self.result_dir(study_uid)
        if folder.is_dir():
            for p in folder.iterdir():
                p.unlink()

    def study_uids_on_disk(self) -> list[str]:
        """Folder names of spooled studies (equal to the study UID for ordinary UIDs)."""
        return sorted(p.name for p in self.studies.iterdir() if p.is_dir())

    def recover(self) -> int:
        """Remove temporary files of writes that never completed (never acknowledged)."""
        removed = 0
        for base in (self.studies, self.results):
            for tmp in base.glob(f"*/{_TMP_PREFIX}*"):
                tmp.unlink(missing_ok=True)
                removed += 1
        return removed
