"""One study's unit of work, run on a Dask worker: ingest, analyse, write outputs atomically.

Outputs of a study go to `OUT/studies/<StudyInstanceUID>/<SR SOPInstanceUID>/`: `note.json`,
one `<SOPInstanceUID>.dcm` per result object, and `done.json` (input digest, model version).
They are written into a temporary sibling folder, flushed, and renamed in one step, so a
worker killed at any moment leaves either nothing or the complete set. The SR's UID is
derived from the study, the model version and the note, so a task repeated after a killed
worker names the same folder: the rename finds it done and nothing is duplicated.

The analyzer is `module:function(study, context) -> imaging.pipeline.ReportOutputs`; its
module may define `warm_up()` (load the model) and `model_version()`. `AnalyzerPlugin`
loads it once per worker process, before any task.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from distributed import WorkerPlugin

from common.errors import RadAssistError
from pacs_bridge.batch.manifest import ManifestRow, Status
from pacs_bridge.batch.sources import StudyTask
from pacs_bridge.service.config import DestinationConfig
from pacs_bridge.service.spool import fsync_dir, safe_name, write_all
from pacs_bridge.service.worker import load_analyzer

DEFAULT_ANALYZER = "imaging.pipeline:report_outputs"
DONE_FILE = "done.json"
_TMP_PREFIX = ".tmp-"

_LOADED: dict[str, object] = {}  # analyzer per worker process, loaded by AnalyzerPlugin


@dataclass(frozen=True)
class WorkSettings:
    out_dir: str
    analyzer: str = DEFAULT_ANALYZER
    model_version: str = ""
    destination: DestinationConfig | None = None  # --send: results to the PACS as well


class AnalyzerPlugin(WorkerPlugin):
    """Once per worker process: set torch's thread count, import the analyzer, load the model,
    and run it once on a generated image, so no study pays the one-off costs (lazy imports,
    knowledge base, text embeddings: about 2.5 s) and studies/s measures the steady state."""

    name = "radassist-analyzer"

    def __init__(self, analyzer: str, threads: int = 1) -> None:
        self.analyzer = analyzer
        self.threads = threads

    def setup(self, worker) -> None:  # noqa: ARG002 (Dask's signature)
        import logging

        from pacs_bridge.service import log_privacy

        # library warnings quote patient names: withheld, as in the bridge (a Dask worker's
        # root logger may have no handler, so the warnings get one of their own)
        handler = logging.StreamHandler()
        log_privacy.install(handler)
        warnings_log = logging.getLogger("py.warnings")
        warnings_log.addHandler(handler)
        warnings_log.propagate = False
        os.environ["RADASSIST_THREADS"] = str(self.threads)  # imaging's configure_torch reads it
        try:
            import torch

            torch.set_num_threads(self.threads)
        except ImportError:
            pass
        fn = analyzer_fn(self.analyzer, warm=True)
        try:
            fn(_warm_up_study(), None)
        except Exception:  # a warm-up failure is not a study failure; studies will tell
            pass


def _warm_up_study():
    import numpy as np
    from PIL import Image

    from pacs_bridge.ingest import ingest_bytes

    buf = io.BytesIO()
    ramp = np.add.outer(np.arange(96), np.arange(96)).astype(np.uint8)
    Image.fromarray(ramp).save(buf, format="PNG")
    return ingest_bytes("warm-up.png", buf.getvalue()).studies[0]


def analyzer_fn(dotted: str, *, warm: bool = False):
    fn = _LOADED.get(dotted)
    if fn is None:
        fn = load_analyzer(dotted)
        if warm:
            import importlib

            warm_up = getattr(importlib.import_module(dotted.partition(":")[0]), "warm_up", None)
            if callable(warm_up):
                warm_up()
        _LOADED[dotted] = fn
    return fn


def analyzer_version(dotted: str) -> str:
    """The analyzer module's `model_version()`, or "" if it has none (read by the client)."""
    import importlib

    module = importlib.import_module(dotted.partition(":")[0])
    fn = getattr(module, "model_version", None)
    return str(fn()) if callable(fn) else ""


def study_dir(out_dir: str | Path, study_uid: str) -> Path:
    return Path(out_dir) / "studies" / safe_name(study_uid)


def find_done(out_dir: str | Path, study_uid: str, digest: str, version: str) -> Path | None:
    """An earlier run's complete outputs for this input and model version, if any."""
    folder = study_dir(out_dir, study_uid)
    if not folder.is_dir():
        return None
    for done in sorted(folder.glob(f"*/{DONE_FILE}")):
        try:
            info = json.loads(done.read_text())
        except (OSError, ValueError):
            continue
        if info.get("input_digest") == digest and info.get("model_version") == version:
            return done.parent
    return None


