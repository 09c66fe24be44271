"""One instance's frames in physical units: the function every model and viewer calls.

The pipeline is decode once → Modality LUT (per frame when the object is enhanced) →
MONOCHROME1 inversion → colour to RGB, producing float32 with a frames-first shape, so a
single-frame radiograph and a 300-frame enhanced CT look alike to their callers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset

from common.errors import PixelDataError, RadAssistError
from imaging.types import Window

from .colour import palette_to_rgb, ybr_to_rgb
from .decode import BAD_HEADER, TOO_LARGE, Decoded, decode
from .luts import invert_monochrome1, rescale_of, to_physical
from .windows import header_windows


@dataclass(frozen=True)
class Frames:
    """Decoded frames plus what was learnt while decoding them."""

    array: np.ndarray = field(repr=False)  # float32 (n, rows, cols) or (n, rows, cols, 3)
    photometric: str  # "MONOCHROME2" or "RGB"
    windows: tuple[Window, ...]  # header windows, in the units of `array`
    transfer_syntax: str
    notes: tuple[str, ...] = ()  # warnings with a code prefix, e.g. "bad_modality_lut: ..."


def _source_of(obj: object, source: str | None) -> tuple[Dataset, str]:
    ds = getattr(obj, "dataset", obj)
    if not isinstance(ds, Dataset):
        raise TypeError(f"expected an Instance or a pydicom Dataset, got {type(obj).__name__}")
    if source is None:
        source = getattr(obj, "source", None) or getattr(ds, "filename", None) or "<dataset>"
    return ds, str(source)


def decode_frames(obj: object, source: str | None = None) -> Frames:
    """Like `instance_frames`, but also returns the photometric and header windows.

    Raises `PixelDataError` only: whatever pydicom raises on a header value it cannot read
    (a LUT descriptor, a rescale, a window) is translated, naming the file.
    """
    ds, source = _source_of(obj, source)
    decoded = decode(ds, source)
    try:
        return _physical(ds, source, decoded)
    except RadAssistError:
        raise
    except MemoryError as exc:
        raise PixelDataError(source, "out of memory converting pixels", reason=TOO_LARGE) from exc
    except Exception as exc:
        text = " ".join(str(exc).split())[:200]
        raise PixelDataError(
            source, f"pixel header unusable ({type(exc).__name__}: {text})", reason=BAD_HEADER
        ) from exc


def _physical(ds: Dataset, source: str, decoded: Decoded) -> Frames:
    stored = decoded.array
    photometric = decoded.photometric
    samples = stored.shape[-1] if stored.ndim == 4 else 1
    if photometric == "PALETTE COLOR" and samples == 1:
        return Frames(palette_to_rgb(stored, ds, source), "RGB", (), decoded.transfer_syntax)
    if samples == 3:
        rgb = ybr_to_rgb(stored, photometric)
        return Frames(rgb.astype(np.float32), "RGB", (), decoded.transfer_syntax)
    if samples != 1:
        raise PixelDataError(
            source,
            f"{samples} samples per pixel ({photometric}) is not supported",
            reason=BAD_HEADER,
        )
    rescale = rescale_of(ds, stored.shape[0])
    values = to_physical(stored, ds, rescale)
    pivot = None
    if photometric == "MONOCHROME1":
        pivot = invert_monochrome1(values, ds, rescale)
    notes = (rescale.note,) if rescale.note else ()
    windows = header_windows(ds, pivot)
    return Frames(values, "MONOCHROME2", windows, decoded.transfer_syntax, notes)


def instance_frames(instance_or_dataset: object, source: str | None = None) -> np.ndarray:
    """float32 frames in physical units: (frames, rows, cols) or (frames, rows, cols, 3).

    Modality LUT applied (rescale slope/intercept, per frame for enhanced objects, or the
    Modality LUT Sequence), MONOCHROME1 inverted so higher is brighter, YBR and palette
    colour converted to RGB. Raises `PixelDataError` naming the file and the reason.
    """
    return decode_frames(instance_or_dataset, source).array
