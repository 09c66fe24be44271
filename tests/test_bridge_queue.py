"""Several bridge workers on one queue: a burst of 5 studies is analysed exactly once.

The listener (`bridge serve` with `analyse_in_listener = false`) only receives; two
`bridge worker` processes take the studies from the queue: PostgreSQL (FOR UPDATE SKIP
LOCKED; a real server from Debian's package, started here on 127.0.0.1) or the SQLite
journal. The analyzer is the transport stand-in (real SR/SC, no model), which logs each
analysis; results go to a real Orthanc.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures_bridge import REPO, TESTS, BridgeProcess, make_study, store, write_config
from fixtures_orthanc import (
    free_port,
    orthanc_fixture,  # noqa: F401 (the `orthanc` fixture)
)

from pacs_bridge.service.journal import SENT, Journal

pytestmark = pytest.mark.orthanc

N_STUDIES = 5


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@pytest.fixture
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server on a free 127.0.0.1 port; yields its URL."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql)")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="radassist-pg-"))
    if os.geteuid() == 0:  # postgres refuses to run as root: Debian's postgres user
        runuser = shutil.which("runuser")
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            runuser = None
        if runuser is None:
            shutil.rmtree(folder)
            pytest.skip("running as root without runuser or a postgres user")
        shutil.chown(folder, "postgres")
        as_user = [runuser, "-u", "postgres", "--"]
    data, port = folder / "data", free_port()
    subprocess.run([*as_user, initdb, "-D", str(data), "-U", "radassist", "--auth=trust",
                    "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {folder} -c fsync=off"
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", options, "-l",
                    str(folder / "pg.log"), "-w", "-t", "60", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://radassist@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


class WorkerProcess:
    def __init__(self, config: Path, index: int, env: dict[str, str]) -> None:
        self.log_path = config.parent / f"worker{index}.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "radassist_cli.main", "bridge", "worker",
                 "--config", str(config)],
                stdout=log, stderr=subprocess.STDOUT, cwd=str(REPO),
                env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS)]),
                     **env})

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _burst_exactly_once(orthanc, tmp_path: Path, queue: str) -> None:
    analyses = tmp_path / "analyses.log"
    env = {"BRIDGE_TEST_ANALYSIS_LOG": str(analyses), "BRIDGE_TEST_ANALYSIS_DELAY": "0.5"}
    cfg = write_config(
        tmp_path / "bridge", dicom_port=free_port(), inactivity=0.5,
        destination={"kind": "dimse", "ae_title": orthanc.aet, "port": orthanc.dicom_port},
        extra=f"[queue]\n{queue}analyse_in_listener = false\n")
    listener = BridgeProcess(cfg, env=env).start()
    workers = [WorkerProcess(cfg, i, env) for i in range(2)]
    studies = [make_study(3, size=16, seed=f"queue-burst-{i}") for i in range(N_STUDIES)]
    uids = [str(s[0].StudyInstanceUID) for s in studies]
    try:
        for datasets in studies:  # the burst: 5 studies, one after the other
            assert store(listener.dicom_port, datasets) == [0, 0, 0]
        for uid in uids:
            listener.wait_state(uid, ("sent", "failed"), timeout=120)
    finally:
        for w in workers:
            w.stop()
        listener.stop()
    logs = "\n".join(w.log() for w in workers)
    counts = Counter(analyses.read_text().split())
    assert {u: counts[u] for u in uids} == dict.fromkeys(uids, 1), logs[-3000:]
    journal = Journal(cfg.parent / "spool" / "journal.sqlite", readonly=True)
    assert {journal.get(u).state for u in uids} == {SENT}, logs[-3000:]
    for uid in uids:
        rec = journal.get(uid)
        assert len(rec.result_uids) == 2 and sorted(journal.sent_uids(uid)) == sorted(
            rec.result_uids)
        assert len(orthanc.study_instances(uid)) == 2  # SR + SC, each once
    per_worker = [w.log().count("analysed in") for w in workers]
    assert sum(per_worker) == N_STUDIES and min(per_worker) >= 1, per_worker  # both worked
    assert "Traceback" not in logs


def test_two_workers_on_postgresql_analyse_a_burst_exactly_once(orthanc, postgres, tmp_path):
    _burst_exactly_once(orthanc, tmp_path, f'url = "{postgres}"\n')
    import psycopg

    with psycopg.connect(postgres) as conn:  # every job taken off the queue
        assert conn.execute("SELECT count(*) FROM radassist_bridge_queue").fetchone() == (0,)


def test_two_workers_on_the_sqlite_journal_analyse_a_burst_exactly_once(orthanc, tmp_path):
    _burst_exactly_once(orthanc, tmp_path, "")


def test_a_killed_worker_gives_its_study_back(tmp_path):
    """SQLite queue: the lease of a dead process ends at once; the study is queued again."""
    journal = Journal(tmp_path / "journal.sqlite")
    journal.note_instance("1.2.3", "1.2.3.1", now=1.0)
    assert journal.transition("1.2.3", "queued", expect=("receiving",), now=2.0)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    owner = f"{os.uname().nodename}:{dead.pid}"
    rec = journal.claim(owner, time.time(), 3600.0)
    assert rec is not None and rec.study_uid == "1.2.3"
    assert journal.transition("1.2.3", "analysing", expect=("queued",))
    # another (live) worker: the dead owner's analysis is queued again and leased to it
    again = journal.claim("me:1", time.time(), 3600.0)
    assert again is not None and again.study_uid == "1.2.3" and again.state == "queued"
    assert journal.transitions("1.2.3")[-1].note.startswith("analysis interrupted")
    # while it is leased to a live owner on another host, nobody else gets it
    assert journal.claim("other:2", time.time(), 3600.0) is None
    journal.close()
