"""Colour images to RGB: palette colour through its lookup tables, YBR through pydicom.

Most YBR data is already RGB after decoding (the JPEG decoders and pydicom's `as_rgb`
convert it); this catches the rest so every colour stack is RGB.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, convert_color_space
from pydicom.uid import ExplicitVRBigEndian

from common.errors import PixelDataError
from pacs_bridge.transfer_syntaxes import transfer_syntax_of

from .decode import BAD_HEADER

_YBR = ("YBR_FULL", "YBR_FULL_422")


def _big_endian_palette(stored: np.ndarray, ds: Dataset) -> np.ndarray:
    """pydicom 3.0 reads OW palette data in machine byte order; big endian files need swapping."""
    out = np.empty((*stored.shape, 3), dtype=np.uint16)
    for i, colour in enumerate(("Red", "Green", "Blue")):
        count, first, _ = (int(v) for v in ds[f"{colour}PaletteColorLookupTableDescriptor"].value)
        count = count or 65536
        data = bytes(ds[f"{colour}PaletteColorLookupTableData"].value)
        lut = np.frombuffer(data, dtype=">u2" if len(data) >= 2 * count else "u1")[:count]
        out[..., i] = lut[np.clip(stored.astype(np.int64) - first, 0, len(lut) - 1)]
    return out


def palette_to_rgb(stored: np.ndarray, ds: Dataset, source: str) -> np.ndarray:
    """(frames, rows, cols) indices -> (frames, rows, cols, 3) float32 (LUT units, 8 or 16 bit)."""
    try:
        big_endian = transfer_syntax_of(ds) == ExplicitVRBigEndian
        if big_endian and "RedPaletteColorLookupTableData" in ds:
            rgb = _big_endian_palette(stored, ds)
        else:
            rgb = apply_color_lut(stored, ds)
    except Exception as exc:  # missing/ill-formed LUT descriptors
        raise PixelDataError(
            source, f"palette colour lookup tables are unusable: {exc}", reason=BAD_HEADER
        ) from exc
    return np.asarray(rgb[..., :3], dtype=np.float32)


def ybr_to_rgb(stored: np.ndarray, photometric: str) -> np.ndarray:
    """Convert remaining 8-bit YBR_FULL* data; other depths are returned unchanged."""
    if photometric in _YBR and stored.dtype == np.uint8:
        return convert_color_space(stored, photometric, "RGB")
    return stored
