"""Audit trail: who associated, from where, and what was received, exported, queried or refused.

One JSON object per line, shaped after the DICOM audit message (PS3.15 Annex A.5, from
IHE ATNA / RFC 3881): an EventIdentification (DCM event code, action, outcome), the active
participants (AE title, network address, requestor or not) and the participant objects.
Study and instance UIDs are recorded as the same SHA-256 tags the logs use
(`short_uid`), so the trail can be matched against a known study without holding
identifiers itself; no patient name, ID or birth date is ever written.

Appends are serialised by a lock and flushed per record; a crash loses at most the line
being written, never an earlier one.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from pacs_bridge.service.receive import short_uid

# (code, meaning) from DICOM CID 400 "Audit Event ID" / CID 401 "Audit Event Type Code"
EVENTS = {
    "association": ("110122", "Login"),  # an association is the DIMSE form of a login
    "association_refused": ("110122", "Login"),
    "receipt": ("110104", "DICOM Instances Transferred"),
    "refusal": ("110104", "DICOM Instances Transferred"),
    "export": ("110106", "Export"),
    "query": ("110112", "Query"),
    "user_login": ("110122", "Login"),
    "application": ("110100", "Application Activity"),
}
ACTION = {"association": "E", "association_refused": "E", "receipt": "C", "refusal": "C",
          "export": "R", "query": "E", "user_login": "E", "application": "E"}
SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE = 0, 4, 8


class AuditLog:
    """Append-only JSON-lines audit records (see the module docstring)."""

    def __init__(self, path: Path | None, source_id: str = "RADASSIST") -> None:
        self.path = Path(path) if path is not None else None
        self.source_id = source_id
        self._lock = threading.Lock()
        self._host = socket.gethostname()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, event: str, *, outcome: int = SUCCESS, participants: list[dict] | None = None,
               objects: list[dict] | None = None, detail: str = "") -> dict:
        code, meaning = EVENTS[event]
        entry = {
            "EventIdentification": {
                "EventID": {"code": code, "codingScheme": "DCM", "meaning": meaning},
                "EventActionCode": ACTION[event],
                "EventDateTime": datetime.fromtimestamp(time.time(), UTC).isoformat(),
                "EventOutcomeIndicator": outcome,
                "radassist_event": event,
            },
            "ActiveParticipant": participants or [],
            "AuditSourceIdentification": {"AuditSourceID": self.source_id,
                                          "AuditEnterpriseSiteID": self._host},
            "ParticipantObjectIdentification": objects or [],
        }
        if detail:
            entry["EventIdentification"]["EventOutcomeDescription"] = detail[:300]
        if self.path is not None:
            line = json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n"
            with self._lock, open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        return entry


def peer(ae_title: str, address: str | None, *, requestor: bool) -> dict:
    """An ActiveParticipant: a DICOM application entity at a network address."""
    return {"UserID": ae_title, "NetworkAccessPointID": address or "",
            "NetworkAccessPointTypeCode": "2", "UserIsRequestor": requestor}


def study_object(study_uid: str, *, instances: int = 0) -> dict:
    """A ParticipantObject for a study, by its log tag (never the UID itself)."""
    obj = {"ParticipantObjectTypeCode": 2, "ParticipantObjectTypeCodeRole": 3,
           "ParticipantObjectIDTypeCode": {"code": "110180", "codingScheme": "DCM",
                                           "meaning": "Study Instance UID"},
           "ParticipantObjectID": short_uid(study_uid)}
    if instances:
        obj["ParticipantObjectDetail"] = {"instances": instances}
    return obj


def read_records(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()
                if line.strip()]
    except FileNotFoundError:
        return []
