"""Stored values to physical units: the Modality LUT stage, and MONOCHROME1 inversion.

Enhanced multi-frame objects carry RescaleSlope/Intercept per frame (or shared) in
PixelValueTransformationSequence instead of at the top level, so the rescale is looked up
per frame. MONOCHROME1 is inverted about the mid-point of the physical value range so that
higher values always mean brighter, while values stay in the same units and range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut


@dataclass(frozen=True)
class Rescale:
    """Per-frame linear rescale, or a Modality LUT Sequence (then slopes are unused)."""

    slopes: np.ndarray  # float64, one per frame
    intercepts: np.ndarray
    lut: bool = False
    note: str = ""  # set when a malformed Modality LUT was ignored

    @property
    def is_identity(self) -> bool:
        return not self.lut and bool(np.all(self.slopes == 1.0) and np.all(self.intercepts == 0.0))


def functional_item(ds: Dataset, frame: int, sequence: str) -> Dataset | None:
    """The item of a functional group macro that applies to one frame (per-frame wins)."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and frame < len(per_frame):
        group = per_frame[frame].get(sequence)
        if group:
            return group[0]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        group = shared[0].get(sequence)
        if group:
            return group[0]
    return None


def _number(value: object, default: float) -> float:
    try:
        out = float(value)  # DS values may be strings or None
    except (TypeError, ValueError):
        return default
    return out if np.isfinite(out) else default


def _usable_lut(ds: Dataset) -> bool:
    item = ds.ModalityLUTSequence[0]
    desc = item.get("LUTDescriptor")
    return bool(desc is not None and len(desc) == 3 and item.get("LUTData") is not None)


def rescale_of(ds: Dataset, n_frames: int) -> Rescale:
    note = ""
    if ds.get("ModalityLUTSequence"):
        if _usable_lut(ds):
            ones = np.ones(n_frames)
            return Rescale(ones, np.zeros(n_frames), lut=True)
        note = (
            "bad_modality_lut: the Modality LUT Sequence has no usable descriptor or data; "
            "ignored (values are rescaled stored values)"
        )
    slopes = np.ones(n_frames)
    intercepts = np.zeros(n_frames)
    if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
        for i in range(n_frames):
            item = functional_item(ds, i, "PixelValueTransformationSequence")
            if item is not None:
                slopes[i] = _number(item.get("RescaleSlope"), 1.0)
                intercepts[i] = _number(item.get("RescaleIntercept"), 0.0)
            elif "RescaleSlope" in ds or "RescaleIntercept" in ds:
                slopes[i] = _number(ds.get("RescaleSlope"), 1.0)
                intercepts[i] = _number(ds.get("RescaleIntercept"), 0.0)
    elif "RescaleSlope" in ds or "RescaleIntercept" in ds:
        slopes[:] = _number(ds.get("RescaleSlope"), 1.0)
        intercepts[:] = _number(ds.get("RescaleIntercept"), 0.0)
    slopes[slopes == 0] = 1.0  # a zero slope is a header error; keep the stored values
    return Rescale(slopes, intercepts, note=note)


def to_physical(stored: np.ndarray, ds: Dataset, rescale: Rescale) -> np.ndarray:
    """float32 physical values; one new array, rescaled in place (decode once, copy once)."""
    if rescale.lut:
        return np.asarray(apply_modality_lut(stored, ds), dtype=np.float32)
    out = stored.astype(np.float32)  # the one copy
    if rescale.is_identity:
        return out
    if np.all(rescale.slopes == rescale.slopes[0]) and np.all(
        rescale.intercepts == rescale.intercepts[0]
    ):
        if rescale.slopes[0] != 1.0:
            out *= np.float32(rescale.slopes[0])
        if rescale.intercepts[0] != 0.0:
            out += np.float32(rescale.intercepts[0])
        return out
    for i in range(out.shape[0]):
        out[i] *= np.float32(rescale.slopes[i])
        out[i] += np.float32(rescale.intercepts[i])
    return out


def stored_range(ds: Dataset) -> tuple[float, float] | None:
    """Smallest and largest value the stored pixels can take (None for float pixel data)."""
    bits = ds.get("BitsStored") or ds.get("BitsAllocated")
    if not bits or 0x7FE00010 not in ds:  # PixelData (float data has no range)
        return None
    bits = int(bits)
    if int(ds.get("PixelRepresentation", 0) or 0) == 1:
        return -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
    return 0.0, 2.0**bits - 1


def invert_monochrome1(values: np.ndarray, ds: Dataset, rescale: Rescale) -> float:
    """Invert in place so that higher means brighter; return the pivot (lo + hi).

    A header window centre c becomes pivot - c on the inverted values.
    """
    if rescale.lut:
        desc = ds.ModalityLUTSequence[0].LUTDescriptor
        first, count = int(desc[1]), int(desc[0] or 65536)
        mapped = apply_modality_lut(np.arange(first, first + count, dtype=np.int64), ds)
        pivot = float(mapped.min()) + float(mapped.max())
    else:
        rng = stored_range(ds)
        if rng is None:
            finite = values[np.isfinite(values)]
            pivot = float(finite.min() + finite.max()) if finite.size else 0.0
            np.subtract(np.float32(pivot), values, out=values)
            return pivot
        # the rescale of the first frame decides the pivot; per-frame pivots if they differ
        lo, hi = rng
        pivots = (lo + hi) * rescale.slopes + 2.0 * rescale.intercepts
        if np.all(pivots == pivots[0]):
            np.subtract(np.float32(pivots[0]), values, out=values)
            return float(pivots[0])
        for i in range(values.shape[0]):
            np.subtract(np.float32(pivots[i]), values[i], out=values[i])
        return float(pivots[0])
    np.subtract(np.float32(pivot), values, out=values)
    return pivot
