"""The work queue several bridge worker processes take studies from, one study each at a time.

- `JournalQueue` (the embedded default): the SQLite journal is the queue. A claim leases the
  oldest due study to the calling process in one write transaction (`Journal.claim`); a
  lease ends when its process dies (same host) or its time is up (another host).
- `PostgresQueue` (`[queue] url = "postgresql://..."`): the listener publishes due studies
  into a table; a worker locks one row with `SELECT ... FOR UPDATE SKIP LOCKED` and keeps
  the transaction open while it works, so no other worker can take it, and a worker that
  dies (its connection closes) releases it at once. The journal still records each study's
  state, and its conditional transitions (queued → analysing) stay the last safeguard.

Both give the worker a `StudyRecord` inside `with queue.claim(now) as rec:`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Protocol

from common.errors import RadAssistError
from pacs_bridge.service.config import QueueConfig
from pacs_bridge.service.journal import (
    ANALYSING,
    QUEUED,
    SENDING,
    Journal,
    StudyRecord,
    process_owner,
)
from pacs_bridge.service.receive import short_uid

log = logging.getLogger("radassist.bridge.queue")

FULL_PUBLISH_SECONDS = 60.0  # the listener re-publishes every due study this often
_TABLE = "radassist_bridge_queue"


class QueueError(RadAssistError):
    """The configured work queue cannot be reached or used."""

    reason = "queue"


class WorkQueue(Protocol):
    def publish(self, now: float | None = None) -> int: ...

    def claim(self, now: float) -> contextlib.AbstractContextManager[StudyRecord | None]: ...

    def close(self) -> None: ...


class JournalQueue:
    """The SQLite journal as the queue (one host; any number of worker processes)."""

    def __init__(self, journal: Journal, lease_seconds: float, owner: str | None = None):
        self.journal = journal
        self.lease_seconds = lease_seconds
        self.owner = owner or process_owner()

    def publish(self, now: float | None = None) -> int:
        return 0  # the journal is the queue: queued studies are claimable as they are

    @contextlib.contextmanager
    def claim(self, now: float) -> Iterator[StudyRecord | None]:
        rec = self.journal.claim(self.owner, now, self.lease_seconds)
        try:
            yield rec
        finally:
            if rec is not None:
                self.journal.release(rec.study_uid, self.owner)

    def close(self) -> None:
        pass


class PostgresQueue:
    """A PostgreSQL table of due studies, claimed with FOR UPDATE SKIP LOCKED."""

    def __init__(self, url: str, journal: Journal, lease_seconds: float,
                 owner: str | None = None) -> None:
        import psycopg

        self.journal = journal
        self.lease_seconds = lease_seconds
        self.owner = owner or process_owner()
        try:
            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
            self._conn.execute(
                f"CREATE TABLE IF NOT EXISTS {_TABLE} ("
                " study_uid TEXT PRIMARY KEY, ready_at DOUBLE PRECISION NOT NULL)")
        except psycopg.Error as exc:
            raise QueueError(_redacted(url), f"cannot use the PostgreSQL queue: {exc}") from exc
        self._published_until = 0.0
        self._next_full = 0.0

    def publish(self, now: float | None = None) -> int:
        """Listener side: every study the journal has due (queued or sending) into the table;
        rows already there stay (a worker may hold them). Changes since the last call each
        time, everything once a minute (e.g. after a restart of PostgreSQL)."""
        now = time.time() if now is None else now
        since = 0.0 if now >= self._next_full else self._published_until - 5.0
        if since == 0.0:
            self._next_full = now + FULL_PUBLISH_SECONDS
        records = self.journal.changed_since(since, (QUEUED, SENDING))
        self._published_until = now
        if not records:
            return 0
        with self._conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {_TABLE} (study_uid, ready_at) VALUES (%s, %s)"
                " ON CONFLICT (study_uid) DO NOTHING",
                [(r.study_uid, r.next_attempt_at) for r in records])
        return len(records)

    @contextlib.contextmanager
    def claim(self, now: float) -> Iterator[StudyRecord | None]:
        with self._conn.transaction():
            row = self._conn.execute(
                f"SELECT study_uid FROM {_TABLE} WHERE ready_at <= %s ORDER BY ready_at"
                " LIMIT 1 FOR UPDATE SKIP LOCKED", (now,)).fetchone()
            if row is None:
                yield None
                return
            uid = row[0]
            rec = self._take(uid, now)
            if rec is None:
                yield None
                return
            self.journal.lease(uid, self.owner, now + self.lease_seconds)
            try:
                yield rec
            finally:
                self.journal.release(uid, self.owner)
                self._settle(uid)

    def _take(self, uid: str, now: float) -> StudyRecord | None:
        """The journal record of a locked row, if there is work to do on it now."""
        rec = self.journal.get(uid)
        if rec is not None and rec.state == ANALYSING:
            # the row was free, so whoever was analysing it is gone
            self.journal.requeue_interrupted(
                uid, "analysis interrupted: its worker is gone (counted as a crash)")
            log.warning("study %s: analysis interrupted, queued again", short_uid(uid))
            rec = self.journal.get(uid)
        if rec is None or rec.state not in (QUEUED, SENDING) or rec.next_attempt_at > now:
            self._settle(uid)
            return None
        return rec

    def _settle(self, uid: str) -> None:
        """After work: the row waits for the study's next attempt, or goes when it is done."""
        rec = self.journal.get(uid)
        if rec is not None and rec.state in (QUEUED, SENDING):
            self._conn.execute(f"UPDATE {_TABLE} SET ready_at=%s WHERE study_uid=%s",
                               (rec.next_attempt_at, uid))
        else:
            self._conn.execute(f"DELETE FROM {_TABLE} WHERE study_uid=%s", (uid,))

    def close(self) -> None:
        self._conn.close()


def make_queue(cfg: QueueConfig, journal: Journal) -> JournalQueue | PostgresQueue:
    if cfg.url:
        return PostgresQueue(cfg.url, journal, cfg.lease_seconds)
    return JournalQueue(journal, cfg.lease_seconds)


def _redacted(url: str) -> str:
    """A connection URL without its password, for messages."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"