def run_study(task: StudyTask, settings: WorkSettings) -> ManifestRow:
    """The whole unit of work for one study; never raises for a bad study (a failed row)."""
    started = (time.perf_counter(), time.process_time())
    digest = ""
    try:
        with tempfile.TemporaryDirectory(prefix="radassist-batch-") as tmp:
            files = task.files or _retrieve(task, Path(tmp))
            digest = input_digest(files)
            version = settings.model_version
            found = find_done(settings.out_dir, task.study_uid, digest, version) if version \
                else None
            if found is not None:
                return _row(task, digest, version, found, started, reused=True)
            study = _load(task, files)
            outputs = analyzer_fn(settings.analyzer)(study, None)
            path = write_outputs(settings.out_dir, task.study_uid, digest, outputs)
            if settings.destination is not None:
                _send(settings.destination, outputs.objects)
            return _row(task, digest, outputs.model_version, path, started)
    except RadAssistError as exc:
        return _failed(task, digest, settings, exc.reason, str(exc), started)
    except Exception as exc:  # an analyzer bug must not end the run: recorded, retried later
        return _failed(task, digest, settings, type(exc).__name__, str(exc)[:500], started)


def _times(started: tuple[float, float]) -> dict[str, float]:
    return {"seconds": round(time.perf_counter() - started[0], 3),
            "cpu_seconds": round(time.process_time() - started[1], 3)}


def _row(task, digest, version, path, started, *, reused=False) -> ManifestRow:
    return ManifestRow(task.study_uid, digest, version, Status.DONE, str(path),
                       listing=task.listing, reused=reused, **_times(started))


def _failed(task, digest, settings, reason, message, started) -> ManifestRow:
    return ManifestRow(task.study_uid, digest, settings.model_version, Status.FAILED, "",
                       reason=reason, message=message[:500], listing=task.listing,
                       **_times(started))


def input_digest(files: tuple[str, ...]) -> str:
    """sha256 over the study's files, in name order (content, not paths or times)."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda p: Path(p).name):
        with open(f, "rb") as fp:
            h.update(hashlib.sha256(fp.read()).digest())
    return h.hexdigest()


def _retrieve(task: StudyTask, folder: Path) -> tuple[str, ...]:
    """WADO-RS: the study's instances into `folder`, one file each (named by SOP UID)."""
    from common.errors import NetworkError
    from pacs_bridge.service.pull import dicomweb_client

    try:
        datasets = dicomweb_client(task.qido_url).retrieve_study(task.study_uid)
    except Exception as exc:
        raise NetworkError(task.qido_url, f"WADO-RS retrieve failed: {exc}") from exc
    files = []
    for ds in datasets:
        path = folder / f"{safe_name(str(ds.SOPInstanceUID))}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(str(path))
    return tuple(files)


def _load(task: StudyTask, files: tuple[str, ...]):
    from common.errors import IngestError
    from pacs_bridge.ingest import ingest

    result = ingest([Path(f) for f in files])
    for study in result.studies:
        if study.study_instance_uid == task.study_uid:
            return study
    why = f"; {result.rejections[0].message}" if result.rejections else ""
    raise IngestError(task.study_uid, f"no readable instance of the study{why}",
                      reason="no_study")


def write_outputs(out_dir: str | Path, study_uid: str, digest: str, outputs) -> Path:
    """note.json + every object + done.json in a temporary folder, renamed in one step."""
    sr_uid = str(outputs.objects[0].SOPInstanceUID)
    parent = study_dir(out_dir, study_uid)
    parent.mkdir(parents=True, exist_ok=True)
    final = parent / safe_name(sr_uid)
    if (final / DONE_FILE).is_file():
        return final  # the same result, written by an earlier attempt
    tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{final.name}-", dir=parent))
    try:
        _write(tmp / "note.json", outputs.note_json.encode("utf-8"))
        for ds in outputs.objects:
            buf = io.BytesIO()
            ds.save_as(buf, enforce_file_format=True)
            _write(tmp / f"{safe_name(str(ds.SOPInstanceUID))}.dcm", buf.getvalue())
        done = {"study_uid": study_uid, "input_digest": digest,
                "model_version": outputs.model_version, "sr_uid": sr_uid,
                "objects": [str(ds.SOPInstanceUID) for ds in outputs.objects]}
        _write(tmp / DONE_FILE, json.dumps(done, indent=1).encode())
        fsync_dir(tmp)
        try:
            os.rename(tmp, final)
        except OSError:  # another attempt renamed the same result first
            if not (final / DONE_FILE).is_file():
                raise
        fsync_dir(parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def remove_partial(out_dir: str | Path) -> int:
    """Temporary folders left by killed workers (never renamed, so never a result)."""
    removed = 0
    for tmp in Path(out_dir).glob(f"studies/*/{_TMP_PREFIX}*"):
        shutil.rmtree(tmp, ignore_errors=True)
        removed += 1
    return removed


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _send(dest: DestinationConfig, objects) -> None:
    from pacs_bridge.service.sender import make_sender

    make_sender(dest).send(list(objects), lambda _sop: None)
