"""Display windows: the header's own, modality presets, and a robust automatic range.

Windows are in physical units (after the Modality LUT), like the arrays. CT has fixed
presets in Hounsfield units; MR and radiographs have no absolute scale, so their automatic
window comes from robust percentiles of the pixels themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from pydicom.dataset import Dataset

from imaging.types import Window

CT_PRESETS = (
    Window("lung", -600.0, 1500.0),
    Window("mediastinum", 40.0, 400.0),
    Window("bone", 400.0, 1800.0),
    Window("brain", 40.0, 80.0),
)
AUTO_PERCENTILES = (0.5, 99.5)
_MAX_SAMPLES = 1_000_000  # percentiles on a subsample: same window, a fraction of the time


def _values(value: object) -> list[float]:
    if value is None:
        return []
    items = value if isinstance(value, Sequence) and not isinstance(value, str | bytes) else [value]
    out = []
    for item in items:
        try:
            out.append(float(item))
        except (TypeError, ValueError):
            out.append(float("nan"))
    return out


def header_windows(ds: Dataset, pivot: float | None = None) -> tuple[Window, ...]:
    """WindowCenter/Width (top level or enhanced FrameVOILUTSequence), then a VOI LUT's range.

    `pivot` is set for inverted MONOCHROME1 data: a centre c becomes pivot - c.
    """
    source: Dataset = ds
    if "WindowCenter" not in ds:
        for seq_name in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
            groups = ds.get(seq_name)
            if groups and groups[0].get("FrameVOILUTSequence"):
                source = groups[0].FrameVOILUTSequence[0]
                break
    centers = _values(source.get("WindowCenter"))
    widths = _values(source.get("WindowWidth"))
    out: list[Window] = []
    for i, (c, w) in enumerate(zip(centers, widths, strict=False)):
        if not (np.isfinite(c) and np.isfinite(w) and w > 0):
            continue
        if pivot is not None:
            c = pivot - c
        out.append(Window("header" if i == 0 else f"header {i + 1}", c, w))
    if not out and ds.get("VOILUTSequence"):
        # a VOI LUT maps [first, first + n) to display; its linear equivalent is that range
        desc = ds.VOILUTSequence[0].get("LUTDescriptor")
        if desc and len(desc) == 3:
            n = float(desc[0] or 65536)
            first = float(desc[1])
            c = first + n / 2.0
            out.append(Window("header VOI LUT", pivot - c if pivot is not None else c, n))
    return tuple(out)


def auto_window(array: np.ndarray, name: str = "auto") -> Window | None:
    """Robust range (0.5th to 99.5th percentile) of the finite values, or None if empty."""
    flat = np.asarray(array).reshape(-1)
    if flat.size > _MAX_SAMPLES:
        flat = flat[:: flat.size // _MAX_SAMPLES + 1]
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return None
    lo, hi = (float(v) for v in np.percentile(flat, AUTO_PERCENTILES))
    if hi <= lo:
        lo, hi = float(flat.min()), float(flat.max())
    if hi <= lo:
        hi = lo + 1.0
    return Window(name, (lo + hi) / 2.0, hi - lo)


def window_presets(
    modality: str, header: Iterable[Window] = (), array: np.ndarray | None = None
) -> tuple[Window, ...]:
    """Header windows first, then the modality's presets (CT), then an automatic window.

    The automatic window needs the pixels (`array`); without them non-CT modalities get
    only their header windows.
    """
    out = list(header)
    if (modality or "").upper() == "CT":
        out.extend(CT_PRESETS)
    if array is not None:
        auto = auto_window(array)
        if auto is not None:
            out.append(auto)
    return tuple(out)


# A header window that turns this share of the image white cannot be what a reader saw:
# scanners write per-slice auto-windows, and an edge slice's (e.g. W 22 / C 11 on a 3D T1)
# saturates every other slice. Well-windowed CT and MR leave well under 10 % white.
SATURATED_SHARE = 0.30


def saturates(gray: np.ndarray, window: Window) -> bool:
    """True when `window` turns the image (nearly) all white, or shows nothing of a non-flat one."""
    flat = np.asarray(gray, dtype=np.float32).reshape(-1)
    if flat.size > _MAX_SAMPLES:
        flat = flat[:: flat.size // _MAX_SAMPLES + 1]
    flat = flat[np.isfinite(flat)]
    if flat.size == 0 or float(flat.max() - flat.min()) <= 0:
        return False
    lo, hi = window.center - window.width / 2.0, window.center + window.width / 2.0
    white = float(np.mean(flat >= hi))
    return white >= SATURATED_SHARE or float(np.mean(flat <= lo)) >= 1.0


def reader_window(gray: np.ndarray, windows: Sequence[Window]) -> tuple[Window | None, bool]:
    """The window a reader would look at this image with, and whether the header's was refused.

    The first header window (or preset), unless it saturates this image; then the robust
    percentile window. Colour images get (None, False).
    """
    chosen = default_window(windows, gray)
    if chosen is None or not chosen.name.startswith("header") or not saturates(gray, chosen):
        return chosen, False
    return auto_window(gray), True


def default_window(windows: Sequence[Window], array: np.ndarray | None = None) -> Window | None:
    """What a viewer shows first: the first header window, else a preset, else auto.

    Colour arrays (last axis 3) get None: `to_display` shows them as they are.
    """
    if windows:
        return windows[0]
    if array is None or (array.ndim >= 3 and array.shape[-1] == 3):
        return None
    return auto_window(array)


def to_display(
    array2d: np.ndarray, window: Window | None = None, invert: bool = False
) -> np.ndarray:
    """uint8 image (rows, cols) or (rows, cols, 3) for a screen.

    Without a window: a robust percentile range for grey images; colour images already
    in 0..255 are shown as they are, deeper colour is scaled by its maximum.
    """
    arr = np.asarray(array2d, dtype=np.float32)
    is_rgb = arr.ndim == 3 and arr.shape[-1] == 3
    if window is None:
        if is_rgb:
            peak = float(np.nanmax(arr)) if arr.size else 0.0
            lo, hi = 0.0, (255.0 if peak <= 255.0 else peak)
        else:
            auto = auto_window(arr)
            lo, hi = (
                (0.0, 1.0)
                if auto is None
                else (
                    auto.center - auto.width / 2.0,
                    auto.center + auto.width / 2.0,
                )
            )
    else:
        lo = window.center - window.width / 2.0
        hi = window.center + window.width / 2.0
    scale = 255.0 / max(hi - lo, 1e-6)
    out = (arr - np.float32(lo)) * np.float32(scale)
    np.nan_to_num(out, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
    np.clip(out, 0.0, 255.0, out=out)
    img = (out + 0.5).astype(np.uint8)
    if invert:
        np.subtract(255, img, out=img)
    return img
