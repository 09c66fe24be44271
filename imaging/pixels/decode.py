"""Stored pixel values out of a dataset, with every failure turned into a `PixelDataError`.

pydicom chooses the decoder plugin (pylibjpeg, pyjpegls, gdcm, ...) from the transfer syntax;
this module only normalises the result to a frames-first array and translates the many
exception types the plugins raise into one typed error that names the file and the reason,
so that one bad file is reported instead of aborting a study.
"""

from __future__ import annotations

import struct
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
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

from pacs_bridge.errors import PixelDataError

DEFLATED_IMAGE_FRAME = UID("1.2.840.10008.1.2.8.1")  # 2024; pydicom 3.0 has no decoder
PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # PixelData, FloatPixelData, DoubleFloat...

# Reason codes of PixelDataError raised here (stable; counted by `radassist ingest-check`).
NO_PIXEL_DATA = "no_pixel_data"
UNSUPPORTED_SYNTAX = "unsupported_transfer_syntax"
MISSING_DECODER = "missing_decoder"
TRUNCATED = "truncated_pixel_data"
BAD_HEADER = "inconsistent_pixel_header"
UNSUPPORTED_FORMAT = "unsupported_pixel_format"
DECODE_FAILED = "decode_failed"


@dataclass(frozen=True)
class Decoded:
    """Stored values, frames first: (frames, rows, cols) or (frames, rows, cols, samples)."""

    array: np.ndarray
    photometric: str  # after the decoder's own colour conversion (YBR_FULL* -> RGB)
    transfer_syntax: UID


def has_pixel_data(ds: Dataset) -> bool:
    return any(tag in ds._dict for tag in PIXEL_TAGS)


def transfer_syntax_of(ds: Dataset) -> UID:
    """The dataset's transfer syntax, inferred from how it was read when file meta is missing."""
    meta = getattr(ds, "file_meta", None)
    tsyntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if tsyntax:
        return UID(str(tsyntax))
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is None:
        implicit, little = ds.is_implicit_VR, ds.is_little_endian
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little in (True, None) else ExplicitVRBigEndian


def decode(ds: Dataset, source: str) -> Decoded:
    """Decode all frames once; raise `PixelDataError(source, ..., reason=...)` on any failure."""
    if not has_pixel_data(ds):
        raise PixelDataError(source, "the object has no pixel data", reason=NO_PIXEL_DATA)
    tsyntax = transfer_syntax_of(ds)
    if int(ds.get("BitsAllocated", 0) or 0) == 12 and not tsyntax.is_compressed:
        return _decode_packed12(ds, source, tsyntax)
    if tsyntax == DEFLATED_IMAGE_FRAME or (
        tsyntax == RLELossless and int(ds.get("BitsAllocated", 0) or 0) == 1
    ):
        return _decode_framewise(ds, source, tsyntax)
    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError:
        name = tsyntax.name if tsyntax.is_valid else repr(str(tsyntax))
        raise PixelDataError(
            source, f"no pixel decoder exists for transfer syntax {name}", reason=UNSUPPORTED_SYNTAX
        ) from None
    if not decoder.is_available:
        missing = "; ".join(f"{k}: {', '.join(v)}" for k, v in decoder.missing_dependencies.items())
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
            arr, meta = decoder.as_array(repaired, validate=True, **opts)
    except PixelDataError:
        raise
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # plugins raise anything: translate, never leak a traceback
        raise _translate(exc, source, tsyntax) from exc
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
# the default order is tried, so this only ever changes speed.
PREFERRED_PLUGIN = {
    "1.2.840.10008.1.2.4.50": "pillow",  # JPEG baseline: libjpeg-turbo, same values as GDCM
    "1.2.840.10008.1.2.4.51": "pillow",  # JPEG extended (8-bit; 12-bit falls back)
    "1.2.840.10008.1.2.4.80": "pyjpegls",  # JPEG-LS lossless (CharLS)
    "1.2.840.10008.1.2.4.81": "pyjpegls",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90": "pylibjpeg",  # JPEG 2000 lossless (OpenJPEG)
    "1.2.840.10008.1.2.4.91": "pylibjpeg",  # JPEG 2000
}


def _as_array(decoder, ds: Dataset, tsyntax: UID, opts: dict):
    plugin = PREFERRED_PLUGIN.get(str(tsyntax))
    if plugin and plugin in decoder.available_plugins:
        try:
            return decoder.as_array(ds, validate=True, decoding_plugin=plugin, **opts)
        except Exception:
            pass  # the default order below tries every plugin and reports all failures
    return decoder.as_array(ds, validate=True, **opts)


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
    if tsyntax not in ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"):
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
            if tsyntax == DEFLATED_IMAGE_FRAME:
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
