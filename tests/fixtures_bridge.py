"""Helpers for the bridge tests and bench: a generated CT study, a real SR/SC analyzer for
transport tests, a bridge config writer, the bridge as a real subprocess, and a C-STORE SCU.

The generated study is pydicom's CT_small.dcm (a real CT slice) with new UIDs, slice
positions and a downsampled pixel matrix, so 200 instances cost a few megabytes.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
AI_DRAFT = "AI draft — not reviewed by a physician"


# -- a generated study ---------------------------------------------------------------------

def make_study(n: int, *, size: int = 32, seed: str = "bridge-test") -> list[Dataset]:
    """`n` CT slices of one new study (deterministic UIDs from `seed`)."""
    base = dcmread(get_testdata_file("CT_small.dcm"))
    pixels = base.pixel_array
    step = max(1, pixels.shape[0] // size)
    small = np.ascontiguousarray(pixels[::step, ::step][:size, :size]).astype(np.int16)
    study_uid = generate_uid(entropy_srcs=[seed, "study"])
    series_uid = generate_uid(entropy_srcs=[seed, "series"])
    out = []
    for i in range(n):
        ds = copy.deepcopy(base)
        ds.PatientName = "TEST^BRIDGE"
        ds.PatientID = "BRIDGE-TEST"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[seed, "instance", str(i)])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.InstanceNumber = i + 1
        z = float(i) * 2.0
        ds.ImagePositionPatient = [-80.0, -80.0, z]
        ds.SliceLocation = z
        ds.Rows, ds.Columns = small.shape
        ds.PixelData = small.tobytes()
        ds.BodyPartExamined = "CHEST"
        out.append(ds)
    return out


def write_files(datasets: Sequence[Dataset], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, ds in enumerate(datasets):
        p = folder / f"{i:04d}.dcm"
        ds.save_as(p, enforce_file_format=True)
        paths.append(p)
    return paths


# -- a real analyzer for transport tests -----------------------------------------------------

def transport_report_objects(study, context=None) -> tuple[Dataset, ...]:
    """A Comprehensive SR and a secondary capture for `study`, with UIDs derived from it.

    Not the imaging pipeline: a stand-in that builds real highdicom objects so the bridge's
    transport, durability and exactly-once behaviour can be tested without the model.
    Every call appends the study UID to $BRIDGE_TEST_ANALYSIS_LOG (to count analyses).
    """
    log_path = os.environ.get("BRIDGE_TEST_ANALYSIS_LOG")
    if log_path:
        with open(log_path, "a") as f:
            f.write(study.study_instance_uid + "\n")
    delay = float(os.environ.get("BRIDGE_TEST_ANALYSIS_DELAY", "0") or 0)
    if delay:
        time.sleep(delay)
    return _transport_objects(study)


def _transport_objects(study) -> tuple[Dataset, ...]:
    images = [i.dataset for s in study.series for i in s.instances]
    ref = images[0]
    uid = study.study_instance_uid
    content = hd.sr.ContainerContentItem(name=codes.DCM.ImagingMeasurementReport)
    content.ContentSequence = [
        hd.sr.TextContentItem(
            name=codes.DCM.Finding,
            value=f"{AI_DRAFT}. Transport test: {len(images)} image(s) received.",
            relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
        )
    ]
    sr = hd.sr.ComprehensiveSR(
        evidence=[ref],
        content=content,
        series_instance_uid=generate_uid(entropy_srcs=[uid, "sr-series"]),
        series_number=9001,
        sop_instance_uid=generate_uid(entropy_srcs=[uid, "sr"]),
        instance_number=1,
        manufacturer="radassist (transport test)",
        series_description=AI_DRAFT,
    )
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=ref,
        pixel_array=np.zeros((16, 16), dtype=np.uint8),
        photometric_interpretation="MONOCHROME2",
        bits_allocated=8,
        coordinate_system="PATIENT",
        patient_orientation=("L", "P"),
        series_instance_uid=generate_uid(entropy_srcs=[uid, "sc-series"]),
        series_number=9002,
        sop_instance_uid=generate_uid(entropy_srcs=[uid, "sc"]),
        instance_number=1,
        manufacturer="radassist (transport test)",
        series_description=AI_DRAFT,
    )
    for ds in (sr, sc):
        ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: the label has an em dash
    return (sr, sc)


def failing_analyzer(study, context=None):
    raise RuntimeError("deliberate analyzer failure (test)")


def gdcm_transport_objects(study, context=None) -> tuple[Dataset, ...]:
    """`transport_report_objects` after decoding every image with GDCM *in this process*,
    as `imaging.pixels` did before it isolated GDCM: a file whose header disagrees with its
    codestream (the issue's JPEG-LS with Columns = 65535) makes GDCM throw a C++ exception
    nobody catches, and the process aborts (SIGABRT). The stand-in for "a decoder we did not
    guard": the abort is real, so is the file. Logs the study UID first, like the other."""
    log_path = os.environ.get("BRIDGE_TEST_ANALYSIS_LOG")
    if log_path:
        with open(log_path, "a") as f:
            f.write(study.study_instance_uid + "\n")
    for series in study.series:
        for inst in series.instances:
            gdcm_decode(inst)
    return _transport_objects(study)


def gdcm_decode(inst) -> None:
    """One instance's pixels decoded by GDCM in this process (the unguarded decoder of
    `gdcm_transport_objects`; also the bridge's `screen_decoder` in the poison tests)."""
    from pydicom.pixels import get_decoder
    from pydicom.pixels.utils import as_pixel_options

    ds = inst.dataset
    decoder = get_decoder(ds.file_meta.TransferSyntaxUID)
    decoder.as_array(ds, decoding_plugin="gdcm" if "gdcm" in decoder.available_plugins
                     else "", **as_pixel_options(ds))


# -- the bridge as a subprocess --------------------------------------------------------------

def write_config(
    folder: Path,
    *,
    dicom_port: int,
    http_port: int = 0,
    destination: dict | None = None,
    source: dict | None = None,
    analyzer: str = "fixtures_bridge:transport_report_objects",
    inactivity: float = 0.7,
    allowed: Sequence[str] = (),
    routing: str = "",
    max_attempts: int = 3,
    backoff: float = 0.2,
    backoff_max: float = 300.0,
    delivery_max_age_hours: float = 24.0,
    isolate: bool | None = None,
    screen_decoder: str | None = None,
    extra: str = "",
) -> Path:
    """`isolate` None leaves the default (each study analysed in a child process)."""
    def table(name: str, d: dict | None) -> str:
        if not d:
            return ""
        return f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in d.items())

    text = f"""
[scp]
ae_title = "BRIDGE"
host = "127.0.0.1"
port = {dicom_port}
allowed_calling_aets = {json.dumps(list(allowed))}

[spool]
directory = "spool"

[completion]
inactivity_seconds = {inactivity}

[analysis]
analyzer = "{analyzer}"
max_attempts = {max_attempts}
backoff_seconds = {backoff}
backoff_max_seconds = {backoff_max}
delivery_max_age_hours = {delivery_max_age_hours}
{"" if isolate is None else f"isolate = {str(isolate).lower()}"}
{"" if screen_decoder is None else f"screen_decoder = {json.dumps(screen_decoder)}"}

[status_http]
port = {http_port}

{routing}
{table("destination", destination)}
{table("source", source)}
{extra}
"""
    path = folder / "bridge.toml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


