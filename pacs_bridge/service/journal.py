"""The SQLite journal: each study's state, timestamps, attempts, and what was sent where.

States::

    receiving ─(inactivity timeout)─► queued ─► analysing ─► sending ─► sent
         ▲                              │           │           │
         └──── a new instance ──────────┘           └─ retries ─┴─► failed (visible, with error)
    queued ─(routing says no)─► skipped
    queued ─(attempts used up by analyses that died)─► failed, quarantined (not run again)

Transitions are conditional updates (`... WHERE state IN (expected)`), so repeating one
is a harmless no-op; this is what makes restart recovery and retries idempotent.
The spool is the truth for instances (fsynced before the ack); the journal runs in WAL
mode with synchronous=NORMAL, which survives a killed process (not necessarily a power cut,
in which case a result may be sent again with the same UIDs, which PACSs ignore).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from pacs_bridge.service.journal_records import (  # noqa: F401 (states re-exported)
    ANALYSING,
    FAILED,
    FINISHED,
    QUEUED,
    RECEIVING,
    SCHEMA,
    SENDING,
    SENT,
    SKIPPED,
    STATES,
    StudyRecord,
    Transaction,
    Transition,
    encode,
    lease_alive,
    process_owner,
    record,
)


class Journal:
    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly:
            uri = f"file:{self.path}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=10)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, timeout=30, isolation_level=None
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            self._migrate()
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _migrate(self) -> None:
        """Columns added since the first release, for journals written by older bridges."""
        have = {r[1] for r in self._db.execute("PRAGMA table_info(studies)").fetchall()}
        for column, kind in (("sending_since", "REAL NOT NULL DEFAULT 0"),
                             ("purged_at", "REAL NOT NULL DEFAULT 0"),
                             ("lease_owner", "TEXT NOT NULL DEFAULT ''"),
                             ("lease_until", "REAL NOT NULL DEFAULT 0"),
                             ("crashes", "INTEGER NOT NULL DEFAULT 0"),
                             ("quarantined", "INTEGER NOT NULL DEFAULT 0")):
            if column not in have:
                self._db.execute(f"ALTER TABLE studies ADD COLUMN {column} {kind}")

    # -- writing -------------------------------------------------------------------------

    def _tx(self):
        return Transaction(self._db, self._lock)

    def _log(self, uid: str, old: str | None, new: str, now: float, note: str) -> None:
        self._db.execute(
            "INSERT INTO transitions (study_uid, from_state, to_state, at, note)"
            " VALUES (?,?,?,?,?)",
            (uid, old, new, now, note),
        )

    def note_instance(self, study_uid: str, sop_uid: str, now: float | None = None) -> str:
        """Record a spooled instance; returns the study's state afterwards.

        A new instance for a queued study sends it back to receiving (the timer restarts);
        for a study already being analysed or finished it is counted as late, not lost.
        """
        now = time.time() if now is None else now
        with self._tx():
            row = self._db.execute(
                "SELECT state FROM studies WHERE study_uid=?", (study_uid,)
            ).fetchone()
            if row is None:
                self._db.execute(
                    "INSERT INTO studies (study_uid, state, created_at, updated_at,"
                    " last_instance_at) VALUES (?,?,?,?,?)",
                    (study_uid, RECEIVING, now, now, now),
                )
                self._log(study_uid, None, RECEIVING, now, "first instance")
                state = RECEIVING
            else:
                state = row["state"]
            is_new = (
                self._db.execute(
                    "INSERT OR IGNORE INTO instances (sop_uid, study_uid, received_at)"
                    " VALUES (?,?,?)",
                    (sop_uid, study_uid, now),
                ).rowcount
                == 1
            )
            if state == QUEUED:
                self._db.execute(
                    "UPDATE studies SET state=?, updated_at=? WHERE study_uid=?",
                    (RECEIVING, now, study_uid),
                )
                self._log(study_uid, QUEUED, RECEIVING, now, "new instance before analysis")
                state = RECEIVING
            late = int(is_new and state not in (RECEIVING,))
            self._db.execute(
                "UPDATE studies SET last_instance_at=?, instance_count=instance_count+?,"
                " late_instances=late_instances+? WHERE study_uid=?",
                (now, int(is_new), late, study_uid),
            )
            return state

    def transition(
        self,
        study_uid: str,
        new_state: str,
        *,
        expect: Iterable[str],
        note: str = "",
        now: float | None = None,
        **fields: object,
    ) -> bool:
        """Move a study to `new_state` if it is in one of `expect`; False (no-op) otherwise."""
        assert new_state in STATES
        now = time.time() if now is None else now
        expect = tuple(expect)
        sets = ["state=?", "updated_at=?"] + [f"{k}=?" for k in fields]
        values: list[object] = [new_state, now, *encode(fields).values()]
        with self._tx():
            row = self._db.execute(
                "SELECT state FROM studies WHERE study_uid=?", (study_uid,)
            ).fetchone()
            if row is None or row["state"] not in expect:
                return False
            self._db.execute(
                f"UPDATE studies SET {', '.join(sets)} WHERE study_uid=?",
                (*values, study_uid),
            )
            self._log(study_uid, row["state"], new_state, now, note)
            return True

    def update(self, study_uid: str, **fields: object) -> None:
        """Set fields without changing state (e.g. the routing decision)."""
        if not fields:
            return
        enc = encode(fields)
        with self._tx():
            self._db.execute(
                f"UPDATE studies SET {', '.join(f'{k}=?' for k in enc)} WHERE study_uid=?",
                (*enc.values(), study_uid),
            )

    def due_for_completion(self, cutoff: float) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT study_uid FROM studies WHERE state=? AND last_instance_at<=?"
                " ORDER BY last_instance_at",
                (RECEIVING, cutoff),
            ).fetchall()
        return [r["study_uid"] for r in rows]

    def next_claimable(self, now: float) -> StudyRecord | None:
        """The oldest study waiting for analysis or for (re)sending whose backoff is over."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM studies WHERE state IN (?,?) AND next_attempt_at<=?"
                " ORDER BY updated_at LIMIT 1",
                (QUEUED, SENDING, now),
            ).fetchone()
        return record(row) if row else None

    def recover_after_restart(self, now: float | None = None) -> dict[str, int]:
        """Put interrupted work back in line; give receiving studies a fresh timeout window.

        An analysis leased by a worker process that is still alive (`bridge worker`) is
        not interrupted: it stays with that worker."""
        now = time.time() if now is None else now
        counts = {}
        with self._tx():
            rows = self._db.execute(
                "SELECT study_uid, lease_owner, lease_until FROM studies WHERE state=?",
                (ANALYSING,),
            ).fetchall()
            requeued = 0
            for r in rows:
                if lease_alive(r["lease_owner"], r["lease_until"], now):
                    continue
                self._requeue_interrupted(r["study_uid"], now, "analysis interrupted: the "
                                          "process analysing it died (counted as a crash)")
                requeued += 1
            counts["requeued"] = requeued
            counts["receiving"] = self._db.execute(
                "UPDATE studies SET last_instance_at=? WHERE state=?", (now, RECEIVING)
            ).rowcount
            counts["sending"] = self._db.execute(
                "UPDATE studies SET next_attempt_at=0 WHERE state=?", (SENDING,)
            ).rowcount
        return counts

    # -- leases: several worker processes on one journal -----------------------------------

    def claim(self, owner: str, now: float, lease_seconds: float) -> StudyRecord | None:
        """Lease the oldest study due for analysis or sending to `owner` ("host:pid"), in
        one write transaction, so two processes never take the same study. An analysis
        whose worker is gone (its process is dead, or its lease ran out) is queued again
        first; a lease only ends by time for a worker on another host."""
        with self._tx():
            held = self._db.execute(
                "SELECT study_uid, state, lease_owner, lease_until FROM studies"
                " WHERE lease_owner!='' OR state=?", (ANALYSING,)
            ).fetchall()
            for r in held:
                if lease_alive(r["lease_owner"], r["lease_until"], now):
                    continue
                if r["state"] == ANALYSING:
                    self._requeue_interrupted(
                        r["study_uid"], now, f"analysis interrupted: worker "
                        f"{r['lease_owner'] or '?'} gone (counted as a crash)")
                else:
                    self._db.execute(
                        "UPDATE studies SET lease_owner='', lease_until=0 WHERE study_uid=?",
                        (r["study_uid"],))
            row = self._db.execute(
                "SELECT * FROM studies WHERE state IN (?,?) AND next_attempt_at<=?"
                " AND lease_owner='' ORDER BY updated_at LIMIT 1",
                (QUEUED, SENDING, now),
            ).fetchone()
            if row is None:
                return None
            self._db.execute(
                "UPDATE studies SET lease_owner=?, lease_until=? WHERE study_uid=?",
                (owner, now + lease_seconds, row["study_uid"]),
            )
        return self.get(row["study_uid"])

    def _requeue_interrupted(self, uid: str, now: float, note: str) -> None:
        """An analysis whose process is gone back in line, counted as a crash (inside a
        transaction). Its attempt was counted before it ran, so a study that kills every
        process analysing it reaches `max_attempts` and is quarantined, not run forever."""
        self._db.execute(
            "UPDATE studies SET state=?, updated_at=?, next_attempt_at=0, lease_owner='',"
            " lease_until=0, crashes=crashes+1 WHERE study_uid=? AND state=?",
            (QUEUED, now, uid, ANALYSING))
        self._log(uid, ANALYSING, QUEUED, now, note)

    def requeue_interrupted(self, study_uid: str, note: str, now: float | None = None) -> None:
        """`_requeue_interrupted` in its own transaction (a queue that found the study's
        worker gone, e.g. PostgreSQL's released row lock)."""
        with self._tx():
            self._requeue_interrupted(study_uid, time.time() if now is None else now, note)

    def quarantine(self, study_uid: str, *, expect: Iterable[str], note: str,
                   now: float | None = None) -> bool:
        """Fail a study that keeps killing the analyser: state failed, flagged quarantined,
        its instances kept; only an operator's `retry` releases it (never a restart)."""
        rec = self.get(study_uid)
        if rec is None:
            return False
        n = max(rec.crashes, 1)
        error = f"the analyser crashed {n} time{'s' if n != 1 else ''} on this study"
        return self.transition(study_uid, FAILED, expect=expect, note=note, now=now,
                               last_error=error, quarantined=1, next_attempt_at=0)

    def lease(self, study_uid: str, owner: str, until: float) -> None:
        """Mark a study as worked on by `owner` (a queue that locks elsewhere, e.g. PostgreSQL,
        tells the journal, so a restarting listener leaves the study alone)."""
        self.update(study_uid, lease_owner=owner, lease_until=until)

    def release(self, study_uid: str, owner: str) -> None:
        with self._tx():
            self._db.execute(
                "UPDATE studies SET lease_owner='', lease_until=0"
                " WHERE study_uid=? AND lease_owner=?", (study_uid, owner))

    def changed_since(self, since: float, states: Iterable[str]) -> list[StudyRecord]:
        """Studies in `states` changed at or after `since` (a queue publishing new work)."""
        states = tuple(states)
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM studies WHERE state IN ({','.join('?' * len(states))})"
                " AND updated_at>=? ORDER BY updated_at", (*states, since)
            ).fetchall()
        return [record(r) for r in rows]

    def requeue_failed(self, now: float | None = None) -> list[str]:
        """Every failed study back in line, on restart if configured; quarantined ones stay
        (a study that killed the analyser is released by an operator's `retry` only)."""
        return [r.study_uid for r in self.in_state(FAILED)
                if not r.quarantined and self.retry(r.study_uid, now=now,
                                                    note="requeued on restart")]

    def retry(self, study_uid: str, *, now: float | None = None, note: str = "retry") -> bool:
        """A failed study is tried again from where it stopped: re-sent when its results are
        spooled, re-analysed otherwise. The delivery age limit starts afresh; a quarantined
        study is released (its attempt and crash counts start again from 0)."""
        now = time.time() if now is None else now
        rec = self.get(study_uid)
        if rec is None or rec.state != FAILED:
            return False
        target = SENDING if rec.result_uids else QUEUED
        return self.transition(study_uid, target, expect=(FAILED,), note=note, now=now,
                               attempts=0, next_attempt_at=0, sending_since=now, crashes=0,
                               quarantined=0)

    def resend(self, study_uid: str, *, now: float | None = None) -> bool:
        """Send a sent (or failed) study's results again, every object, e.g. after the PACS
        lost them; the sent-object marks are cleared so none is skipped."""
        now = time.time() if now is None else now
        rec = self.get(study_uid)
        if rec is None or rec.state not in (SENT, FAILED) or not rec.result_uids:
            return False
        with self._tx():
            self._db.execute("DELETE FROM sent WHERE study_uid=?", (study_uid,))
        return self.transition(study_uid, SENDING, expect=(SENT, FAILED), note="resend",
                               now=now, attempts=0, next_attempt_at=0, sending_since=now)

    def in_state(self, state: str) -> list[StudyRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM studies WHERE state=? ORDER BY updated_at", (state,)
            ).fetchall()
        return [record(r) for r in rows]

    def purgeable(self, cutoff: float) -> list[StudyRecord]:
        """Finished, not yet purged studies whose last change is older than `cutoff`."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM studies WHERE state IN ({','.join('?' * len(FINISHED))})"
                " AND purged_at=0 AND updated_at<? ORDER BY updated_at",
                (*FINISHED, cutoff),
            ).fetchall()
        return [record(r) for r in rows]

    def mark_sent(self, study_uid: str, sop_uid: str, destination: str) -> None:
        with self._tx():
            self._db.execute(
                "INSERT OR IGNORE INTO sent (sop_uid, destination, study_uid, sent_at)"
                " VALUES (?,?,?,?)",
                (sop_uid, destination, study_uid, time.time()),
            )

    def is_sent(self, sop_uid: str, destination: str) -> bool:
        with self._lock:
            return (
                self._db.execute(
                    "SELECT 1 FROM sent WHERE sop_uid=? AND destination=?", (sop_uid, destination)
                ).fetchone()
                is not None
            )

    def get_value(self, key: str, default: str = "") -> str:
        with self._lock:
            row = self._db.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
        return row["value"] if row else default

    def set_value(self, key: str, value: str) -> None:
        with self._tx():
            self._db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?,?)", (key, value))

    # -- reading -------------------------------------------------------------------------

    def get(self, study_uid: str) -> StudyRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM studies WHERE study_uid=?", (study_uid,)
            ).fetchone()
        return record(row) if row else None

    def studies(self) -> list[StudyRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM studies ORDER BY created_at").fetchall()
        return [record(r) for r in rows]

    def transitions(self, study_uid: str) -> list[Transition]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM transitions WHERE study_uid=? ORDER BY id", (study_uid,)
            ).fetchall()
        return [
            Transition(r["study_uid"], r["from_state"], r["to_state"], r["at"], r["note"])
            for r in rows
        ]

    def sent_uids(self, study_uid: str) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT sop_uid FROM sent WHERE study_uid=? ORDER BY sent_at", (study_uid,)
            ).fetchall()
        return [r["sop_uid"] for r in rows]

    def instance_uids(self, study_uid: str) -> set[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT sop_uid FROM instances WHERE study_uid=?", (study_uid,)
            ).fetchall()
        return {r["sop_uid"] for r in rows}

    def quarantined_count(self) -> int:
        with self._lock:
            return self._db.execute(
                "SELECT COUNT(*) FROM studies WHERE state=? AND quarantined=1", (FAILED,)
            ).fetchone()[0]

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT state, COUNT(*) AS n FROM studies GROUP BY state"
            ).fetchall()
        return {r["state"]: r["n"] for r in rows}
