"""Hostile headers refused before any decoder runs.

The declared image must fit the pixel ceiling (`pacs_bridge.limits`, reason "too_large"), an
encapsulated object cannot declare more frames than it has fragments, its colour model
(PhotometricInterpretation) must go with its SamplesPerPixel (GDCM aborts on a one-component
JPEG 2000 declared YBR_FULL), and each frame's codestream header (JPEG / JPEG-LS SOF,
JPEG 2000 SIZ) must agree with Rows, Columns, SamplesPerPixel and BitsAllocated. Decoders
allocate from the header and write what the codestream holds, so these checks are what keeps
a 2 KB file from asking for 47 TiB, a decoder from writing past its buffer, and GDCM from
throwing the C++ exception that aborts its process.
"""

from __future__ import annotations

import struct

from pydicom.dataset import Dataset
from pydicom.uid import UID

from common.errors import PixelDataError
from pacs_bridge.limits import array_bytes, check_array_size
from pacs_bridge.transfer_syntaxes import DECODABLE, Codestream, float_bits, pixel_data_tag

from .reasons import BAD_HEADER, TOO_LARGE, TRUNCATED

_US_MAX = 0xFFFF


def _strict_int(ds: Dataset, keyword: str, default: int | None, source: str) -> int:
    value = ds.get(keyword)
    if value is None or value == "":
        if default is None:
            raise PixelDataError(source, f"{keyword} is missing", reason=BAD_HEADER)
        return default
    try:
        if isinstance(value, list | tuple):
            value = value[0]
        return int(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        raise PixelDataError(source, f"{keyword} is not a number", reason=BAD_HEADER) from None


def check_before_decode(ds: Dataset, source: str, tsyntax: UID) -> None:
    """Refuse a header no decoder should be handed; raise `PixelDataError` with the reason.

    Cheap (no pixel is decoded; an encapsulated object's item headers and each frame's first
    few hundred bytes are read), and run before every decode, whatever the caller checked.
    """
    rows = _strict_int(ds, "Rows", None, source)
    cols = _strict_int(ds, "Columns", None, source)
    bits = _strict_int(ds, "BitsAllocated", None, source)
    samples = _strict_int(ds, "SamplesPerPixel", 1, source)
    frames = _strict_int(ds, "NumberOfFrames", 1, source) or 1
    if not (0 < rows <= _US_MAX and 0 < cols <= _US_MAX):
        raise PixelDataError(source, f"image size {rows} x {cols} is impossible", reason=BAD_HEADER)
    if frames < 0:
        raise PixelDataError(source, f"NumberOfFrames is {frames}", reason=BAD_HEADER)
    if samples not in (1, 3, 4) or bits not in (1, 8, 12, 16, 32, 64):
        raise PixelDataError(
            source, f"{samples} samples of {bits} bits allocated is not a pixel format",
            reason=BAD_HEADER,
        )
    bits = float_bits(ds) or bits
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    nbytes = array_bytes(rows, cols, frames, samples, bits, palette=photometric == "PALETTE COLOR")
    check_array_size(source, nbytes, PixelDataError, TOO_LARGE)
    syntax = DECODABLE.get(tsyntax)
    if syntax is None or syntax.codestream is Codestream.NATIVE:
        return  # native, or a syntax without a decoder (reported as such by `decode`)
    expected = _SAMPLES_OF.get(photometric)
    if expected is not None and samples != expected:
        raise PixelDataError(
            source, f"PhotometricInterpretation {photometric} needs {expected} sample(s) per "
            f"pixel, the header says {samples}", reason=BAD_HEADER,
        )
    value = ds.get_item(pixel_data_tag(ds)).value  # as read: no conversion
    if not isinstance(value, bytes | bytearray):
        return  # not read from bytes: nothing to compare
    starts, count = _frame_starts(bytes(value), frames)
    if count == 0:
        raise PixelDataError(source, "encapsulated pixel data holds no fragments", reason=TRUNCATED)
    if frames > count:
        raise PixelDataError(
            source, f"the header declares {frames:,} frames but the encapsulated pixel data "
            f"holds {count:,} fragments", reason=BAD_HEADER,
        )
    for k, start in enumerate(starts):
        found = _codestream_size(bytes(value[start:start + 4096]), syntax.codestream)
        if found is None:
            continue  # unknown layout: the decoder will say
        c_rows, c_cols, c_samples, precision = found
        if (c_rows and c_rows != rows) or c_cols != cols or c_samples != samples or (
            precision > bits
        ):
            raise PixelDataError(
                source,
                f"frame {k + 1}'s codestream is {c_rows} x {c_cols}, {c_samples} samples of "
                f"{precision} bits, but the header says {rows} x {cols}, {samples} samples of "
                f"{bits} bits allocated",
                reason=BAD_HEADER,
            )


# samples per pixel each colour model has (PS3.3 C.7.6.3.1.2); unknown values are left to the
# decoders, which refuse them
_SAMPLES_OF = {
    "MONOCHROME1": 1, "MONOCHROME2": 1, "PALETTE COLOR": 1,
    "RGB": 3, "YBR_FULL": 3, "YBR_FULL_422": 3, "YBR_PARTIAL_422": 3, "YBR_PARTIAL_420": 3,
    "YBR_ICT": 3, "YBR_RCT": 3,
}


def _frame_starts(value: bytes, frames: int) -> tuple[list[int], int]:
    """(where the frames' first fragments start, how many fragments) of encapsulated data.

    Frame boundaries are known when each fragment is one frame or from the Basic Offset
    Table; otherwise only the first frame's start is returned.
    """
    offsets: list[tuple[int, int]] = []  # (value start, length) of each item after the BOT
    bot: bytes | None = None
    i, n = 0, len(value)
    while i + 8 <= n:
        tag, length = struct.unpack("<LL", value[i:i + 8])
        if tag == 0xE0DDFFFE:
            break
        if tag != 0xE000FFFE or length == 0xFFFFFFFF:
            break  # the decoders report the broken item
        if bot is None:
            bot = value[i + 8:i + 8 + length]
        else:
            offsets.append((i + 8, length))
        i += 8 + length
    if not offsets:
        return [], 0
    if len(offsets) == frames:
        return [o for o, _ in offsets], len(offsets)
    first_item = offsets[0][0] - 8
    if bot and len(bot) // 4 == frames and len(bot) % 4 == 0:
        by_item = {o - 8 - first_item: o for o, _ in offsets}
        rel = struct.unpack(f"<{frames}L", bot)
        if all(r in by_item for r in rel):
            return [by_item[r] for r in rel], len(offsets)
    return [offsets[0][0]], len(offsets)


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7}


