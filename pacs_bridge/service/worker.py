"""The worker: analyse each complete study once, send its results, retry, or fail visibly.

Exactly-once comes from three facts, not from luck: a study is claimed by a conditional
journal update (queued → analysing); the result objects are fsynced to the spool before
the study moves to "sending", so a crash after analysis never repeats it; and every object
the destination confirmed is journalled, so a crash while sending only re-sends the rest
(with the same, deterministic UIDs, which a PACS ignores if it saw them already).
"""

from __future__ import annotations

import gc
import importlib
import logging
import time
from collections.abc import Callable, Sequence

from pydicom.dataset import Dataset

from common.errors import NetworkError, RadAssistError
from pacs_bridge.ingest import group, read_instance
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
from pacs_bridge.study import Study

log = logging.getLogger("radassist.bridge.worker")

Analyzer = Callable[..., Sequence[Dataset]]


class AnalyzerError(RadAssistError):
    """The configured analyzer could not be imported or returned unusable objects."""

    reason = "analyzer"


def load_analyzer(dotted: str) -> Analyzer:
    """Import `package.module:function` (lazily: importing imaging loads torch)."""
    module_name, _, attr = dotted.partition(":")
    try:
        module = importlib.import_module(module_name)
        fn = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise AnalyzerError(dotted, f"cannot import analyzer ({exc})") from exc
    if not callable(fn):
        raise AnalyzerError(dotted, "analyzer is not callable")
    return fn


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
        self._analyzer: Analyzer | None = None
        self._frozen = False

    def analyzer(self) -> Analyzer:
        if self._analyzer is None:
            self._analyzer = load_analyzer(self.cfg.analyzer)
        return self._analyzer

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
            if not self._analyse(rec):
                return
        else:
            self.journal.update(rec.study_uid, attempts=rec.attempts + 1)
        self._send(rec.study_uid)

    # -- analysis --------------------------------------------------------------------------

    def _analyse(self, rec: StudyRecord) -> bool:
        uid, attempt = rec.study_uid, rec.attempts + 1
        if not self.journal.transition(
            uid, ANALYSING, expect=(QUEUED,), note=f"attempt {attempt}", attempts=attempt
        ):
            return False  # someone else moved it (e.g. a new instance arrived)
        try:
            study = self._load_study(uid)
            decision = self.router.decide(study)
            self.journal.update(uid, route=decision.reason)
            if not decision.analyse:
                self.journal.transition(uid, SKIPPED, expect=(ANALYSING,), note=decision.reason)
                log.info("study %s skipped by routing (%s)", short_uid(uid), decision.reason)
                return False
            started = time.perf_counter()
            objects = list(self.analyzer()(study, None))
            if not self._frozen:
                # The first analysis loads the model, text encoder and knowledge base: close
                # to a million long-lived objects that every full garbage collection would
                # walk again while instances arrive (measured: ~20 % more CPU per C-STORE).
                gc.freeze()
                self._frozen = True
            self._check_results(uid, objects)
            self.spool.clear_results(uid)
            for ds in objects:
                self.spool.store_result(uid, ds)
        except Exception as exc:
            self._retry_or_fail(uid, attempt, exc, phase=ANALYSING, back_to=QUEUED)
            return False
        log.info(
            "study %s analysed in %.1f s: %d result object(s)",
            short_uid(uid),
            time.perf_counter() - started,
            len(objects),
        )
        METRICS.analysed.inc()
        METRICS.analysis_seconds.observe(time.perf_counter() - started)
        return self.journal.transition(
            uid,
            SENDING,
            expect=(ANALYSING,),
            note=f"{len(objects)} result object(s) spooled",
            result_uids=[str(ds.SOPInstanceUID) for ds in objects],
            sending_since=time.time(),
        )

    def _load_study(self, uid: str) -> Study:
        # instance_files() waits until instances acknowledged a moment ago left their slots;
        # every file is read through the spool, which opens sealed (encrypted) ones
        instances, unreadable = [], 0
        for path in self.spool.instance_files(uid):
            try:
                instances.append(read_instance(str(path), self.spool.read(path)))
            except RadAssistError:
                unreadable += 1
        if unreadable:
            log.warning("study %s: %d spooled file(s) unreadable", short_uid(uid), unreadable)
        for study in group(instances):
            if study.study_instance_uid == uid:
                return study
        raise AnalyzerError(str(self.spool.study_dir(uid)), "no readable instance in the spool")

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
        log.warning(
            "study %s: attempt %d failed (%s); retry in %g s",
            short_uid(uid), attempt, logged, delay,
        )
