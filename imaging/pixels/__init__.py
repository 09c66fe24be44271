"""DICOM pixels in physical units, with geometry: what models and viewers consume.

- `instance_frames(instance_or_dataset)`: float32 frames of one object.
- `series_stacks(series)`: geometrically consistent volumes of a series, with warnings.
- `window_presets(modality, header_windows)`, `to_display(array2d, window)`: for screens.
"""

from __future__ import annotations

from common.errors import PixelDataError

from .frames import Frames, decode_frames, instance_frames
from .stacks import series_stacks
from .windows import (
    CT_PRESETS,
    auto_window,
    default_window,
    header_windows,
    reader_window,
    saturates,
    to_display,
    window_presets,
)

__all__ = [
    "CT_PRESETS",
    "Frames",
    "PixelDataError",
    "auto_window",
    "decode_frames",
    "default_window",
    "header_windows",
    "instance_frames",
    "reader_window",
    "saturates",
    "series_stacks",
    "to_display",
    "window_presets",
]
