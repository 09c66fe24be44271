"""A real Orthanc (Debian package) for tests: own config, tmp storage, free loopback ports.

`orthanc` is a pytest fixture; `run_orthanc` the same as a context manager (for bench/).
Skips with a clear reason when the Orthanc binary is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ORTHANC_BIN = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
# overridable so the suite can be run as on a machine with `orthanc` but not `orthanc-dicomweb`
DICOMWEB_PLUGIN = Path(os.environ.get("RADASSIST_ORTHANC_DICOMWEB_PLUGIN",
                                      "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Orthanc:
    http_port: int
    dicom_port: int
    aet: str
    workdir: Path
    process: subprocess.Popen = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def request(self, method: str, path: str, body: object = None, raw: bytes | None = None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if raw is not None:
            req.add_header("Content-Type", "application/dicom")
        with urllib.request.urlopen(req, timeout=30) as r:
            payload = r.read()
        return json.loads(payload) if payload else None

    def get(self, path: str):
        return self.request("GET", path)

    def upload(self, data: bytes) -> dict:
        return self.request("POST", "/instances", raw=data)

    def add_modality(self, name: str, aet: str, port: int, host: str = "127.0.0.1") -> None:
        self.request(
            "PUT",
            f"/modalities/{name}",
            {"AET": aet, "Host": host, "Port": port, "AllowEcho": True, "AllowFind": True,
             "AllowMove": True, "AllowGet": True, "AllowStore": True},
        )

    def study_instances(self, study_uid: str) -> list[dict]:
        """Instances of a study with their main tags (REST /tools/find)."""
        found = self.request(
            "POST",
            "/tools/find",
            {"Level": "Instance", "Query": {"StudyInstanceUID": study_uid}, "Expand": True},
        )
        return found or []

    def instance_tags(self, orthanc_id: str) -> dict:
        return self.get(f"/instances/{orthanc_id}/simplified-tags")


def _wait_ready(o: Orthanc, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if o.process.poll() is not None:
            log = (o.workdir / "orthanc.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"Orthanc exited with {o.process.returncode}:\n{log}")
        try:
            o.get("/system")
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.05)
    raise RuntimeError("Orthanc did not answer GET /system in time")


@contextmanager
def run_orthanc(workdir: Path, *, aet: str = "ORTHANC",
                modalities: dict[str, tuple[str, int]] | None = None) -> Iterator[Orthanc]:
    if not Path(ORTHANC_BIN).exists():
        raise FileNotFoundError("Orthanc binary not installed (apt-get install orthanc)")
    workdir.mkdir(parents=True, exist_ok=True)
    http_port, dicom_port = free_port(), free_port()
    config = {
        "Name": "radassist-test",
        "StorageDirectory": str(workdir / "storage"),
        "IndexDirectory": str(workdir / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": aet,
        "DicomCheckCalledAet": False,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomModalities": {
            name: [m_aet, "127.0.0.1", port] for name, (m_aet, port) in (modalities or {}).items()
        },
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": True,
        "StorageCompression": False,
        "SaveJobs": False,
        "StableAge": 1,
        "Plugins": [str(DICOMWEB_PLUGIN)] if DICOMWEB_PLUGIN.exists() else [],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "Host": f"127.0.0.1:{http_port}"},
    }
    cfg_path = workdir / "orthanc.json"
    cfg_path.write_text(json.dumps(config, indent=1))
    env = {**os.environ, "TCP_NODELAY": "1"}
    with open(workdir / "orthanc.log", "wb") as log:
        proc = subprocess.Popen(
            [ORTHANC_BIN, str(cfg_path)], stdout=log, stderr=subprocess.STDOUT, env=env
        )
    o = Orthanc(http_port, dicom_port, aet, workdir, proc)
    try:
        _wait_ready(o)
        yield o
    finally:
        proc.terminate()  # a graceful stop takes Orthanc ~3.5 s; its storage is throwaway
        try:
            proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(name="orthanc")
def orthanc_fixture(tmp_path: Path) -> Iterator[Orthanc]:
    """A fresh Orthanc with the DICOMweb plugin, on free ports, stopped at teardown."""
    if not Path(ORTHANC_BIN).exists():
        pytest.skip("Orthanc is not installed (apt-get install orthanc orthanc-dicomweb)")
    with run_orthanc(tmp_path / "orthanc") as o:
        yield o


def needs_dicomweb() -> None:
    if not DICOMWEB_PLUGIN.exists():
        pytest.skip(f"Orthanc DICOMweb plugin missing at {DICOMWEB_PLUGIN}")
