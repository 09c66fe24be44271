"""Durable storage of received instances: on disk (fsynced) before the ack.

Layout under the spool root::

    slots/<n>.slot                                    pre-created files, written on receipt
    studies/<StudyInstanceUID>/<SOPInstanceUID>.dcm   received instances, as sent
    results/<StudyInstanceUID>/<SOPInstanceUID>.dcm   analysis results waiting to be sent

Why slots: a new file needs two flushes to be durable, its data and its directory entry
(fsync of the file, then of the folder), and on this machine each costs 1-5 ms, most of a
C-STORE's time. Slot files are created ahead, in batches, by a background thread whose
single folder fsync covers the whole batch; on receipt an instance is written into a
slot and fdatasync'ed (data + size), and only then acknowledged: one flush on the ack
path, with the same guarantee. A mover thread then renames the slot to its place under
studies/ and fsyncs the folders, batched. After a crash, `recover()` validates each
written slot (a partial write was never acknowledged and is dropped) and files it.
When no slot is ready, the write falls back to temporary file + fsync + rename + folder
fsync. Results are written the same fallback way (few, and off the ack path).

Encryption at rest is an option: with a Fernet key (`cryptography`; AES-128-CBC with an
HMAC-SHA256, one token per file) every instance and result is sealed before it is written
and opened when read, so a copied disk or backup holds no readable patient data. Readers
go through `read()`, never `open()` on a spool path.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset

from common.errors import RadAssistError

log = logging.getLogger("radassist.bridge.spool")

_SAFE_UID = re.compile(r"^[0-9][0-9.]{0,63}$")
SET_ASIDE = "set_aside"  # a study's instances that killed a decoder
_TMP_PREFIX = ".tmp-"
SLOT_BATCH = 32


def safe_name(uid: str) -> str:
    """A file name for a UID; anything that is not a plain UID is hashed (no path tricks)."""
    uid = uid.strip().rstrip("\0")
    if _SAFE_UID.match(uid) and ".." not in uid:
        return uid
    return "x" + hashlib.sha256(uid.encode("utf-8", "replace")).hexdigest()[:40]


def fsync_dir(path: Path) -> None:
    """Make a folder's entries durable (after a create or rename in it)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written (a write may be short)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class SpoolCipherError(RadAssistError):
    """A spooled file that the configured key cannot open (wrong key, or not sealed)."""

    reason = "spool_key"


def load_key(path: Path) -> bytes:
    """A Fernet key from a file (as written by `radassist bridge keygen`)."""
    try:
        key = Path(path).read_bytes().strip()
    except OSError as exc:
        raise SpoolCipherError(str(path), f"cannot read the spool key ({exc.strerror})") from exc
    try:
        from cryptography.fernet import Fernet

        Fernet(key)
    except (ValueError, TypeError) as exc:
        raise SpoolCipherError(str(path), "not a Fernet key (32 url-safe base64 bytes)") from exc
    return key


