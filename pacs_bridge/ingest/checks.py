"""Checks made from lengths alone, before anything is decoded or allocated.

Truncated pixel data is detected here without decoding, so that the bridge can refuse such
an instance before acknowledging it; a declared image must fit the pixel ceiling, and a
deflated dataset must not inflate past it (`pacs_bridge.limits`).
"""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from common.errors import CorruptFileError, TooLargeError
from pacs_bridge.limits import array_bytes, check_array_size, human, max_pixel_bytes
from pacs_bridge.transfer_syntaxes import (
    declared_transfer_syntax,
    float_bits,
    pixel_data_tag,
)

_UNDEFINED_LENGTH = 0xFFFFFFFF


def _last_element_truncated(ds: Dataset) -> str | None:
    """Name of the last top-level element if the file ended inside its value."""
    try:
        last = next(reversed(ds.keys()), None)
    except TypeError:
        last = list(ds.keys())[-1] if len(ds) else None
    if last is None:
        return None
    # the raw element, as read: converting it may raise on a broken value
    raw = ds.get_item(last, keep_deferred=True)
    if isinstance(raw, RawDataElement) and raw.length != _UNDEFINED_LENGTH:
        value = raw.value
        if value is not None and len(value) < raw.length:
            return f"{last} ({len(value)} of {raw.length} bytes)"
    return None


def _int(ds: Dataset, keyword: str, default: int | None = None) -> int | None:
    try:
        value = ds.get(keyword)
        if value is None or value == "":
            return default
        if isinstance(value, list | tuple):
            value = value[0]
        return int(value)
    except (TypeError, ValueError, IndexError):
        return default


def _declared(ds: Dataset) -> tuple[int, int, int, int, int, str] | None:
    """(rows, columns, frames, samples, bits, photometric) of the header, or None if unknowable.

    Float pixel data has 32 or 64 bits, whatever Bits Allocated says.
    """
    rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
    bits = _int(ds, "BitsAllocated")
    if not rows or not cols or not bits:
        return None
    frames = _int(ds, "NumberOfFrames", 1) or 1
    samples = _int(ds, "SamplesPerPixel", 1) or 1
    photometric = str(ds.get("PhotometricInterpretation", "") or "")
    return rows, cols, frames, samples, float_bits(ds) or bits, photometric


def expected_pixel_bytes(ds: Dataset) -> int | None:
    """Bytes a native (uncompressed) pixel data element must hold, or None if unknowable."""
    declared = _declared(ds)
    if declared is None:
        return None
    rows, cols, frames, samples, bits, photometric = declared
    if photometric in ("YBR_FULL_422", "YBR_PARTIAL_422") and samples == 3:
        samples_total = rows * cols * 2 * frames
    else:
        samples_total = rows * cols * samples * frames
    if bits == 1:
        return (samples_total + 7) // 8
    if bits == 12:  # ACR-NEMA packed: two pixels in three bytes
        return (samples_total * 3 + 1) // 2
    return samples_total * ((bits + 7) // 8)


def declared_array_bytes(ds: Dataset) -> int | None:
    """Bytes of the largest array decoding would make (`limits.array_bytes`), or None."""
    declared = _declared(ds)
    if declared is None:
        return None
    rows, cols, frames, samples, bits, photometric = declared
    palette = photometric.strip().upper() == "PALETTE COLOR"
    return array_bytes(rows, cols, frames, samples, bits, palette=palette)


def check_pixel_length(source: str, ds: Dataset) -> None:
    """Raise `CorruptFileError` (reason "truncated") if native pixel data is too short.

    Encapsulated (compressed) pixel data is recognised by its transfer syntax or, for a
    dataset received without file meta, by its undefined length; its frames are only
    checked to be present, since their sizes are unknowable without decoding.

    Either way the declared image must fit the pixel ceiling (`TooLargeError`, reason
    "too_large"; `pacs_bridge.limits`): checked from the header, before anything is
    allocated, so a few hostile bytes cannot ask for gigabytes downstream.
    """
    tag = pixel_data_tag(ds)
    if tag is None:
        return
    declared = declared_array_bytes(ds)
    if declared is not None:
        check_array_size(source, declared, TooLargeError)
    elem = ds.get_item(tag)
    value = elem.value if elem is not None else None
    ts = declared_transfer_syntax(ds)
    undefined_length = bool(getattr(elem, "is_undefined_length", False)) or (
        isinstance(elem, RawDataElement) and elem.length == _UNDEFINED_LENGTH
    )
    if ts is None:  # received without file meta: the element's length form tells
        encapsulated = undefined_length
    elif not ts.is_transfer_syntax or ts.is_compressed:  # unknown syntaxes: not checkable
        encapsulated = True
    elif undefined_length:
        raise CorruptFileError(
            source, f"encapsulated pixel data under native transfer syntax {ts.name}"
        )
    else:
        encapsulated = False
    if encapsulated:
        if not value:
            raise CorruptFileError(source, "compressed pixel data is empty", reason="truncated")
        return
    expected = expected_pixel_bytes(ds)
    if expected is None:
        return
    actual = len(value) if value is not None else 0
    if actual < expected:
        raise CorruptFileError(
            source,
            f"pixel data holds {actual:,} bytes but the header needs {expected:,} "
            "(file truncated?)",
            reason="truncated",
        )


_DEFLATED = b"1.2.840.10008.1.2.1.99"
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR",
             b"UT", b"UV"}


def _check_deflate_bomb(source: str, fp: BinaryIO) -> None:
    """Refuse a Deflated Explicit VR Little Endian file that inflates past the ceiling.

    pydicom inflates the whole dataset in one `zlib.decompress` call, so a few hundred
    kilobytes can become gigabytes before any check of ours runs. Here the stream is
    inflated in bounded chunks and only counted (nothing kept), up to the pixel ceiling plus
    a margin for the header; the file meta is walked element by element to find where the
    deflated dataset starts.
    """
    start = fp.tell()
    data = fp.read()
    fp.seek(start)
    pos = 132 if data[128:132] == b"DICM" else 0
    if _DEFLATED not in data[pos : pos + 4096]:
        return
    while pos + 8 <= len(data):
        group, _ = struct.unpack("<HH", data[pos : pos + 4])
        if group != 0x0002:
            break
        vr = data[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            (length,) = struct.unpack("<L", data[pos + 8 : pos + 12])
            pos += 12 + length
        else:
            (length,) = struct.unpack("<H", data[pos + 6 : pos + 8])
            pos += 8 + length
    limit = max_pixel_bytes() + (64 << 20)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total, pending = 0, data[pos:]
    try:
        while pending and total <= limit:
            total += len(inflater.decompress(pending, 16 << 20))
            pending = inflater.unconsumed_tail
    except zlib.error:
        return  # not a valid stream: pydicom reports it as unreadable
    if total > limit:
        raise TooLargeError(
            source, f"the deflated dataset inflates past {human(limit)} (a deflate bomb?); "
            "the ceiling is RADASSIST_MAX_PIXEL_BYTES"
        )

