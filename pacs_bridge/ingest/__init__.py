"""Ingest: files, folders, zips, DICOMDIRs and plain images become Study ▸ Series ▸ Instance.

- `read`: one object (bytes or an open file) parsed, validated and wrapped as an `Instance`;
- `checks`: what lengths alone tell before decoding (truncated pixel data, the pixel ceiling,
  deflate bombs), so that the bridge can refuse an instance before acknowledging it;
- `group`: instances into studies and series;
- `sources`: folders, zips, DICOMDIRs and uploads through one sniff-and-dispatch, and the
  public calls `ingest` and `ingest_bytes`.
"""

from __future__ import annotations

from .checks import check_pixel_length, declared_array_bytes, expected_pixel_bytes
from .group import group

# `sources` calls these two through the package, so replacing them here reaches every source.
from .read import _make_instance as _make_instance
from .read import _read_dicom as _read_dicom
from .read import read_instance
from .sources import PROGRESS_THRESHOLD, ingest, ingest_bytes

__all__ = [
    "PROGRESS_THRESHOLD",
    "check_pixel_length",
    "declared_array_bytes",
    "expected_pixel_bytes",
    "group",
    "ingest",
    "ingest_bytes",
    "read_instance",
]
