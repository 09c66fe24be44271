"""Wiring: one process per spool runs the listener, the loop (completion + worker),
the status endpoint and optionally the DICOMweb watcher. More worker processes
(`WorkerService`, `radassist bridge worker`) may take studies from the same queue; the
spool lock excludes only a second listener.

Start-up first recovers: half-written spool files are removed, interrupted analyses are
queued again (each counted as a crash: a study whose attempts are used up is quarantined
when next claimed, never run again by a restart), and spooled studies missing from the
journal are journalled, so a process killed at any moment resumes without losing or
repeating work.

`/health` says what it checked (`health()`): the listener accepts, the analysis loop is
alive (and its analysis child, when one is working), the destination answers, no study is
failed or quarantined; with the times of the last successful analysis and delivery.
"""

from __future__ import annotations

import fcntl
import gc
import io
import json
import logging
import os
import threading
import time
from pathlib import Path

from pydicom import dcmread

from common.errors import RadAssistError
from pacs_bridge.ingest import read_instance
from pacs_bridge.service.audit import AuditLog
from pacs_bridge.service.completion import CompletionDetector
from pacs_bridge.service.config import BridgeConfig
from pacs_bridge.service.journal import FAILED, FINISHED, SENDING, Journal
from pacs_bridge.service.metrics import METRICS
from pacs_bridge.service.queue import make_queue
from pacs_bridge.service.receive import Receiver, lacks_pixels
from pacs_bridge.service.routing import Router
from pacs_bridge.service.scp import StorageScp
from pacs_bridge.service.sender import make_sender
from pacs_bridge.service.spool import Spool, load_key
from pacs_bridge.service.status_http import StatusServer
from pacs_bridge.service.watch import Watcher
from pacs_bridge.service.worker import LAST_ANALYSIS_KEY, LAST_SEND_KEY, Worker

log = logging.getLogger("radassist.bridge")

RUNTIME_FILE = "runtime.json"
PURGE_INTERVAL_SECONDS = 60.0
DESTINATION_CHECK_SECONDS = 30.0  # /health probes the destination at most this often
LOOP_STALL_SECONDS = 120.0  # an idle loop that has not turned for this long is stuck


class BridgeBusyError(RadAssistError):
    """Another bridge process already owns this spool."""

    reason = "busy"


