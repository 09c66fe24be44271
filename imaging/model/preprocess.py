"""From physical-unit pixels (or an 8-bit teaching JPEG) to the network's 224x224 input.

Training images are 8-bit displays that radiologists already windowed; DICOM slices are
windowed here the same way (header window when the file has one, a modality preset
otherwise) so that training and inference see the same kind of picture. Aspect ratio is kept
by padding to a square before resizing, so anatomy is never stretched.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from monai.transforms import Compose, Resize, ScaleIntensityRange, SpatialPad

from imaging.model.backbone import INPUT_SIZE

# (center, width) presets when a CT has no usable header window
CT_DEFAULT_WINDOW = (40.0, 400.0)


def _square_resize(size: int = INPUT_SIZE) -> Compose:
    return Compose([
        _PadSquare(),
        Resize((size, size), mode="bilinear", anti_aliasing=True),
    ])


class _PadSquare:
    """Pad (C,H,W) with zeros (black) to a centred square: MONAI SpatialPad per image."""

    def __call__(self, img):
        side = max(img.shape[-2:])
        return SpatialPad((side, side), mode="constant")(img)


_RESIZE = _square_resize()


def to_input(gray01: np.ndarray) -> torch.Tensor:
    """(H,W) float in [0,1] -> (1,224,224) float32 tensor."""
    arr = np.ascontiguousarray(gray01, dtype=np.float32)[None]
    out = _RESIZE(torch.from_numpy(arr))
    if hasattr(out, "as_tensor"):  # MONAI MetaTensor -> plain tensor
        out = out.as_tensor()
    return out.to(torch.float32).clamp_(0.0, 1.0)


def load_jpeg(path: str | Path) -> np.ndarray:
    """An 8-bit grayscale image file -> (H,W) float32 in [0,1]."""
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("L"), dtype=np.float32)
    return arr / 255.0


def window(image: np.ndarray, center: float, width: float) -> np.ndarray:
    """Physical units -> [0,1] through a display window (MONAI ScaleIntensityRange)."""
    lo, hi = center - width / 2.0, center + width / 2.0
    t = ScaleIntensityRange(a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True)
    return np.asarray(t(image.astype(np.float32)), dtype=np.float32)


def auto_window(image: np.ndarray, modality: str, header_window: tuple[float, float] | None):
    """Choose the display window the way a reader would, so training and inference agree.

    CT: the header window (what the sender chose to display), else soft tissue.
    MR / radiographs: the header window if any, else the 0.5-99.5 percentile range.
    """
    if header_window is not None and header_window[1] > 1:
        return window(image, *header_window)
    if modality == "CT":
        return window(image, *CT_DEFAULT_WINDOW)
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return np.zeros_like(image, dtype=np.float32)
    lo, hi = np.percentile(finite, [0.5, 99.5])
    if hi - lo < 1e-6:
        return np.zeros_like(image, dtype=np.float32)
    return window(image, (lo + hi) / 2.0, hi - lo)
