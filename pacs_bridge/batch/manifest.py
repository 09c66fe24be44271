"""The results manifest of a batch run (SQLite, one row a study), written by the client only.

A row is written after the study's outputs are on disk, so a run killed in between leaves
outputs without a row; the re-run's task finds those outputs (same input digest and model
version) and the row is written then, without analysing again.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import astuple, dataclass, fields
from enum import StrEnum
from pathlib import Path


class Status(StrEnum):
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class ManifestRow:
    study_uid: str
    input_digest: str  # sha256 over the study's instances (SOP UID + bytes), "" if unread
    model_version: str
    status: Status
    output_path: str  # the study's output folder (named by the SR's UID), "" on failure
    reason: str = ""  # failure reason code (e.g. "no_study", "worker_died")
    message: str = ""
    seconds: float = 0.0  # analysis time on the worker (wall)
    cpu_seconds: float = 0.0  # CPU time of the worker process meanwhile
    listing: str = ""  # the task's input signature (see sources.StudyTask)
    reused: bool = False  # outputs found on disk from an earlier run: nothing analysed
    updated_at: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))  # ValueError on unknown


_COLUMNS = [f.name for f in fields(ManifestRow)]
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS studies (
    study_uid TEXT PRIMARY KEY, {", ".join(f"{c} NOT NULL" for c in _COLUMNS[1:])}
)"""


class Manifest:
    FILE = "manifest.sqlite"

    def __init__(self, out_dir: Path) -> None:
        self.path = Path(out_dir) / self.FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def put(self, row: ManifestRow) -> None:
        if not row.updated_at:
            row = ManifestRow(**{**row.__dict__, "updated_at": time.time()})
        values = list(astuple(row))
        values[_COLUMNS.index("status")] = row.status.value
        values[_COLUMNS.index("reused")] = int(row.reused)
        self._db.execute(
            f"INSERT OR REPLACE INTO studies ({','.join(_COLUMNS)})"
            f" VALUES ({','.join('?' * len(_COLUMNS))})", values)

    def rows(self) -> dict[str, ManifestRow]:
        cur = self._db.execute(f"SELECT {','.join(_COLUMNS)} FROM studies")
        out = {}
        for r in cur.fetchall():
            d = dict(zip(_COLUMNS, r, strict=True))
            d["reused"] = bool(d["reused"])
            out[d["study_uid"]] = ManifestRow(**d)
        return out
