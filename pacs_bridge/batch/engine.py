"""`radassist batch`: every study of a source analysed on Dask distributed, resumably.

The client (this process) discovers the studies, skips those the manifest has done for the
same input and model version, submits the rest (biggest first), and writes one manifest
row as each finishes. Dask re-runs a task whose worker died (up to
`distributed.scheduler.allowed-failures` times); the task's atomic, content-keyed outputs
make the repeat harmless. A task that keeps killing its workers is recorded as failed
(`worker_died`) and retried by the next run.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pacs_bridge.batch.manifest import Manifest, ManifestRow, Status
from pacs_bridge.batch.sources import Discovery, StudyTask, discover
from pacs_bridge.batch.work import (
    DEFAULT_ANALYZER,
    AnalyzerPlugin,
    WorkSettings,
    analyzer_version,
    remove_partial,
    run_study,
)
from pacs_bridge.service.config import DestinationConfig

log = logging.getLogger("radassist.batch")


@dataclass(frozen=True)
class ClusterSpec:
    scheduler: str = ""  # "tcp://HOST:PORT"; empty: a LocalCluster on this machine
    workers: int = 2  # LocalCluster worker processes
    threads_per_worker: int = 1  # Dask threads = torch intra-op threads per worker
    dashboard: bool = True


@dataclass(frozen=True)
class BatchSummary:
    source_kind: str
    studies: int  # found in the source
    skipped: int  # done earlier for the same input and model version
    done: int  # done by this run (analysed, or outputs found from an interrupted run)
    reused: int  # of `done`: outputs found on disk, nothing analysed
    failed: int
    failures: dict[str, int]  # reason -> count
    wall_seconds: float  # from the first submission to the last result
    setup_seconds: float  # discovery, cluster start, model load on every worker
    workers: int
    dashboard: str = ""
    rows: tuple[ManifestRow, ...] = field(default=(), repr=False)

    @property
    def studies_per_second(self) -> float:
        n = self.done + self.failed
        return n / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def as_json(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "rows"}
        d["studies_per_second"] = round(self.studies_per_second, 4)
        return d


@contextlib.contextmanager
def dask_client(spec: ClusterSpec) -> Iterator[object]:
    """The one place a Dask client is made: a real cluster, or a LocalCluster of processes."""
    from distributed import Client, LocalCluster

    if spec.scheduler:
        with Client(spec.scheduler, timeout=30) as client:
            yield client
        return
    with LocalCluster(
        n_workers=spec.workers,
        threads_per_worker=spec.threads_per_worker,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0" if spec.dashboard else None,
        silence_logs=logging.ERROR,
    ) as cluster, Client(cluster) as client:
        yield client


def run_batch(
    source: str,
    out_dir: Path,
    *,
    cluster: ClusterSpec | None = None,
    analyzer: str = DEFAULT_ANALYZER,
    destination: DestinationConfig | None = None,
    progress: Callable[[int], object] | None = None,
    on_start: Callable[[int, str], None] | None = None,
    discovery: Discovery | None = None,
) -> BatchSummary:
    """Analyse every study of `source` not yet done; `progress(total)` returns a tqdm-like
    bar (its `update(1)` is called per study), `on_start(n_todo, dashboard)` is told first."""
    from distributed import as_completed

    cluster = cluster or ClusterSpec()
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    manifest = Manifest(out_dir)
    try:
        remove_partial(out_dir)
        found = discovery or discover(source)
        version = analyzer_version(analyzer)
        done_before = manifest.rows()
        todo = [t for t in found.tasks if not _is_done(done_before.get(t.study_uid), t, version)]
        skipped = len(found.tasks) - len(todo)
        settings = WorkSettings(str(out_dir.resolve()), analyzer, version, destination)
        rows: list[ManifestRow] = []
        wall = 0.0
        dashboard = ""
        workers = 0
        if todo:
            with dask_client(cluster) as client:
                client.register_plugin(AnalyzerPlugin(analyzer, cluster.threads_per_worker))
                workers = len(client.scheduler_info(n_workers=-1)["workers"])
                dashboard = client.dashboard_link if cluster.dashboard else ""
                if on_start is not None:
                    on_start(len(todo), dashboard)
                bar = progress(len(todo)) if progress is not None else None
                todo.sort(key=lambda t: -t.size)  # longest first: no long study left at the end
                started = time.perf_counter()
                futures = {
                    client.submit(run_study, task, settings, key=f"study-{task.study_uid}",
                                  priority=len(todo) - i, retries=0, pure=False): task
                    for i, task in enumerate(todo)
                }
                for fut in as_completed(futures):
                    row = _result(fut, futures[fut], version)
                    manifest.put(row)
                    rows.append(row)
                    if bar is not None:
                        bar.update(1)
                wall = time.perf_counter() - started
                if bar is not None:
                    bar.close()
        elif on_start is not None:
            on_start(0, "")
    finally:
        manifest.close()
    failed = [r for r in rows if r.status is Status.FAILED]
    setup = time.perf_counter() - t0 - wall
    return BatchSummary(
        source_kind=found.source_kind, studies=len(found.tasks), skipped=skipped,
        done=len(rows) - len(failed), reused=sum(r.reused for r in rows), failed=len(failed),
        failures=dict(Counter(r.reason for r in failed)), wall_seconds=round(wall, 3),
        setup_seconds=round(setup, 3), workers=workers, dashboard=dashboard, rows=tuple(rows))


def _is_done(row: ManifestRow | None, task: StudyTask, version: str) -> bool:
    return (row is not None and row.status is Status.DONE and row.listing == task.listing
            and row.model_version == version and Path(row.output_path).is_dir())


def _result(fut, task: StudyTask, version: str) -> ManifestRow:
    from distributed import KilledWorker

    try:
        return fut.result()
    except KilledWorker as exc:
        reason, message = "worker_died", str(exc)
    except Exception as exc:  # the task itself raised (it catches study errors itself)
        reason, message = type(exc).__name__, str(exc)
    return ManifestRow(task.study_uid, "", version, Status.FAILED, "", reason=reason,
                       message=message[:500], listing=task.listing)