class BridgeService:
    def __init__(self, cfg: BridgeConfig, *, watch: bool = False, loop_interval: float = 0.1):
        self.cfg = cfg
        self.loop_interval = loop_interval
        key = load_key(cfg.storage.key_file) if cfg.storage.key_file else None
        self.spool = Spool(cfg.storage.spool_directory, key=key)
        self._lock_fd: int | None = None
        self.journal = Journal(cfg.storage.journal_path)
        self.audit = AuditLog(cfg.storage.audit_path, source_id=cfg.scp.ae_title)
        self.receiver = Receiver(self.spool, self.journal)
        self.completion = CompletionDetector(self.journal, cfg.completion.inactivity_seconds)
        sender = make_sender(cfg.destination) if cfg.destination else None
        self.queue = make_queue(cfg.queue, self.journal)
        self.worker = Worker(cfg.analysis, self.spool, self.journal, Router(cfg.routing), sender,
                             self.audit, self.queue)
        self.scp = StorageScp(cfg.scp, self.receiver, self.audit) if cfg.scp.enabled else None
        METRICS.watch_journal(self.journal.counts)
        self._next_purge = 0.0
        self.watcher = None
        if watch:
            if cfg.source is None or not cfg.source.url:
                raise RadAssistError("config", "watch needs [source] url (a DICOMweb PACS)")
            self.watcher = Watcher(cfg.source, self.journal, self.receiver, self.audit)
        self.http: StatusServer | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.started_at = 0.0
        self._loop_beat = 0.0  # when the analysis loop last went round
        self._probe_lock = threading.Lock()
        self._probe: tuple[float, str | None] = (0.0, None)  # (when, error or None)

    # -- life cycle ------------------------------------------------------------------------

    def _take_lock(self) -> None:
        path = self.spool.root / "bridge.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise BridgeBusyError(
                str(self.spool.root), "another bridge process is running on this spool"
            ) from None
        self._lock_fd = fd

    def recover(self) -> dict[str, int]:
        counts = self.spool.recover(self._valid_instance)
        counts.update(self.journal.recover_after_restart())
        counts["journalled_from_spool"] = self._journal_spooled_files()
        if self.cfg.analysis.requeue_failed_on_restart:
            counts["failed_requeued"] = len(self.journal.requeue_failed())
        if any(counts.values()):
            log.info("recovered after restart: %s", counts)
        return counts

    @staticmethod
    def _valid_instance(data: bytes) -> tuple[str, str] | None:
        try:
            inst = read_instance("spool-slot", data)
            if lacks_pixels(inst):
                return None
            return str(inst.dataset.StudyInstanceUID), inst.sop_instance_uid
        except Exception:
            return None

    def _journal_spooled_files(self) -> int:
        """Spooled instances the journal does not know (a kill between fsync and journal)."""
        added = 0
        for folder in self.spool.study_uids_on_disk():
            rec = self.journal.get(folder)
            if rec is not None and rec.state in FINISHED:
                continue
            known = self.journal.instance_uids(folder) if rec is not None else set()
            for path in self.spool.studies.joinpath(folder).glob("*.dcm"):
                if path.stem in known:
                    continue
                try:
                    ds = dcmread(io.BytesIO(self.spool.read(path)), stop_before_pixels=True)
                    self.journal.note_instance(str(ds.StudyInstanceUID), str(ds.SOPInstanceUID))
                    added += 1
                except Exception as exc:
                    log.warning("spooled file %s unreadable: %s", path.name, type(exc).__name__)
        return added

    def start(self) -> None:
        self._take_lock()
        self.recover()
        self.spool.start()
        self.started_at = time.time()
        if self.scp is not None:
            self.scp.start()
        if self.cfg.status_http.enabled:
            h = self.cfg.status_http
            self.http = StatusServer(h.host, h.port, self.health, self.status, METRICS.render)
            self.http.start()
            log.info("status endpoint http://%s:%d/status", h.host, self.http.port)
        self._write_runtime()
        self.audit.record("application", detail="bridge started")
        gc.freeze()  # start-up objects live for the whole run: keep them out of every GC pass
        self._spawn("bridge-loop", self._loop)
        if self.watcher is not None:
            self._spawn("bridge-watch", self._watch_loop)

    def _spawn(self, name: str, target) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _write_runtime(self) -> None:
        info = {
            "pid": os.getpid(),
            "dicom_port": self.scp.port if self.scp else None,
            "http_port": self.http.port if self.http else None,
            "started_at": self.started_at,
        }
        tmp = self.spool.root / (RUNTIME_FILE + ".tmp")
        tmp.write_text(json.dumps(info))
        os.replace(tmp, self.spool.root / RUNTIME_FILE)

    def stop(self) -> None:
        self._stop.set()
        if self.scp is not None:
            self.scp.stop()
        self.worker.stop()  # an analysis child at work is killed; its study queued again
        for t in self._threads:
            t.join(timeout=30)
        if any(t.is_alive() for t in self._threads):
            self.worker.abandon_current()  # in-process analysis still running: not counted
        self.worker.close()
        if self.http is not None:
            self.http.stop()
        self.spool.stop()
        (self.spool.root / RUNTIME_FILE).unlink(missing_ok=True)
        self.queue.close()
        self.journal.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        gc.unfreeze()  # an embedding process (e.g. tests) gets normal collection back

    def wait(self, timeout: float | None = None) -> bool:
        return self._stop.wait(timeout)

    def request_stop(self) -> None:
        self._stop.set()

    # -- loops -----------------------------------------------------------------------------

    def purge(self, now: float | None = None) -> int:
        """Retention: remove finished studies' spooled files once they are older than
        `retention_hours`, then the oldest finished ones while the spool is over `max_bytes`.
        The journal keeps the study's record (state, timestamps), never its pixels."""
        now = time.time() if now is None else now
        storage = self.cfg.storage
        removed = 0
        for rec in self.journal.purgeable(now - storage.retention_hours * 3600.0):
            self.spool.remove_study(rec.study_uid)
            self.journal.update(rec.study_uid, purged_at=now)
            removed += 1
        if storage.max_bytes:
            size = self.spool.size_bytes()
            for rec in self.journal.purgeable(now + 1.0):
                if size <= storage.max_bytes:
                    break
                size -= self.spool.remove_study(rec.study_uid)
                self.journal.update(rec.study_uid, purged_at=now)
                removed += 1
        if removed:
            log.info("retention: %d finished stud(ies) purged from the spool", removed)
        return removed

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._loop_beat = time.time()
            try:
                if time.time() >= self._next_purge:
                    self._next_purge = time.time() + PURGE_INTERVAL_SECONDS
                    self.purge()
                self.completion.check()
                self.queue.publish()
                busy = (self.cfg.queue.analyse_in_listener
                        and self.worker.run_once() is not None)
            except Exception:  # the loop must survive anything; the study stays journalled
                log.exception("bridge loop error")
                busy = False
            if not busy:
                self._stop.wait(self.loop_interval)

    def _watch_loop(self) -> None:
        assert self.watcher is not None
        while not self._stop.is_set():
            try:
                self.watcher.poll_once()
            except RadAssistError as exc:
                log.warning("watch poll failed: %s", exc)
            except Exception:
                log.exception("watch poll error")
            self._stop.wait(self.cfg.watch.interval_seconds)

    # -- reporting -------------------------------------------------------------------------

    def health(self) -> dict:
        """"ok" only when every check holds, else "degraded" with one problem per failed
        check (/health answers 503). Checked: the DICOM listener accepts; the analysis loop
        turns (and what its child process is doing); the destination answers (the last
        delivery, or a C-ECHO / HTTP request at most every 30 s); no study is failed or
        quarantined. The last successful analysis and delivery are reported, not judged."""
        now = time.time()
        problems: list[str] = []
        listener = self._check_listener()
        worker = self._check_worker(now)
        destination = self._check_destination(now)
        counts = self.journal.counts()
        quarantined = self.journal.quarantined_count()
        failed = counts.get(FAILED, 0) - quarantined
        studies = {"ok": not failed and not quarantined, "failed": failed,
                   "quarantined": quarantined, "waiting_to_send": counts.get(SENDING, 0)}
        for name, check in (("listener", listener), ("worker", worker),
                            ("destination", destination)):
            if not check["ok"]:
                problems.append(f"{name} {check['detail']}")
        if failed:
            problems.append(f"{failed} failed stud(ies); see `radassist bridge failed`")
        if quarantined:
            problems.append(f"{quarantined} quarantined stud(ies): the analyser crashed on "
                            "them; `radassist bridge retry STUDY` releases one")
        if counts.get(SENDING) and not destination["ok"]:
            problems.append(f"{counts[SENDING]} stud(ies) waiting for the destination")
        return {
            "status": "degraded" if problems else "ok",
            "problems": problems,
            "checks": {"listener": listener, "worker": worker, "destination": destination,
                       "studies": studies},
            "last_analysis_at": self._kv_time(LAST_ANALYSIS_KEY),
            "last_send_at": self._kv_time(LAST_SEND_KEY),
            "ae_title": self.cfg.scp.ae_title,
            "dicom_port": self.scp.port if self.scp else None,
            "uptime_s": round(now - self.started_at, 1),
        }

    def _kv_time(self, key: str) -> float | None:
        try:
            return float(self.journal.get_value(key)) or None
        except ValueError:
            return None

    def _check_listener(self) -> dict:
        if self.scp is None:
            return {"ok": True, "detail": "no DICOM listener configured ([scp] enabled = false)"}
        if self.scp.is_up():
            return {"ok": True, "detail": f"accepting on {self.cfg.scp.host}:{self.scp.port}"}
        return {"ok": False, "detail": "down: not accepting associations"}

    def _check_worker(self, now: float) -> dict:
        if not self.cfg.queue.analyse_in_listener:
            return {"ok": True, "detail": "analysis by `radassist bridge worker` processes"}
        info = self.worker.describe()
        loop = next((t for t in self._threads if t.name == "bridge-loop"), None)
        if loop is None or not loop.is_alive():
            return {"ok": False, "detail": "down: the analysis loop is not running", **info}
        idle = now - self._loop_beat
        limit = LOOP_STALL_SECONDS + (self.cfg.analysis.study_seconds if info.get("analysing")
                                      else 0.0)
        if idle > limit:
            return {"ok": False, "detail": f"stuck: the analysis loop has not turned for "
                    f"{idle:.0f} s", **info}
        where = ("in a child process" if info["mode"] == "isolated" else "in this process")
        return {"ok": True, "detail": f"analysis loop running; studies analysed {where}",
                **info}

    def _check_destination(self, now: float) -> dict:
        sender = self.worker.sender
        if sender is None:
            return {"ok": True, "detail": "no [destination] configured"}
        if self.worker.destination_error is not None:
            return {"ok": False, "name": sender.name,
                    "detail": f"unreachable: {self.worker.destination_error}"}
        with self._probe_lock:
            at, error = self._probe
            if now - at >= DESTINATION_CHECK_SECONDS:
                try:
                    sender.echo(timeout=3.0)
                    error = None
                except RadAssistError as exc:
                    error = exc.message
                except Exception as exc:  # noqa: BLE001 - reported, never raised
                    error = type(exc).__name__
                at = now
                self._probe = (at, error)
        if error is not None:
            return {"ok": False, "name": sender.name, "detail": f"unreachable: {error}",
                    "checked_at": at}
        return {"ok": True, "name": sender.name, "detail": "answers", "checked_at": at}

    def status(self) -> dict:
        return {
            **self.health(),
            "received": self.receiver.counts(),
            "states": self.journal.counts(),
            "studies": [r.as_json() for r in self.journal.studies()],
        }


