"""The journal's records: states, the SQLite schema, rows as frozen dataclasses, leases.

Kept apart from `journal.Journal` (the operations) so that readers of a record — the
status command, the queue, the batch manifest's neighbours — need not read the SQL.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
from dataclasses import dataclass

RECEIVING = "receiving"
QUEUED = "queued"
ANALYSING = "analysing"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"
SKIPPED = "skipped"
STATES = (RECEIVING, QUEUED, ANALYSING, SENDING, SENT, FAILED, SKIPPED)
FINISHED = (SENT, FAILED, SKIPPED)

SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (
    study_uid TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    last_instance_at REAL NOT NULL,
    instance_count INTEGER NOT NULL DEFAULT 0,
    late_instances INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    route TEXT NOT NULL DEFAULT '',
    result_uids TEXT NOT NULL DEFAULT '[]',
    sending_since REAL NOT NULL DEFAULT 0,
    purged_at REAL NOT NULL DEFAULT 0,
    lease_owner TEXT NOT NULL DEFAULT '',
    lease_until REAL NOT NULL DEFAULT 0,
    crashes INTEGER NOT NULL DEFAULT 0,
    quarantined INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS instances (
    sop_uid TEXT PRIMARY KEY,
    study_uid TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    study_uid TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    at REAL NOT NULL,
    note TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS sent (
    sop_uid TEXT NOT NULL,
    destination TEXT NOT NULL,
    study_uid TEXT NOT NULL,
    sent_at REAL NOT NULL,
    PRIMARY KEY (sop_uid, destination)
);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class StudyRecord:
    study_uid: str
    state: str
    created_at: float
    updated_at: float
    last_instance_at: float
    instance_count: int
    late_instances: int
    attempts: int
    next_attempt_at: float
    last_error: str
    route: str
    result_uids: tuple[str, ...]
    sending_since: float = 0.0  # when delivery began: the age limit counts from here
    purged_at: float = 0.0  # when retention removed its spooled files
    lease_owner: str = ""  # "host:pid" of the worker process working on it now
    lease_until: float = 0.0  # a lease of a process on another host ends here
    # analyses that ended with their process dead (a native abort, OOM, a time-out, or the
    # bridge itself killed mid-analysis): counted, and the study is quarantined at the limit
    crashes: int = 0
    quarantined: int = 0  # 1: failed because it kept killing the analyser; never re-run alone

    def as_json(self) -> dict:
        d = self.__dict__.copy()
        d["result_uids"] = list(self.result_uids)
        return d


@dataclass(frozen=True)
class Transition:
    study_uid: str
    from_state: str | None
    to_state: str
    at: float
    note: str


class Transaction:
    def __init__(self, db: sqlite3.Connection, lock: threading.RLock) -> None:
        self.db, self.lock = db, lock

    def __enter__(self) -> None:
        self.lock.acquire()
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.lock.release()


def process_owner() -> str:
    """This process as a lease owner: "host:pid"."""
    return f"{socket.gethostname()}:{os.getpid()}"


def lease_alive(owner: str, until: float, now: float) -> bool:
    """Whether a lease still holds: a process on this host while it lives (a SIGKILLed
    worker frees its study at once), one on another host until the lease's time is up."""
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return until >= now


def encode(fields: dict[str, object]) -> dict[str, object]:
    return {k: json.dumps(list(v)) if k == "result_uids" else v for k, v in fields.items()}


def record(row: sqlite3.Row) -> StudyRecord:
    d = dict(row)
    d["result_uids"] = tuple(json.loads(d["result_uids"] or "[]"))
    return StudyRecord(**d)
