"""Where each frame of an instance is: orientation, position and pixel spacing.

From per-frame functional groups (enhanced objects), RT dose grid offsets, or the top-level
attributes; and the tolerances by which two slices share an orientation or a spacing.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset

from .luts import functional_item

ORIENTATION_TOLERANCE = 5e-3  # max abs difference of direction cosines within one stack


def _floats(value: object, n: int) -> np.ndarray | None:
    try:
        arr = np.asarray([float(v) for v in value], dtype=np.float64)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    return arr if arr.shape == (n,) and np.all(np.isfinite(arr)) else None


def _spacing_pair(ds: Dataset | None) -> tuple[float, float] | None:
    if ds is None:
        return None
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        pair = _floats(ds.get(keyword), 2) if keyword in ds else None
        if pair is not None and np.all(pair > 0):
            return float(pair[0]), float(pair[1])
    return None


def _unit_orientation(iop: np.ndarray | None) -> np.ndarray | None:
    if iop is None:
        return None
    row, col = iop[:3], iop[3:]
    nr, nc = np.linalg.norm(row), np.linalg.norm(col)
    if nr < 1e-6 or nc < 1e-6 or np.linalg.norm(np.cross(row, col)) < 1e-6 * nr * nc:
        return None
    return np.concatenate([row / nr, col / nc])


def frame_geometry(
    ds: Dataset, n_frames: int
) -> list[tuple[np.ndarray | None, np.ndarray | None, tuple[float, float] | None]]:
    """(orientation, position, pixel spacing) per frame, from per-frame groups or the top level."""
    top_iop = _unit_orientation(_floats(ds.get("ImageOrientationPatient"), 6))
    top_ipp = _floats(ds.get("ImagePositionPatient"), 3)
    top_spacing = _spacing_pair(ds)
    enhanced = "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds
    out = []
    if enhanced:
        for i in range(n_frames):
            orient = functional_item(ds, i, "PlaneOrientationSequence")
            pos = functional_item(ds, i, "PlanePositionSequence")
            measures = functional_item(ds, i, "PixelMeasuresSequence")
            iop = _unit_orientation(
                _floats(orient.get("ImageOrientationPatient"), 6) if orient is not None else None
            )
            ipp = _floats(pos.get("ImagePositionPatient"), 3) if pos is not None else None
            out.append(
                (
                    iop if iop is not None else top_iop,
                    ipp if ipp is not None else (top_ipp if n_frames == 1 else None),
                    _spacing_pair(measures) or top_spacing,
                )
            )
        return out
    offsets = _floats(ds.get("GridFrameOffsetVector"), n_frames) if n_frames > 1 else None
    for i in range(n_frames):
        if n_frames == 1:
            ipp = top_ipp
        elif offsets is not None and top_ipp is not None and top_iop is not None:
            normal = np.cross(top_iop[:3], top_iop[3:])  # RT dose: frames offset along normal
            ipp = top_ipp + offsets[i] * normal
        else:
            ipp = None  # classic multi-frame (cine): frames are time points, not positions
        out.append((top_iop, ipp, top_spacing))
    return out


def _same_orientation(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return float(np.max(np.abs(a - b))) <= ORIENTATION_TOLERANCE


def _distinct(items: list, same) -> int:
    reps: list = []
    for item in items:
        if not any(same(item, r) for r in reps):
            reps.append(item)
    return len(reps)


def _close_spacing(a: tuple[float, float] | None, b: tuple[float, float] | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a[0] - b[0]) <= 1e-3 * max(a[0], 1.0) and abs(a[1] - b[1]) <= 1e-3 * max(a[1], 1.0)