class BridgeProcess:
    """`python -m radassist_cli.main bridge serve` as a real process (killable)."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.spool = config.parent / "spool"
        self.log_path = config.parent / "bridge.log"
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS)]),
            **(env or {}),
        }
        self.proc: subprocess.Popen | None = None
        self.http_port = 0
        self.dicom_port = 0

    def start(self, timeout: float = 30.0) -> BridgeProcess:
        (self.spool / "runtime.json").unlink(missing_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "radassist_cli.main", "bridge", "serve",
             "--config", str(self.config)],
            stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=str(REPO),
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bridge exited early:\n{self.log()[-3000:]}")
            try:
                info = json.loads((self.spool / "runtime.json").read_text())
                if info.get("pid") == self.proc.pid:
                    self.http_port, self.dicom_port = info["http_port"], info["dicom_port"]
                    self.health()
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"bridge not ready in {timeout} s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _get(self, path: str) -> dict:
        return self.get_with_code(path)[1]

    def get_with_code(self, path: str) -> tuple[int, dict]:
        """(HTTP status, JSON body); /health answers 503 with a body when degraded."""
        url = f"http://127.0.0.1:{self.http_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)

    def health(self) -> dict:
        return self._get("/health")

    def status(self) -> dict:
        return self._get("/status")

    def study(self, uid: str) -> dict | None:
        return next((s for s in self.status()["studies"] if s["study_uid"] == uid), None)

    def wait_state(self, uid: str, states: Sequence[str], timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        rec = None
        while time.monotonic() < deadline:
            rec = self.study(uid)
            if rec and rec["state"] in states:
                return rec
            time.sleep(0.1)
        raise AssertionError(
            f"study not in {states} after {timeout} s: {rec}\n{self.log()[-3000:]}"
        )

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_finished(svc, uid: str, timeout: float = 90.0):
    """The study's record once it is finished (sent, failed, skipped...); fails after
    `timeout` seconds."""
    from pacs_bridge.service.journal import FINISHED

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rec = svc.journal.get(uid)
        if rec is not None and rec.state in FINISHED:
            return rec
        time.sleep(0.05)
    raise AssertionError(f"study not finished in {timeout} s: {svc.journal.get(uid)}")


# -- a C-STORE SCU -----------------------------------------------------------------------------

def _nodelay(event) -> None:
    import socket

    event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def store(
    port: int,
    datasets: Sequence[Dataset | Path],
    *,
    called: str = "BRIDGE",
    calling: str = "TESTSCU",
    sop_classes: Sequence[str] = (CTImageStorage,),
    on_status: Callable[[int, int], None] | None = None,
) -> list[int | None]:
    """C-STORE each dataset (or file, sent as raw bytes) on one association.

    Returns one status per item (None: no answer, e.g. the peer died). Stops at the first
    item without an answer. Raises ConnectionError if the association is refused.
    """
    from pynetdicom import _config

    chunked = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True  # files go out as their raw bytes
    try:
        return _store(port, datasets, called, calling, sop_classes, on_status)
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = chunked


def _store(port, datasets, called, calling, sop_classes, on_status) -> list[int | None]:
    ae = AE(ae_title=calling)
    for sop in sop_classes:
        ae.add_requested_context(sop, [ExplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", port, ae_title=called,
                         evt_handlers=[(evt.EVT_CONN_OPEN, _nodelay)])
    if not assoc.is_established:
        raise ConnectionError("association refused" if assoc.is_rejected else "no association")
    statuses: list[int | None] = []
    try:
        for i, item in enumerate(datasets):
            try:
                st = assoc.send_c_store(item)
            except Exception:
                st = None
            code = int(st.Status) if st is not None and "Status" in st else None
            statuses.append(code)
            if on_status is not None and code is not None:
                on_status(i, code)
            if code is None:
                break
    finally:
        if assoc.is_established:
            assoc.release()
    return statuses


@pytest.fixture(name="bridges")
def bridges_fixture(tmp_path):
    """Start in-process bridges from config keyword arguments; all stopped at teardown."""
    from pacs_bridge.service.config import load_config
    from pacs_bridge.service.service import BridgeService

    started: list = []

    def start(name: str = "bridge", **kw):
        # in-process analysis unless asked: these test the plumbing, and spare a child each
        kw.setdefault("isolate", False)
        cfg_path = write_config(tmp_path / name, dicom_port=0, **kw)
        svc = BridgeService(load_config(cfg_path))
        svc.start()
        started.append(svc)
        return svc, cfg_path

    yield start
    for svc in started:
        svc.stop()
