"""Teaching-case library: build from a data folder, search by image and history text."""

from .library import CaseHit, CaseLibrary, CaseRecord, build, read_medpix
from .store import default_db_path, default_library

__all__ = ["CaseHit", "CaseLibrary", "CaseRecord", "build", "default_db_path", "default_library",
           "read_medpix"]
