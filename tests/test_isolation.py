"""A child's death is a typed failure of one call (common.isolation), and a study that kept
killing its analyser is quarantined from the journal's counts, not run again (issue 17).

Real child processes (spawn) and real signals; no mocks.
"""

from __future__ import annotations

import os
import pickle
import time

import pytest
from fixtures_bridge import make_study, write_files

from common.errors import PixelDataError, RadAssistError, WorkerCrashError
from common.isolation import Isolated
from pacs_bridge.service.config import AnalysisConfig, RoutingConfig
from pacs_bridge.service.journal import ANALYSING, FAILED, QUEUED, Journal
from pacs_bridge.service.routing import Router
from pacs_bridge.service.spool import Spool
from pacs_bridge.service.worker import Worker

# -- functions the child runs (module level: the child imports them by name) -----------------


def pid_of(x: int) -> tuple[int, int]:
    return x, os.getpid()


def abort() -> None:
    os.abort()


def sleep(seconds: float) -> None:
    time.sleep(seconds)


def raise_typed() -> None:
    raise PixelDataError("f.dcm", "codestream says 128 columns", reason="inconsistent_pixel_header")


def no_model() -> None:
    raise RadAssistError("weights/", "model.pt missing", reason="model")


# -- common.isolation ---------------------------------------------------------------------------


def test_typed_errors_pickle_whole():
    exc = pickle.loads(pickle.dumps(PixelDataError("a.dcm", "bad", reason="truncated")))
    assert type(exc) is PixelDataError
    assert (exc.source, exc.message, exc.reason) == ("a.dcm", "bad", "truncated")


def test_a_dead_child_fails_one_call_and_the_next_runs_in_a_new_child():
    child = Isolated("test", seconds=30)
    try:
        assert child.call(pid_of, 1)[0] == 1
        first = child.pids()
        with pytest.raises(WorkerCrashError, match=r"process died \(SIGABRT\)") as info:
            child.call(abort, source="poison.dcm")
        assert info.value.reason == "crashed" and info.value.source == "poison.dcm"
        value, pid = child.call(pid_of, 2)
        assert value == 2 and [pid] != first and child.deaths == 1
        with pytest.raises(PixelDataError) as typed:  # the function's own errors, as raised
            child.call(raise_typed)
        assert typed.value.reason == "inconsistent_pixel_header"
        assert child.call(pid_of, 3)[1] == pid  # a raised error does not cost the child
    finally:
        child.close()


def test_a_child_over_its_time_budget_is_killed():
    child = Isolated("test", seconds=60)
    try:
        started = time.monotonic()
        with pytest.raises(WorkerCrashError, match="within 1 s") as info:
            child.call(sleep, 60, seconds=1.0)  # this call's budget, not the default
        assert info.value.reason == "time_budget" and time.monotonic() - started < 15
        assert child.call(pid_of, 4)[0] == 4
    finally:
        child.close()


def test_a_failed_initializer_is_reported_by_each_call_not_as_a_crash():
    child = Isolated("test", initializer=no_model)
    try:
        for _ in range(2):
            with pytest.raises(RadAssistError, match="model.pt missing"):
                child.call(pid_of, 1)
        assert child.deaths == 0
    finally:
        child.close()


def test_a_child_that_dies_while_starting_blames_the_set_up_not_the_call():
    child = Isolated("test", initializer=abort)  # e.g. killed while loading a model
    try:
        with pytest.raises(WorkerCrashError, match=r"could not start \(SIGABRT\)") as info:
            child.call(pid_of, 1)
        assert info.value.reason == "start_failed" and child.deaths == 0
    finally:
        child.close()


# -- quarantine from the journal ------------------------------------------------------------------


def _queued_study(tmp_path, journal: Journal, spool: Spool) -> str:
    datasets = make_study(2, seed="quarantine-unit")
    uid = str(datasets[0].StudyInstanceUID)
    for path, ds in zip(write_files(datasets, tmp_path / "in"), datasets, strict=True):
        spool.store_instance(uid, str(ds.SOPInstanceUID), path.read_bytes())
        journal.note_instance(uid, str(ds.SOPInstanceUID))
    assert journal.transition(uid, QUEUED, expect=("receiving",))
    return uid


def test_analyses_that_died_with_their_process_end_quarantined_unrun(tmp_path, monkeypatch):
    journal = Journal(tmp_path / "journal.sqlite")
    spool = Spool(tmp_path / "spool", use_slots=False)
    uid = _queued_study(tmp_path, journal, spool)
    log = tmp_path / "analyses.log"
    monkeypatch.setenv("BRIDGE_TEST_ANALYSIS_LOG", str(log))
    try:
        worker = Worker(AnalysisConfig(analyzer="fixtures_bridge:transport_report_objects",
                                       max_attempts=2, isolate=False),
                        spool, journal, Router(RoutingConfig()), None)
        dead = "localhost-that-is-not-this-one:1"  # a lease nobody holds any more
        for attempt in (1, 2):  # what a bridge killed mid-analysis leaves behind, twice
            assert journal.transition(uid, ANALYSING, expect=(QUEUED,), attempts=attempt,
                                      lease_owner=dead, lease_until=0)
            assert journal.recover_after_restart()["requeued"] == 1
        rec = journal.get(uid)
        assert (rec.state, rec.attempts, rec.crashes) == (QUEUED, 2, 2)
        assert worker.run_once() == uid  # claimed: quarantined without running
        rec = journal.get(uid)
        assert rec.state == FAILED and rec.quarantined == 1
        assert rec.last_error == "the analyser crashed 2 times on this study"
        assert not log.exists()  # the analyzer never ran
        assert len(spool.instance_files(uid)) == 2  # instances kept
        assert journal.quarantined_count() == 1
        # a restart configured to requeue failed studies leaves a quarantined one alone
        assert journal.requeue_failed() == [] and journal.get(uid).state == FAILED
        # the operator's retry releases it, counts reset; it then runs (and here succeeds)
        assert journal.retry(uid, note="retry requested by an operator")
        rec = journal.get(uid)
        assert (rec.state, rec.attempts, rec.crashes, rec.quarantined) == (QUEUED, 0, 0, 0)
        worker.run_once()
        assert log.read_text().splitlines() == [uid]
        assert journal.get(uid).state == "sending"  # no destination configured: waits
    finally:
        journal.close()
