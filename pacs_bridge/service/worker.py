"""The worker: analyse each complete study once, send its results, retry, or fail visibly.

Exactly-once comes from three facts, not from luck: a study is claimed by a conditional
journal update (queued → analysing); the result objects are fsynced to the spool before
the study moves to "sending", so a crash after analysis never repeats it; and every object
the destination confirmed is journalled, so a crash while sending only re-sends the rest
(with the same, deterministic UIDs, which a PACS ignores if it saw them already).

A poison study cannot stop the others: it is analysed in a child process
(`pacs_bridge.service.analysis`), whose death fails that attempt only; each attempt is
counted in the journal *before* it runs, so even an analysis that kills the bridge itself
(in-process mode, or the machine's OOM killer) uses up its attempts across restarts; a
study claimed with its attempts used up by crashes is quarantined without running: failed,
"the analyser crashed N times on this study", instances kept, until `bridge retry`.
"""

from __future__ import annotations

import logging
import time

from pydicom.dataset import Dataset

from common.errors import NetworkError, RadAssistError, WorkerCrashError
from pacs_bridge.service.analysis import (  # noqa: F401 (re-exported for callers)
    Analyzer,
    AnalyzerError,
    InProcessAnalysis,
    IsolatedAnalysis,
    load_analyzer,
    make_analysis,
)
from pacs_bridge.service.audit import SERIOUS_FAILURE, AuditLog, peer, study_object
from pacs_bridge.service.config import AnalysisConfig, QueueConfig
from pacs_bridge.service.journal import (
    ANALYSING,
    FAILED,
    QUEUED,
    SENDING,
    SENT,
    SKIPPED,
    Journal,
    StudyRecord,
)
from pacs_bridge.service.metrics import METRICS
from pacs_bridge.service.queue import JournalQueue, WorkQueue
from pacs_bridge.service.receive import short_uid
from pacs_bridge.service.routing import Router
from pacs_bridge.service.sender import DimseSender, StowSender
from pacs_bridge.service.spool import Spool

log = logging.getLogger("radassist.bridge.worker")

# journal keys (kv) of the last success, for /health (shared by every worker process)
LAST_ANALYSIS_KEY = "last_analysis_at"
LAST_SEND_KEY = "last_send_at"


