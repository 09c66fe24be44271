"""Stored pixel values out of a dataset, with every failure turned into a `PixelDataError`.

pydicom chooses the decoder plugin (pylibjpeg, pyjpegls, pillow, ...) from the transfer
syntax; this module normalises the result to a frames-first array and translates the many
exception types the plugins raise into one typed error that names the file and the reason,
so that one bad file is reported instead of aborting a study.

Hostile headers are refused before any decoder runs (`check_before_decode`): the declared
image must fit the pixel ceiling (`pacs_bridge.limits`, reason "too_large"), native data must
hold the declared bytes, an encapsulated object cannot declare more frames than it has
fragments, and each frame's codestream header (JPEG / JPEG-LS SOF, JPEG 2000 SIZ) must agree
with Rows, Columns and SamplesPerPixel. Decoders allocate from the header and write what
the codestream holds, so these checks are what keeps a 2 KB file from asking for 47 TiB,
and what keeps a decoder from writing past its buffer.

GDCM aborts the whole process (an uncaught C++ exception) on streams that disagree with
their header in ways no cheap check foresees, so it never runs in this process: it is the
last resort, after every other plugin failed, in a forked child with the file's time
budget as a hard timeout (`_isolated_gdcm`). On the conformance corpus no file needs it.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import struct
import time
import zlib
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels import get_decoder
from pydicom.pixels.decoders.rle import _rle_decode_segment  # pydicom is pinned (3.0.2)
from pydicom.pixels.utils import as_pixel_options
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
)

from common.errors import PixelDataError, RadAssistError
from pacs_bridge.limits import file_seconds, time_budget
from pacs_bridge.transfer_syntaxes import (
    DECODABLE,
    Codestream,
    has_pixel_data,
    transfer_syntax_of,
)

from .header_checks import check_before_decode
from .reasons import (  # noqa: F401 (re-exported: callers import them from here)
    BAD_HEADER,
    DECODE_FAILED,
    DECODER_CRASHED,
    MISSING_DECODER,
    NO_PIXEL_DATA,
    TIME_BUDGET,
    TOO_LARGE,
    TRUNCATED,
    UNSUPPORTED_FORMAT,
    UNSUPPORTED_SYNTAX,
)


@dataclass(frozen=True)
class Decoded:
    """Stored values, frames first: (frames, rows, cols) or (frames, rows, cols, samples)."""

    array: np.ndarray
    photometric: str  # after the decoder's own colour conversion (YBR_FULL* -> RGB)
    transfer_syntax: UID


def decode(ds: Dataset, source: str) -> Decoded:
    """Decode all frames once; raise `PixelDataError(source, ..., reason=...)` on any failure.

    Runs within the file's time budget (`pacs_bridge.limits.time_budget`) and after the
    header checks of `check_before_decode`; any exception from pydicom or a plugin becomes
    a `PixelDataError` (a header value that cannot even be read: "inconsistent_pixel_header").
    """
    with time_budget(source, "decoding"):
        try:
            return _decode(ds, source)
        except RadAssistError:
            raise
        except (KeyboardInterrupt, SystemExit):
            raise
        except MemoryError as exc:
            raise PixelDataError(source, "out of memory while decoding", reason=TOO_LARGE) from exc
        except Exception as exc:
            raise _translate(exc, source, _safe_syntax(ds)) from exc


def _safe_syntax(ds: Dataset) -> UID:
    try:
        return transfer_syntax_of(ds)
    except Exception:  # noqa: BLE001 - only used to word an error message
        return UID("unknown")


def _decode(ds: Dataset, source: str) -> Decoded:
    if not has_pixel_data(ds):
        raise PixelDataError(source, "the object has no pixel data", reason=NO_PIXEL_DATA)
    tsyntax = transfer_syntax_of(ds)
    if not tsyntax.is_valid:
        raise PixelDataError(
            source, f"transfer syntax {str(tsyntax)[:64]!r} is not a valid UID",
            reason=UNSUPPORTED_SYNTAX,
        )
    check_before_decode(ds, source, tsyntax)
    syntax = DECODABLE.get(tsyntax)
    if syntax is None:
        raise PixelDataError(
            source, f"no pixel decoder exists for transfer syntax {tsyntax.name}",
            reason=UNSUPPORTED_SYNTAX,
        )
    bits = int(ds.get("BitsAllocated", 0) or 0)
    if bits == 12 and syntax.codestream is Codestream.NATIVE:
        return _decode_packed12(ds, source, tsyntax)
    codestream = syntax.codestream
    if codestream is Codestream.DEFLATE or (codestream is Codestream.RLE and bits == 1):
        return _decode_framewise(ds, source, tsyntax)
    decoder = get_decoder(tsyntax)
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies)  # pydicom 3: a list of sentences
        raise PixelDataError(
            source,
            f"transfer syntax {tsyntax.name} needs a decoder that is not installed ({missing})",
            reason=MISSING_DECODER,
        )
    try:
        opts = as_pixel_options(ds)
        try:
            arr, meta = _as_array(decoder, ds, tsyntax, opts)
        except Exception:
            repaired = _repaired_jpeg(ds, tsyntax, opts)
            if repaired is None:
                raise
            arr, meta = _as_array(decoder, repaired, tsyntax, opts)
    except PixelDataError:
        raise
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # plugins raise anything: translate, never leak a traceback
        if "gdcm" not in decoder.available_plugins:
            raise _translate(exc, source, tsyntax) from exc
        arr, meta = _isolated_gdcm(decoder, ds, opts, source, tsyntax, exc)
    photometric = str(
        meta.get("photometric_interpretation") or ds.get("PhotometricInterpretation", "")
    )
    frames = int(meta.get("number_of_frames") or 1)
    samples = int(meta.get("samples_per_pixel") or 1)
    if frames == 1 and arr.ndim == (3 if samples > 1 else 2):
        arr = arr[np.newaxis]
    return Decoded(arr, photometric.strip().upper(), tsyntax)


# The fastest installed plugin per transfer syntax, measured on the corpus by
# bench/ingest.py (pydicom's default order puts GDCM first, which copies every frame
# through a Python str). Lossless output is identical whichever plugin decodes; on failure
# the default order is tried, so this only ever changes speed. JPEG-LS goes to libjpeg
# (pylibjpeg) rather than CharLS: CharLS is ~3x faster on the corpus (0.28 s vs 0.97 s for
# its 31 JPEG-LS files) but spends 12 s refusing one corrupt 1 KB stream the fuzzer found,
# which libjpeg refuses in 0.07 s; libjpeg also decodes the one file CharLS cannot.
PREFERRED_PLUGIN = {
    "1.2.840.10008.1.2.4.50": "pillow",  # JPEG baseline: libjpeg-turbo, same values as GDCM
    "1.2.840.10008.1.2.4.51": "pillow",  # JPEG extended (8-bit; 12-bit falls back)
    "1.2.840.10008.1.2.4.80": "pylibjpeg",  # JPEG-LS lossless (libjpeg)
    "1.2.840.10008.1.2.4.81": "pylibjpeg",  # JPEG-LS near-lossless (libjpeg)
    "1.2.840.10008.1.2.4.90": "pylibjpeg",  # JPEG 2000 lossless (OpenJPEG)
    "1.2.840.10008.1.2.4.91": "pylibjpeg",  # JPEG 2000
}


def _as_array(decoder, ds: Dataset, tsyntax: UID, opts: dict):
    """The preferred plugin, then the others in pydicom's order, never GDCM (see above).

    Raises the first plugin's exception when all fail (the most informative one), or
    `NotImplementedError` when no plugin but GDCM is installed for the syntax.
    """
    if decoder.is_native:  # pydicom's own decoder, no plugins
        return decoder.as_array(ds, validate=True, **opts)
    preferred = PREFERRED_PLUGIN.get(str(tsyntax))
    plugins = [p for p in decoder.available_plugins if p != "gdcm"]
    if preferred in plugins:
        plugins.remove(preferred)
        plugins.insert(0, preferred)
    first: Exception | None = None
    for plugin in plugins:
        try:
            return decoder.as_array(ds, validate=True, decoding_plugin=plugin, **opts)
        except Exception as exc:  # noqa: BLE001 - try the next plugin
            first = first or exc
    if first is None:
        raise NotImplementedError(f"no in-process decoder for {tsyntax.name}")
    raise first


def _isolated_gdcm(decoder, ds: Dataset, opts: dict, source: str, tsyntax: UID,
                   failure: Exception):
    """Decode with GDCM in a forked child: an abort or a hang kills the child, not us.

    The child gets the file's time budget (`RADASSIST_FILE_SECONDS`) as a hard timeout and
    is killed when it runs over; the array comes back pickled through a pipe (its size is
    bounded by the ceiling checked before). When GDCM fails too, the error of the first
    in-process plugin is reported, as it was before GDCM was tried.
    """
    seconds = file_seconds()
    seconds = seconds if seconds > 0 else 60.0
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: decode, send, exit without running any parent cleanup
        code = 0
        try:
            os.close(read_fd)
            try:
                arr, meta = decoder.as_array(ds, validate=True, decoding_plugin="gdcm", **opts)
                payload = pickle.dumps(("ok", arr, meta), protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException as exc:  # noqa: BLE001
                payload = pickle.dumps(("error", f"{type(exc).__name__}: {exc}", None))
            view = memoryview(payload)
            while view:
                view = view[os.write(write_fd, view):]
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + seconds
    timed_out = finished = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([read_fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(read_fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        finished = not timed_out
    finally:  # also when an outer time budget interrupts the wait: never leave the child
        os.close(read_fd)
        if not finished:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    if timed_out:
        raise PixelDataError(source, f"GDCM did not finish decoding {tsyntax.name} within "
                             f"{seconds:g} s (RADASSIST_FILE_SECONDS)", reason=TIME_BUDGET)
    if os.WIFSIGNALED(status):
        sig = signal.Signals(os.WTERMSIG(status)).name
        raise PixelDataError(
            source, f"cannot decode {tsyntax.name} pixel data: every in-process decoder failed "
            f"({type(failure).__name__}) and GDCM crashed ({sig}) in its isolated process",
            reason=DECODER_CRASHED,
        )
    try:
        status_word, arr, meta = pickle.loads(b"".join(chunks))
    except Exception:  # noqa: BLE001 - the child died mid-write
        raise _translate(failure, source, tsyntax) from failure
    if status_word != "ok":
        raise _translate(failure, source, tsyntax) from failure
    return arr, meta


_SEQUENTIAL_SOF = (0xC0, 0xC1)  # baseline and extended sequential DCT
_STANDALONE = {0x01, *range(0xD0, 0xDA)}  # TEM, RSTn, SOI, EOI: no length field


def fix_sequential_sos(frame: bytes) -> bytes | None:
    """Set Se = 63 in the scans of a sequential DCT JPEG that wrote Se = 0; None if no change.

    Some 12-bit encoders (the NEMA WG04 JPLY images among them) write spectral selection
    end 0, which the standard requires to be 63 for sequential DCT and which old IJG
    decoders ignored; today's libjpeg and GDCM refuse the stream. The fix touches only
    that header byte, never the entropy-coded data.
    """
    buf = bytearray(frame)
    i, n, sequential, changed = 2, len(buf), False, False
    while i + 4 <= n:
        if buf[i] != 0xFF:
            i += 1
            continue
        marker = buf[i + 1]
        if marker == 0xFF or marker == 0x00 or marker in _STANDALONE:
            i += 2 if marker not in (0xFF,) else 1
            continue
        length = (buf[i + 2] << 8) | buf[i + 3]
        if marker in _SEQUENTIAL_SOF:
            sequential = True
        if marker == 0xDA:
            ns = buf[i + 4]
            se_at = i + 4 + 1 + 2 * ns + 1
            if sequential and se_at < n and buf[se_at] == 0:
                buf[se_at] = 63
                changed = True
            i += 2 + length
            while i + 1 < n and not (
                buf[i] == 0xFF and buf[i + 1] not in (0x00,) and not (0xD0 <= buf[i + 1] <= 0xD7)
            ):
                i += 1  # skip entropy-coded data up to the next real marker
            continue
        i += 2 + length
    return bytes(buf) if changed else None


def _repaired_jpeg(ds: Dataset, tsyntax: UID, opts: dict) -> Dataset | None:
    """A stand-in dataset with repaired JPEG scan headers, or None if nothing to repair."""
    if tsyntax not in (JPEGBaseline8Bit, JPEGExtended12Bit):
        return None
    frames = list(generate_frames(ds.PixelData, number_of_frames=opts["number_of_frames"]))
    fixed = [fix_sequential_sos(f) for f in frames]
    if not any(f is not None for f in fixed):
        return None
    out = Dataset()
    out.PixelData = encapsulate(
        [f if f is not None else o for f, o in zip(fixed, frames, strict=True)]
    )
    out["PixelData"].VR = "OB"
    out["PixelData"].is_undefined_length = True
    return out


def _native_frame(ds: Dataset, data: bytes, opts: dict) -> np.ndarray:
    """One frame of native (uncompressed little endian) bytes through pydicom's own decoder."""
    frame_opts = dict(opts, number_of_frames=1, pixel_keyword="PixelData")
    arr, _ = get_decoder(ExplicitVRLittleEndian).as_array(data, **frame_opts)
    return arr