class Spool:
    def __init__(self, root: Path, *, use_slots: bool = True, key: bytes | None = None) -> None:
        self.root = Path(root)
        self.key = key  # handed to the analysis child, which reads sealed files itself
        self._cipher = None
        if key is not None:
            from cryptography.fernet import Fernet

            self._cipher = Fernet(key)
        self.studies = self.root / "studies"
        self.results = self.root / "results"
        self.slots = self.root / "slots"
        self._known_dirs: set[Path] = set()
        self._lock = threading.Lock()
        for d in (self.root, self.studies, self.results, self.slots):
            self._ensure_dir(d)
        self.use_slots = use_slots
        self._free: queue.SimpleQueue[Path] = queue.SimpleQueue()
        self._moves: queue.Queue[tuple[Path, Path] | None] = queue.Queue()
        self._counter = itertools.count(int(time.time() * 1000))
        self._refill = threading.Event()
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- background threads ----------------------------------------------------------------

    def start(self) -> None:
        """Start the slot filler and the mover (a spool used without start() has no slots)."""
        if not self.use_slots or self._threads:
            return
        for name, target in (("spool-slots", self._fill_slots), ("spool-mover", self._mover)):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        self._refill.set()

    def stop(self) -> None:
        if not self._threads:
            return
        self._stopped.set()
        self._refill.set()
        self._moves.put(None)
        for t in self._threads:
            t.join(timeout=10)
        self._threads.clear()

    def _fill_slots(self) -> None:
        while not self._stopped.is_set():
            self._refill.wait()
            self._refill.clear()
            while not self._stopped.is_set() and self._free.qsize() < SLOT_BATCH:
                made = []
                try:
                    for _ in range(SLOT_BATCH):
                        path = self.slots / f"{next(self._counter)}.slot"
                        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                        made.append(path)
                    fsync_dir(self.slots)  # one flush makes the whole batch's entries durable
                except OSError as exc:  # e.g. disk full: receipts fall back to direct writes
                    log.error("cannot pre-create spool slots: %s", exc.strerror)
                    for path in made:
                        path.unlink(missing_ok=True)
                    self._stopped.wait(1.0)
                    break
                for path in made:
                    self._free.put(path)

    def _mover(self) -> None:
        while True:
            item = self._moves.get()
            batch = [item]
            while True:  # take whatever else is waiting: one folder fsync per batch
                try:
                    batch.append(self._moves.get_nowait())
                except queue.Empty:
                    break
            folders = set()
            for entry in batch:
                if entry is None:
                    continue
                src, dst = entry
                try:
                    os.replace(src, dst)
                    folders.add(dst.parent)
                except OSError as exc:  # the data is safe in its slot; recover() files it
                    log.error("cannot file a spooled instance: %s", exc.strerror)
            try:
                for folder in folders:
                    fsync_dir(folder)
                if folders:
                    fsync_dir(self.slots)
            except OSError as exc:
                log.error("cannot flush spool folders: %s", exc.strerror)
            for _ in batch:
                self._moves.task_done()
            if None in batch:
                return

    def flush(self) -> None:
        """Wait until every received instance is in its study folder (for readers)."""
        if self._threads:
            self._moves.join()

    # -- writing ---------------------------------------------------------------------------

    def _ensure_dir(self, path: Path) -> None:
        if path in self._known_dirs:
            return
        with self._lock:
            if not path.is_dir():
                path.mkdir(parents=True, exist_ok=True)
                fsync_dir(path.parent)  # the new directory entry itself must survive a crash
            self._known_dirs.add(path)

    def study_dir(self, study_uid: str) -> Path:
        return self.studies / safe_name(study_uid)

    def result_dir(self, study_uid: str) -> Path:
        return self.results / safe_name(study_uid)

    def write_bytes(self, folder: Path, sop_instance_uid: str, data: bytes) -> Path:
        """Write one file durably (temporary file, fsync, rename, folder fsync)."""
        self._ensure_dir(folder)
        final = folder / f"{safe_name(sop_instance_uid)}.dcm"
        tmp = folder / f"{_TMP_PREFIX}{final.name}.{threading.get_ident()}"
        data = self._seal(data)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        fsync_dir(folder)
        return final

    def store_instance(self, study_uid: str, sop_instance_uid: str, data: bytes) -> Path:
        """Make one received instance durable; when this returns, it may be acknowledged."""
        folder = self.study_dir(study_uid)
        self._ensure_dir(folder)
        final = folder / f"{safe_name(sop_instance_uid)}.dcm"
        if self._threads:
            try:
                slot = self._free.get_nowait()
            except queue.Empty:
                slot = None
            if self._free.qsize() < SLOT_BATCH // 2:
                self._refill.set()
            if slot is not None:
                fd = os.open(slot, os.O_WRONLY)
                try:
                    write_all(fd, self._seal(data))
                    os.fdatasync(fd)  # data and size; the entry was flushed at creation
                finally:
                    os.close(fd)
                self._moves.put((slot, final))
                return final
        return self.write_bytes(folder, sop_instance_uid, data)

    def store_result(self, study_uid: str, dataset: Dataset) -> Path:
        buf = io.BytesIO()
        dataset.save_as(buf, enforce_file_format=True)
        return self.write_bytes(self.result_dir(study_uid), dataset.SOPInstanceUID, buf.getvalue())

    # -- sealing ---------------------------------------------------------------------------

    @property
    def encrypted(self) -> bool:
        return self._cipher is not None

    def _seal(self, data: bytes) -> bytes:
        return self._cipher.encrypt(data) if self._cipher is not None else data

    def open_bytes(self, data: bytes, source: str = "spool") -> bytes:
        """The plain bytes of a spooled file's content (raises `SpoolCipherError`)."""
        if self._cipher is None:
            return data
        from cryptography.fernet import InvalidToken

        try:
            return self._cipher.decrypt(data)
        except InvalidToken:
            raise SpoolCipherError(source, "cannot be opened with the spool key") from None

    def read(self, path: Path) -> bytes:
        return self.open_bytes(Path(path).read_bytes(), str(path))

    # -- reading ---------------------------------------------------------------------------

    def instance_files(self, study_uid: str) -> list[Path]:
        self.flush()
        folder = self.study_dir(study_uid)
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.glob("*.dcm") if not p.name.startswith(_TMP_PREFIX))

    def set_aside(self, study_uid: str, name: str) -> Path:
        """Move one spooled instance out of its study (into the study's `set_aside/`): it is
        kept for the operator but no longer read, by this analysis or after a restart."""
        folder = self.study_dir(study_uid)
        aside = folder / SET_ASIDE
        self._ensure_dir(aside)
        target = aside / Path(name).name
        os.replace(folder / Path(name).name, target)
        fsync_dir(folder)
        fsync_dir(aside)
        return target

    def set_aside_files(self, study_uid: str) -> list[Path]:
        folder = self.study_dir(study_uid) / SET_ASIDE
        return sorted(folder.glob("*.dcm")) if folder.is_dir() else []

    def load_results(self, study_uid: str) -> list[Dataset]:
        folder = self.result_dir(study_uid)
        if not folder.is_dir():
            return []
        return [dcmread(io.BytesIO(self.read(p))) for p in sorted(folder.glob("*.dcm"))]

    def clear_results(self, study_uid: str) -> None:
        folder = self.result_dir(study_uid)
        if folder.is_dir():
            for p in folder.iterdir():
                p.unlink()

    def remove_study(self, study_uid: str) -> int:
        """Delete a study's instances and results (retention); returns the bytes freed."""
        import shutil

        freed = 0
        for folder in (self.study_dir(study_uid), self.result_dir(study_uid)):
            if folder.is_dir():
                freed += sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
                shutil.rmtree(folder, ignore_errors=True)
                self._known_dirs.discard(folder)
        return freed

    def size_bytes(self) -> int:
        """Bytes held in studies/ and results/ (what retention's size cap counts)."""
        return sum(p.stat().st_size for base in (self.studies, self.results)
                   for p in base.rglob("*") if p.is_file())

    def study_uids_on_disk(self) -> list[str]:
        """Folder names of spooled studies (equal to the study UID for ordinary UIDs)."""
        self.flush()
        return sorted(p.name for p in self.studies.iterdir() if p.is_dir())

    # -- after a crash ---------------------------------------------------------------------

    def recover(self, validate: Callable[[bytes], tuple[str, str] | None]) -> dict[str, int]:
        """Drop unfinished temporary files; file written slots, drop partial ones.

        `validate(data)` returns (study UID, SOP instance UID) for a complete instance, or
        None; a slot that fails it was being written when the process died, and was
        therefore never acknowledged. Call before start().
        """
        counts = {"partial_files_removed": 0, "slots_recovered": 0, "partial_slots_removed": 0}
        for base in (self.studies, self.results):
            for tmp in base.glob(f"*/{_TMP_PREFIX}*"):
                tmp.unlink(missing_ok=True)
                counts["partial_files_removed"] += 1
        for slot in sorted(self.slots.glob("*.slot")):
            if slot.stat().st_size == 0:
                slot.unlink()  # unused; fresh slots are made at start()
                continue
            try:
                ids = validate(self.open_bytes(slot.read_bytes(), str(slot)))
            except SpoolCipherError:  # a partial token: never acknowledged
                ids = None
            if ids is None:
                slot.unlink()
                counts["partial_slots_removed"] += 1
                continue
            folder = self.study_dir(ids[0])
            self._ensure_dir(folder)
            os.replace(slot, folder / f"{safe_name(ids[1])}.dcm")
            fsync_dir(folder)
            counts["slots_recovered"] += 1
        fsync_dir(self.slots)
        return counts
