"""The typed errors, re-exported for the bridge's callers: they live in `common.errors`."""

from common.errors import (
    ArchiveSafetyError,
    CorruptFileError,
    GeometryError,
    IngestError,
    ModelError,
    NetworkError,
    NotDicomError,
    PixelDataError,
    RadAssistError,
    TooLargeError,
    UnsupportedError,
)

__all__ = [
    "ArchiveSafetyError", "CorruptFileError", "GeometryError", "IngestError", "ModelError",
    "NetworkError", "NotDicomError", "PixelDataError", "RadAssistError", "TooLargeError",
    "UnsupportedError",
]
