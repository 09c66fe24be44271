"""Small helpers shared by the ingest, archive and de-identification tests."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_files
from pydicom.dataset import Dataset

from pacs_bridge.study import IngestResult, Instance


def bundled(name: str) -> Path:
    """A file bundled with pydicom (local only: never triggers pydicom's downloader)."""
    matches = sorted(Path(p) for p in get_testdata_files() if Path(p).name == name)
    assert matches, f"pydicom test file {name} not bundled"
    return matches[0]


def all_instances(result: IngestResult) -> list[Instance]:
    return [i for st in result.studies for s in st.series for i in s.instances]


def written_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()