class Worker:
    def __init__(
        self,
        cfg: AnalysisConfig,
        spool: Spool,
        journal: Journal,
        router: Router,
        sender: DimseSender | StowSender | None,
        audit: AuditLog | None = None,
        queue: WorkQueue | None = None,
    ) -> None:
        self.cfg = cfg
        # where studies are claimed; default: the journal itself, leased to this process
        self.queue = queue or JournalQueue(journal, QueueConfig().lease_seconds)
        self.audit = audit or AuditLog(None)
        # the destination as the last delivery attempt found it (None: not tried yet)
        self.destination_error: str | None = None
        self.spool = spool
        self.journal = journal
        self.router = router
        self.sender = sender
        self.analysis = make_analysis(cfg, spool, router)
        self.current: str | None = None  # the study being analysed now
        self._stopping = False

    def describe(self) -> dict:
        """How analysis runs (isolated child or in-process) and what it is doing now."""
        return {**self.analysis.describe(),
                "analysing": short_uid(self.current) if self.current else None}

    def stop(self) -> None:
        """Shutting down: an analysis in progress is abandoned (its child killed) and the
        study queued again without counting the attempt; called from another thread."""
        self._stopping = True
        self.analysis.abort()

    def close(self) -> None:
        self.analysis.close()

    def abandon_current(self) -> None:
        """At shutdown, an in-process analysis still running: queued again, not counted."""
        uid = self.current
        if uid is None:
            return
        rec = self.journal.get(uid)
        if rec is not None and rec.state == ANALYSING:
            self.journal.transition(uid, QUEUED, expect=(ANALYSING,),
                                    note="analysis stopped by shutdown (attempt not counted)",
                                    attempts=max(rec.attempts - 1, 0), next_attempt_at=0)

    def run_once(self, now: float | None = None) -> str | None:
        """Work on one claimable study; returns its UID, or None if nothing was due."""
        now = time.time() if now is None else now
        with self.queue.claim(now) as rec:
            if rec is None:
                return None
            self._work(rec)
            return rec.study_uid

    def _work(self, rec: StudyRecord) -> None:
        if rec.state == QUEUED:
            if rec.attempts >= self.cfg.max_attempts:
                self._quarantine(rec)  # its attempts were used up by analyses that died
                return
            if not self._analyse(rec):
                return
        else:
            self.journal.update(rec.study_uid, attempts=rec.attempts + 1)
        self._send(rec.study_uid)

    # -- analysis --------------------------------------------------------------------------

    def _analyse(self, rec: StudyRecord) -> bool:
        uid, attempt = rec.study_uid, rec.attempts + 1
        # the attempt is counted (and committed) before anything runs: an analysis that
        # kills this very process has used it up all the same
        if not self.journal.transition(
            uid, ANALYSING, expect=(QUEUED,), note=f"attempt {attempt}", attempts=attempt
        ):
            return False  # someone else moved it (e.g. a new instance arrived)
        self.current = uid
        started = time.perf_counter()
        try:
            outcome = self.analysis.run(uid)
            if outcome.unreadable:
                log.warning("study %s: %d spooled file(s) unreadable", short_uid(uid),
                            outcome.unreadable)
            self.journal.update(uid, route=outcome.route)
            if not outcome.analysed:
                self.journal.transition(uid, SKIPPED, expect=(ANALYSING,), note=outcome.route)
                log.info("study %s skipped by routing (%s)", short_uid(uid), outcome.route)
                return False
            objects = list(outcome.objects)
            self._check_results(uid, objects)
            self.spool.clear_results(uid)
            for ds in objects:
                self.spool.store_result(uid, ds)
        except Exception as exc:
            if self._stopping and isinstance(exc, WorkerCrashError):
                self.journal.transition(  # the shutdown killed the child, not the study
                    uid, QUEUED, expect=(ANALYSING,), attempts=rec.attempts, next_attempt_at=0,
                    note="analysis stopped by shutdown (attempt not counted)")
                return False
            self._retry_or_fail(uid, attempt, exc, phase=ANALYSING, back_to=QUEUED)
            return False
        finally:
            self.current = None
        elapsed = time.perf_counter() - started
        log.info("study %s analysed in %.1f s: %d result object(s)", short_uid(uid), elapsed,
                 len(objects))
        METRICS.analysed.inc()
        METRICS.analysis_seconds.observe(elapsed)
        self.journal.set_value(LAST_ANALYSIS_KEY, repr(time.time()))
        return self.journal.transition(
            uid,
            SENDING,
            expect=(ANALYSING,),
            note=f"{len(objects)} result object(s) spooled" + (
                f"; {len(outcome.set_aside)} instance(s) set aside: decoding them killed the "
                "analysis" if outcome.set_aside else ""),
            result_uids=[str(ds.SOPInstanceUID) for ds in objects],
            sending_since=time.time(),
        )

    def _quarantine(self, rec: StudyRecord, detail: str = "") -> None:
        uid = rec.study_uid
        note = (f"quarantined after {rec.attempts} attempt(s), {rec.crashes} ended by a dead "
                f"analysis process{': ' + detail if detail else ''}; not run again until "
                "`radassist bridge retry`")
        expect = (ANALYSING,) if rec.state == ANALYSING else (QUEUED,)
        if self.journal.quarantine(uid, expect=expect, note=note[:500]):
            METRICS.failed.inc()
            log.error("study %s quarantined: the analyser crashed %d time(s) on it in %d "
                      "attempt(s)%s; its instances are kept, `radassist bridge retry` releases "
                      "it", short_uid(uid), max(rec.crashes, 1), rec.attempts,
                      f", the last: {detail}" if detail else "")

    @staticmethod
    def _check_results(uid: str, objects: list[Dataset]) -> None:
        if not objects:
            raise AnalyzerError(uid, "analyzer returned no result objects")
        for ds in objects:
            if not isinstance(ds, Dataset) or "SOPInstanceUID" not in ds:
                raise AnalyzerError(uid, "analyzer returned something that is not a DICOM object")
            if str(ds.get("StudyInstanceUID", "")) != uid:
                raise AnalyzerError(uid, "analyzer returned an object of another study")

    # -- sending ---------------------------------------------------------------------------

    def _send(self, uid: str) -> None:
        rec = self.journal.get(uid)
        if rec is None or rec.state != SENDING:
            return
        if self.sender is None:
            self._retry_or_fail(
                uid,
                rec.attempts,
                NetworkError("config", "no [destination] configured"),
                phase=SENDING,
                back_to=SENDING,
            )
            return
        name = self.sender.name
        try:
            objects = self.spool.load_results(uid)
            pending = [ds for ds in objects if not self.journal.is_sent(ds.SOPInstanceUID, name)]
            if len(pending) < len(objects):
                log.info(
                    "study %s: %d object(s) already sent, not sent again",
                    short_uid(uid),
                    len(objects) - len(pending),
                )
            self.sender.send(pending, lambda sop: self.journal.mark_sent(uid, sop, name))
        except Exception as exc:
            self.destination_error = (str(exc) if isinstance(exc, RadAssistError)
                                      else type(exc).__name__)[:200]
            METRICS.send_errors.inc()
            self._retry_or_fail(uid, rec.attempts, exc, phase=SENDING, back_to=SENDING)
            return
        self.destination_error = None
        self.journal.set_value(LAST_SEND_KEY, repr(time.time()))
        METRICS.sent.inc(len(pending))
        METRICS.latency_seconds.observe(max(0.0, time.time() - rec.last_instance_at))
        self.journal.transition(
            uid, SENT, expect=(SENDING,), note=f"{len(objects)} object(s) at {name}"
        )
        self.audit.record("export", participants=[
            peer(self._calling_ae(), None, requestor=True),
            peer(name, None, requestor=False)],
            objects=[study_object(uid, instances=len(pending))])
        log.info("study %s: results sent to %s", short_uid(uid), name)

    def _calling_ae(self) -> str:
        return str(getattr(getattr(self.sender, "cfg", None), "calling_ae_title", "")
                   or "RADASSIST")

    def _retry_or_fail(
        self, uid: str, attempt: int, exc: Exception, *, phase: str, back_to: str
    ) -> None:
        error = str(exc) if isinstance(exc, RadAssistError) else f"{type(exc).__name__}: {exc}"
        error = error[:500]
        logged = error.replace(uid, short_uid(uid))  # logs carry no full UIDs
        # a child that died (or ran out of time) on this study; one that could not even start
        # is the set-up's failure, not the study's: an ordinary failed attempt
        crashed = (phase == ANALYSING and isinstance(exc, WorkerCrashError)
                   and exc.reason != "start_failed")
        if crashed:
            rec = self.journal.get(uid)
            crashes = (rec.crashes if rec is not None else 0) + 1
            self.journal.update(uid, crashes=crashes)
            if attempt >= self.cfg.max_attempts and rec is not None:
                self.journal.update(uid, last_error=error)
                self._quarantine(self.journal.get(uid) or rec, detail=logged)
                return
        if phase == SENDING:
            # delivery is retried until the results are too old, not a number of times: a
            # PACS down for an hour must get its results when it is back
            rec = self.journal.get(uid)
            since = (rec.sending_since or rec.updated_at) if rec is not None else time.time()
            give_up = time.time() - since >= self.cfg.delivery_max_age_hours * 3600.0
        else:
            give_up = attempt >= self.cfg.max_attempts
        if give_up:
            self.journal.transition(
                uid, FAILED, expect=(phase,), note=f"gave up after {attempt} attempt(s)",
                last_error=error,
            )
            log.error("study %s failed after %d attempt(s): %s", short_uid(uid), attempt, logged)
            METRICS.failed.inc()
            if phase == SENDING:
                self.audit.record("export", outcome=SERIOUS_FAILURE, detail=logged,
                                  objects=[study_object(uid)])
            return
        delay = min(self.cfg.backoff_seconds * 2 ** (attempt - 1), self.cfg.backoff_max_seconds)
        self.journal.transition(
            uid,
            back_to,
            expect=(phase,),
            note=f"attempt {attempt} failed; retry in {delay:g} s",
            last_error=error,
            next_attempt_at=time.time() + delay,
        )
        (log.error if crashed else log.warning)(
            "study %s: attempt %d failed (%s); retry in %g s",
            short_uid(uid), attempt, logged, delay,
        )
