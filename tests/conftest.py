"""Shared fixtures: where the real data lives, and skips that say why."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "dev"


# a guideline rule that raises is a test failure, not a quiet line in a note
os.environ.setdefault("RADASSIST_STRICT_RULES", "1")


def data_root() -> Path:
    return Path(os.environ.get("RADASSIST_DATA", DEFAULT_DATA)).resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared data folder (`RADASSIST_DATA`, default ../shared/data/dev)."""
    root = data_root()
    if not (root / "medpix").is_dir():
        pytest.skip(f"shared data not found at {root} (set RADASSIST_DATA to the dev folder)")
    return root


@pytest.fixture(scope="session")
def dicom_dir(data_dir: Path) -> Path:
    path = data_dir / "dicom"
    if not path.is_dir():
        pytest.skip(f"DICOM corpus not found at {path}")
    return path


@pytest.fixture(scope="session")
def studies(dicom_dir: Path) -> Path:
    """The real studies with their labels.csv (dicom/studies in the dev data)."""
    path = dicom_dir / "studies"
    if not (path / "labels.csv").is_file():
        pytest.skip(f"real studies not found at {path}")
    return path