def _decode_framewise(ds: Dataset, source: str, tsyntax: UID) -> Decoded:
    """Encapsulated frames whose payload is native pixel data once unwrapped.

    Deflated Image Frame Compression (each frame deflated; new in 2024, unknown to pydicom
    3.0) and RLE of 1-bit data (a single segment of packed bits, which pydicom refuses).
    """
    try:
        opts = as_pixel_options(ds)
        frames = []
        for frame in generate_frames(ds.PixelData, number_of_frames=opts["number_of_frames"]):
            if DECODABLE[tsyntax].codestream is Codestream.DEFLATE:
                try:
                    data = zlib.decompress(frame, -15)  # raw deflate (RFC 1951)
                except zlib.error:
                    data = zlib.decompress(frame)  # tolerate a zlib wrapper
            else:
                segments = struct.unpack("<L", frame[:4])[0]
                if segments != 1:
                    raise ValueError(f"1-bit RLE needs 1 segment, found {segments}")
                start = struct.unpack("<L", frame[4:8])[0]
                data = bytes(_rle_decode_segment(frame[start:]))
            frames.append(_native_frame(ds, data, opts))
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise _translate(exc, source, tsyntax) from exc
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    return Decoded(np.stack(frames), photometric, tsyntax)


def _decode_packed12(ds: Dataset, source: str, tsyntax: UID) -> Decoded:
    """ACR-NEMA 12-bit packed pixels (Bits Allocated 12): two pixels in three bytes.

    Retired since DICOM 3.0 but still in old archives; pydicom refuses them. The layout is
    GDCM's (byte0 + low nibble of byte1; high nibble of byte1 + byte2), and a test holds this
    unpacking equal to GDCM's on a real file.
    """
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples != 1 or not rows or not cols:
        raise PixelDataError(source, "12-bit packed pixels with more than one sample per "
                             "pixel or no size", reason=UNSUPPORTED_FORMAT)
    count = rows * cols * frames
    data = bytes(ds.PixelData or b"")
    if len(data) < (count * 3 + 1) // 2:
        raise PixelDataError(source, f"12-bit packed pixel data holds {len(data):,} bytes, "
                             f"{(count * 3 + 1) // 2:,} needed", reason=TRUNCATED)
    pairs = (count + 1) // 2
    raw = np.frombuffer(data, np.uint8, count=pairs * 3 if len(data) >= pairs * 3 else None)
    raw = np.pad(raw, (0, pairs * 3 - raw.size)).reshape(pairs, 3).astype(np.uint16)
    out = np.empty((pairs, 2), np.uint16)
    out[:, 0] = raw[:, 0] | ((raw[:, 1] & 0x0F) << 8)
    out[:, 1] = (raw[:, 1] >> 4) | (raw[:, 2] << 4)
    arr = out.reshape(-1)[:count].reshape(frames, rows, cols)
    if int(ds.get("PixelRepresentation", 0) or 0) == 1:  # two's complement in 12 bits
        arr = ((arr.astype(np.int16) << 4) >> 4).astype(np.int16)
    photometric = str(ds.get("PhotometricInterpretation", "") or "MONOCHROME2")
    return Decoded(arr, photometric.strip().upper(), tsyntax)


def _translate(exc: Exception, source: str, tsyntax: UID) -> PixelDataError:
    text = " ".join(str(exc).split()) or type(exc).__name__
    low = text.lower()
    if (
        "less than expected" in low
        or "doesn't match the expected length" in low
        or ("too short" in low or "truncat" in low or "insufficient" in low)
    ):
        reason = TRUNCATED
    elif "unable to decode rle encoded pixel data with 1 bits" in low:
        reason = UNSUPPORTED_FORMAT
    elif "could not broadcast" in low:
        reason = BAD_HEADER
        text = f"frames differ in size from Rows x Columns ({text})"
    elif (
        isinstance(exc, AttributeError | KeyError | TypeError) or "missing required element" in low
    ):
        reason = BAD_HEADER
    elif "bits stored" in low or "bits allocated" in low or "samples per pixel" in low:
        reason = BAD_HEADER
    else:
        reason = DECODE_FAILED
    if len(text) > 300:
        text = text[:297] + "..."
    return PixelDataError(source, f"cannot decode {tsyntax.name} pixel data: {text}", reason=reason)
