"""One small hierarchy of typed errors shared by every package (in common/: imaging, the
bridge and the shells all raise them, and none of them owns the others).

Every error names the file (or source) it is about and a short machine-readable reason,
so that a command can print one readable line per problem and count problems by reason,
instead of showing a traceback.
"""

from __future__ import annotations


class RadAssistError(Exception):
    """Base class: `source` is the file or object concerned, `reason` a short stable code."""

    reason: str = "error"

    def __init__(self, source: str | None, message: str, *, reason: str | None = None) -> None:
        self.source = str(source) if source is not None else None
        self.message = message
        if reason is not None:
            self.reason = reason
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        return f"{where}{self.message} [{self.reason}]"

    def __reduce__(self):
        # pickled whole (source, message, reason), so an error raised in a child process
        # (common.isolation) arrives typed in its parent, not as a failure to unpickle
        return (_rebuild, (type(self), self.source, self.message, self.reason), self.__dict__)


def _rebuild(cls: type[RadAssistError], source: str | None, message: str,
             reason: str) -> RadAssistError:
    return cls(source, message, reason=reason)


class IngestError(RadAssistError):
    """A source could not be read as part of a study."""

    reason = "ingest"


class NotDicomError(IngestError):
    """The bytes are neither DICOM nor a supported plain image."""

    reason = "not_dicom"


class CorruptFileError(IngestError):
    """DICOM that is truncated or structurally broken."""

    reason = "corrupt"


class UnsupportedError(IngestError):
    """Valid DICOM that this tool does not handle (e.g. an unknown transfer syntax)."""

    reason = "unsupported"


class TooLargeError(IngestError):
    """Pixel data whose declared size exceeds the configured ceiling (RADASSIST_MAX_PIXEL_BYTES).

    Checked from the header before anything is allocated; see `pacs_bridge.limits`.
    """

    reason = "too_large"


class ArchiveSafetyError(IngestError):
    """A zip that is unsafe to extract (path traversal, too many entries, zip bomb)."""

    reason = "unsafe_archive"


class PixelDataError(RadAssistError):
    """Pixel data that cannot be decoded or is inconsistent with its header."""

    reason = "pixel_data"


class GeometryError(RadAssistError):
    """Slices that cannot be placed in one volume."""

    reason = "geometry"


class ModelError(RadAssistError):
    """Weights missing, incompatible or unloadable."""

    reason = "model"


class NetworkError(RadAssistError):
    """A DICOM or DICOMweb peer refused or failed."""

    reason = "network"


class WorkerCrashError(RadAssistError):
    """The process doing one piece of work died (a native abort, a segfault, the OOM killer)
    or ran past its time budget and was killed (reason "time_budget"); the work is lost,
    the process that asked for it is not (`common.isolation`)."""

    reason = "crashed"