class WorkerService:
    """A worker process without a listener: takes studies from the shared queue, analyses
    and sends them (`radassist bridge worker`). Any number may run beside one listener."""

    def __init__(self, cfg: BridgeConfig, *, loop_interval: float = 0.1) -> None:
        self.cfg = cfg
        self.loop_interval = loop_interval
        self.spool = Spool(cfg.storage.spool_directory)
        self.journal = Journal(cfg.storage.journal_path)
        self.audit = AuditLog(cfg.storage.audit_path, source_id=cfg.scp.ae_title)
        self.queue = make_queue(cfg.queue, self.journal)
        sender = make_sender(cfg.destination) if cfg.destination else None
        self.worker = Worker(cfg.analysis, self.spool, self.journal, Router(cfg.routing), sender,
                             self.audit, self.queue)
        self._stop = threading.Event()

    def run(self) -> None:
        self.audit.record("application", detail="bridge worker started")
        while not self._stop.is_set():
            try:
                busy = self.worker.run_once() is not None
            except Exception:  # the loop must survive anything; the study stays journalled
                log.exception("bridge worker loop error")
                busy = False
            if not busy:
                self._stop.wait(self.loop_interval)
        self.worker.close()
        self.queue.close()
        self.journal.close()

    def request_stop(self) -> None:
        self._stop.set()
        self.worker.stop()  # an analysis child at work is killed; its study queued again


def read_runtime(spool_dir: Path) -> dict | None:
    try:
        return json.loads((Path(spool_dir) / RUNTIME_FILE).read_text())
    except (OSError, ValueError):
        return None
