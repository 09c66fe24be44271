"""Resource limits for hostile input: a pixel-size ceiling and a per-file time budget.

**Size.** A header's Rows × Columns × NumberOfFrames is a promise the bytes need not keep:
a 2 KB file can declare 2 PiB of pixels, and decoders allocate what the header declares
before they look at the data. So every declared size is checked *before* anything is
allocated, twice: at ingest (native pixel data must hold at least the declared bytes, and
the declared image must fit the ceiling) and again right before decoding (`imaging.pixels`
also checks the frame count against the encapsulated fragments and the codestream's own
header against the DICOM header). The ceiling, `RADASSIST_MAX_PIXEL_BYTES` (default 2 GiB;
suffixes K, M, G accepted), bounds the largest array decoding makes: the float32 frames in
physical units (4 bytes a sample, 3 samples for palette colour), or the stored values if
they are wider.

**Time.** `RADASSIST_FILE_SECONDS` (default 60) is the budget of one file: its read at
ingest, and its decode. It is enforced in two ways, chosen by what can hang:

- Cheap pre-checks make hangs impossible in the in-process path: after the size checks,
  every decoder run in-process (pydicom's native and RLE decoders, libjpeg-turbo through
  Pillow, libjpeg, OpenJPEG, CharLS) does work linear in the checked output size, and pydicom's
  parser is linear in the file size. None of them can loop forever, so none is worth a
  process per file (a fork per slice would cost seconds on a 300-slice series).
- On the main thread (the CLI, `ingest-check`) `time_budget` also arms a SIGALRM timer, so
  Python-level work that still runs too long (a slow RLE decode near the ceiling on a busy
  machine) becomes a `TimeBudgetError` instead of a stall. Signals only reach the main
  thread, so on the bridge's worker threads the pre-checks are the bound.
- GDCM, which aborts the whole process on a header that disagrees with its codestream, is
  never run in-process: `imaging.pixels.decode` tries it last, in a forked child with this
  budget as a hard timeout (the child is killed), so one file cannot take a process down.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator

from common.errors import RadAssistError

MAX_PIXEL_BYTES_ENV = "RADASSIST_MAX_PIXEL_BYTES"
FILE_SECONDS_ENV = "RADASSIST_FILE_SECONDS"
DEFAULT_MAX_PIXEL_BYTES = 2 << 30
DEFAULT_FILE_SECONDS = 60.0
_SUFFIX = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class TimeBudgetError(RadAssistError):
    """A file took longer than its time budget to read or decode."""

    reason = "time_budget"


def _parse_bytes(text: str) -> int | None:
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    try:
        if text and text[-1] in _SUFFIX:
            return int(float(text[:-1]) * _SUFFIX[text[-1]])
        return int(text)
    except ValueError:
        return None


def max_pixel_bytes() -> int:
    """The ceiling on the largest pixel array one object may make (env, else 2 GiB)."""
    value = _parse_bytes(os.environ.get(MAX_PIXEL_BYTES_ENV, ""))
    return value if value and value > 0 else DEFAULT_MAX_PIXEL_BYTES


def file_seconds() -> float:
    """The time budget of one file, in seconds (env, else 60; 0 or less turns it off)."""
    try:
        return float(os.environ.get(FILE_SECONDS_ENV, "") or DEFAULT_FILE_SECONDS)
    except ValueError:
        return DEFAULT_FILE_SECONDS


def human(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} EiB"


def array_bytes(
    rows: int, cols: int, frames: int, samples: int, bits: int, *, palette: bool = False
) -> int:
    """Bytes of the largest array decoding these declared sizes makes (see the ceiling)."""
    pixels = max(rows, 0) * max(cols, 0) * max(frames, 1)
    stored = pixels * max(samples, 1) * max(1, (max(bits, 1) + 7) // 8)
    physical = pixels * (3 if palette else max(samples, 1)) * 4  # float32
    return max(stored, physical)


def check_array_size(source: str | None, nbytes: int, error: type[RadAssistError],
                     reason: str | None = None) -> None:
    """Raise `error` when a declared array of `nbytes` exceeds the ceiling."""
    ceiling = max_pixel_bytes()
    if nbytes > ceiling:
        raise error(
            source,
            f"the header declares pixel data that decodes to {human(nbytes)}, over the "
            f"{human(ceiling)} ceiling ({MAX_PIXEL_BYTES_ENV})",
            reason=reason or "too_large",
        )


class _Expired(BaseException):
    """Raised by the SIGALRM handler; a BaseException so `except Exception` lets it through."""


_state = threading.local()


@contextlib.contextmanager
def time_budget(source: str | None, what: str, seconds: float | None = None) -> Iterator[None]:
    """Turn work on the main thread that outlasts `seconds` into a `TimeBudgetError`.

    A no-op off the main thread, where signals cannot be delivered, when the budget is off,
    inside another budget (the outer one governs), and when an earlier timer (a test
    runner's) would fire first: that timer is left alone and re-armed afterwards.
    """
    seconds = file_seconds() if seconds is None else seconds
    if (
        seconds <= 0
        or threading.current_thread() is not threading.main_thread()
        or getattr(_state, "active", False)
        or not hasattr(signal, "setitimer")
    ):
        yield
        return
    outer_left, outer_interval = signal.getitimer(signal.ITIMER_REAL)
    if outer_left and outer_left <= seconds:
        yield  # the earlier timer fires first anyway: do not disturb it
        return

    def expire(signum, frame):
        raise _Expired()

    previous = signal.signal(signal.SIGALRM, expire)
    started = time.monotonic()
    _state.active = True
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _Expired:
        raise TimeBudgetError(
            source,
            f"{what} took longer than the {seconds:g} s budget of one file "
            f"({FILE_SECONDS_ENV})",
        ) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _state.active = False
        signal.signal(signal.SIGALRM, previous)
        if outer_left:
            left = max(outer_left - (time.monotonic() - started), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, left, outer_interval)
