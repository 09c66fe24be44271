"""Where the default teaching-case library lives, and loading it once per process."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from ..cache import cache_root
from .library import CaseLibrary


def default_db_path() -> Path:
    """`RADASSIST_LIBRARY`, else `~/.cache/radassist/cases.sqlite` (outside git: the
    library is built from data that must never enter the repository)."""
    env = os.environ.get("RADASSIST_LIBRARY")
    if env:
        return Path(env)
    return cache_root() / "cases.sqlite"


@lru_cache(maxsize=4)
def _load(path: str) -> CaseLibrary | None:
    p = Path(path)
    return CaseLibrary.load(p) if p.is_file() else None


def default_library(path: str | Path | None = None) -> CaseLibrary | None:
    """The library at `path` (default `default_db_path()`), or None if it was never built."""
    return _load(str(path or default_db_path()))
