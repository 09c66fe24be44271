"""Accept one received instance: validate it, spool it durably, journal it — or refuse it.

Shared by the C-STORE SCP, C-GET and WADO-RS pulls, so every path into the bridge applies
the same rules: an instance that cannot be parsed, has truncated pixel data, lacks its
UIDs or does not match the SOP class it was sent under is refused with a DICOM failure
status and never stored; an accepted one is fsynced to the spool before success is
returned. Logs carry shortened, hashed UIDs only (no patient data).
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
from dataclasses import dataclass

from pydicom.dataset import Dataset

from common.errors import CorruptFileError, NotDicomError, RadAssistError
from pacs_bridge.ingest import read_instance
from pacs_bridge.service.journal import Journal
from pacs_bridge.service.spool import Spool
from pacs_bridge.study import Instance, InstanceKind
from pacs_bridge.transfer_syntaxes import has_pixel_data

log = logging.getLogger("radassist.bridge.receive")

# C-STORE statuses (PS3.4 B.2.3 / PS3.7 C): failures are 0xA7xx, 0xA9xx, 0xCxxx.
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC000
CANNOT_PARSE = 0xC210
TRUNCATED = 0xC211


def lacks_pixels(inst: Instance) -> bool:
    """An image object without pixel data: invalid, or a write cut short before them."""
    return inst.kind is InstanceKind.IMAGE and not has_pixel_data(inst.dataset)


def short_uid(uid: str) -> str:
    """A stable, non-reversible tag for a UID in logs (UIDs can embed dates or site ids)."""
    return hashlib.sha256(uid.encode("utf-8", "replace")).hexdigest()[:10]


@dataclass(frozen=True)
class ReceiveResult:
    status: int
    reason: str  # "ok" or the failure's short code
    study_uid: str = ""
    sop_uid: str = ""

    @property
    def ok(self) -> bool:
        return self.status == SUCCESS


class Receiver:
    def __init__(self, spool: Spool, journal: Journal) -> None:
        self.spool = spool
        self.journal = journal
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def _count(self, reason: str) -> None:
        with self._lock:
            self._counts[reason] = self._counts.get(reason, 0) + 1

    def accept_dataset(self, ds: Dataset, source: str) -> ReceiveResult:
        """For objects fetched by C-GET or WADO-RS: encode once, then the same path."""
        buf = io.BytesIO()
        try:
            ds.save_as(buf, enforce_file_format=True)
        except Exception as exc:
            return self._refuse(CANNOT_PARSE, "unencodable", source, f"cannot encode: {exc}")
        return self.accept_bytes(buf.getvalue(), source)

    def accept_bytes(
        self, data: bytes, source: str, *, sop_class_uid: str | None = None
    ) -> ReceiveResult:
        """`data` is a DICOM file stream (preamble + file meta + dataset).

        `sop_class_uid` is the SOP class the peer sent under (the presentation context);
        a dataset claiming another class is refused.
        """
        try:
            inst = read_instance(source, data)
        except CorruptFileError as exc:
            status = TRUNCATED if exc.reason == "truncated" else CANNOT_PARSE
            return self._refuse(status, exc.reason, source, exc.message)
        except NotDicomError as exc:
            return self._refuse(CANNOT_PARSE, exc.reason, source, exc.message)
        except RadAssistError as exc:
            return self._refuse(CANNOT_UNDERSTAND, exc.reason, source, exc.message)
        except Exception as exc:  # a parser bug must not take the listener down
            return self._refuse(CANNOT_PARSE, "unparsable", source, type(exc).__name__)
        missing = [w.message.split()[0] for w in inst.warnings if w.code == "missing_uid"]
        if missing:
            return self._refuse(
                DOES_NOT_MATCH_SOP_CLASS, "missing_uid", source, f"missing {', '.join(missing)}"
            )
        if lacks_pixels(inst):
            return self._refuse(
                DOES_NOT_MATCH_SOP_CLASS, "no_pixel_data", source, "image object without pixels"
            )
        if sop_class_uid and inst.sop_class_uid != sop_class_uid:
            return self._refuse(
                DOES_NOT_MATCH_SOP_CLASS,
                "sop_class_mismatch",
                source,
                "dataset SOP class differs from the negotiated one",
            )
        study_uid = str(inst.dataset.StudyInstanceUID)
        try:
            self.spool.store_instance(study_uid, inst.sop_instance_uid, data)
        except OSError as exc:
            return self._refuse(OUT_OF_RESOURCES, "spool_write", source, exc.strerror or "")
        try:
            state = self.journal.note_instance(study_uid, inst.sop_instance_uid)
        except Exception as exc:
            # The file is safe in the spool and is re-journalled on restart (recover()),
            # so success is still the truthful answer; say so loudly.
            log.error("journal write failed for study %s: %s", short_uid(study_uid), exc)
            state = "receiving"
        if state not in ("receiving",):
            log.warning(
                "late instance for study %s (state %s): stored, not re-analysed",
                short_uid(study_uid),
                state,
            )
        self._count("ok")
        return ReceiveResult(SUCCESS, "ok", study_uid, inst.sop_instance_uid)

    def _refuse(self, status: int, reason: str, source: str, detail: str) -> ReceiveResult:
        self._count(reason)
        log.warning("refused instance from %s: 0x%04X %s (%s)", source, status, reason, detail)
        return ReceiveResult(status, reason)