def _codestream_size(head: bytes, codestream: Codestream) -> tuple[int, int, int, int] | None:
    """(rows, columns, components, precision) from a frame's codestream header, or None."""
    if codestream is Codestream.JPEG:
        return _jpeg_sof(head)
    if codestream is Codestream.J2K:
        at = head.find(b"\xff\x4f\xff\x51")
        if at < 0 or at + 42 > len(head):
            return None
        xsiz, ysiz, xo, yo = struct.unpack(">LLLL", head[at + 8:at + 24])
        csiz = struct.unpack(">H", head[at + 40:at + 42])[0]
        if csiz == 0 or at + 42 + 3 * csiz > len(head):
            return None
        precision = max((head[at + 42 + 3 * c] & 0x7F) + 1 for c in range(csiz))
        return max(ysiz - yo, 0), max(xsiz - xo, 0), csiz, precision
    return None


def _jpeg_sof(head: bytes) -> tuple[int, int, int, int] | None:
    if head[:2] != b"\xff\xd8":
        return None
    i, n = 2, len(head)
    while i + 4 <= n:
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            i += 2
            continue
        if marker == 0xDA:
            return None
        length = (head[i + 2] << 8) | head[i + 3]
        if marker in _SOF:
            if i + 10 > n:
                return None
            precision = head[i + 4]
            rows = (head[i + 5] << 8) | head[i + 6]
            cols = (head[i + 7] << 8) | head[i + 8]
            return rows, cols, head[i + 9], precision
        i += 2 + length
    return None


