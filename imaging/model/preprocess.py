"""From physical-unit pixels (or an 8-bit teaching JPEG) to the network's 224x224 input.

Training images are 8-bit displays that radiologists already windowed; DICOM slices are
windowed here the same way (header window when the file has one, a modality preset
otherwise) so that training and inference see the same kind of picture. Aspect ratio is kept
by padding to a square before resizing, so anatomy is never stretched.

The pipeline is MONAI's: `ScaleIntensityRange`, `SpatialPad` to a centred square, `Resize`
with anti-aliasing (a Gaussian of sigma (s-1)/2, MONAI's `gaussian_1d` "erf" kernel, then
bilinear interpolation). `monai_to_input` / `monai_window` run those transforms and are what
training uses. `to_input` / `window` run the same arithmetic with plain torch and numpy,
because `import monai` imports all of MONAI eagerly (apps, networks, transformers,
torchvision: 8-9 s on these two cores) and a radiologist's `radassist analyze` must start in
seconds. Tests hold the two paths bit-identical on real images of many shapes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from imaging.model.backbone import INPUT_SIZE

# (center, width) presets when a CT has no usable header window
GAUSSIAN_TRUNCATED = 4.0  # MONAI GaussianFilter's default tail, in sigmas


# -- the MONAI transforms (training, and the reference the fast path is tested against) ---------
def monai_square_resize(size: int = INPUT_SIZE):
    from monai.transforms import Compose, Resize, SpatialPad

    class PadSquare:
        """Pad (C,H,W) with zeros (black) to a centred square: MONAI SpatialPad per image."""

        def __call__(self, img):
            side = max(img.shape[-2:])
            return SpatialPad((side, side), mode="constant")(img)

    return Compose([PadSquare(), Resize((size, size), mode="bilinear", anti_aliasing=True)])


_MONAI_RESIZE = None


def monai_to_input(gray01: np.ndarray) -> torch.Tensor:
    """(H,W) float in [0,1] -> (1,224,224) float32 tensor, through MONAI transforms."""
    global _MONAI_RESIZE
    if _MONAI_RESIZE is None:
        _MONAI_RESIZE = monai_square_resize()
    arr = np.ascontiguousarray(gray01, dtype=np.float32)[None]
    out = _MONAI_RESIZE(torch.from_numpy(arr))
    if hasattr(out, "as_tensor"):  # MONAI MetaTensor -> plain tensor
        out = out.as_tensor()
    return out.to(torch.float32).clamp_(0.0, 1.0)


def monai_window(image: np.ndarray, center: float, width: float) -> np.ndarray:
    from monai.transforms import ScaleIntensityRange

    lo, hi = center - width / 2.0, center + width / 2.0
    t = ScaleIntensityRange(a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True)
    return np.asarray(t(image.astype(np.float32)), dtype=np.float32)


# -- the same arithmetic without importing MONAI (inference) ------------------------------------
def _gaussian_1d(sigma: float) -> torch.Tensor:
    """MONAI `gaussian_1d(sigma, truncated=4.0, approx="erf")`: the Gaussian integrated over
    each pixel (differences of erf), not normalised, float32."""
    s = torch.as_tensor(sigma, dtype=torch.float)
    tail = int(max(float(s) * GAUSSIAN_TRUNCATED, 0.5) + 0.5)
    x = torch.arange(-tail, tail + 1, dtype=torch.float)
    t = 0.70710678 / torch.abs(s)
    return (0.5 * ((t * (x + 0.5)).erf() - (t * (x - 0.5)).erf())).clamp(min=0)


def _smooth(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """(1,S,S) -> Gaussian-smoothed, zero padding, rows then columns (MONAI's order)."""
    k = _gaussian_1d(sigma)
    pad = (k.shape[0] - 1) // 2
    x = torch.nn.functional.pad(img[None], [pad, pad, 0, 0])  # columns first, as MONAI pads
    x = torch.nn.functional.pad(x, [0, 0, pad, pad])
    x = torch.nn.functional.conv2d(x, k.reshape(1, 1, -1, 1))
    x = torch.nn.functional.conv2d(x, k.reshape(1, 1, 1, -1))
    return x[0]


def _pad_square(img: torch.Tensor) -> torch.Tensor:
    h, w = img.shape[-2:]
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    return torch.nn.functional.pad(img, [left, side - w - left, top, side - h - top])


def to_input(gray01: np.ndarray, size: int = INPUT_SIZE) -> torch.Tensor:
    """(H,W) float in [0,1] -> (1,size,size) float32 tensor (same numbers as `monai_to_input`)."""
    img = _pad_square(torch.from_numpy(np.ascontiguousarray(gray01, dtype=np.float32)[None]))
    side = img.shape[-1]
    if side != size:
        if side > size:  # anti-aliasing only when shrinking
            factor = torch.div(torch.Tensor([side]), torch.Tensor([size]))
            sigma = torch.maximum(torch.zeros(1), (factor - 1) / 2).tolist()[0]
            img = _smooth(img, sigma)
        img = torch.nn.functional.interpolate(img[None], size=(size, size), mode="bilinear",
                                              align_corners=None)[0]
    return img.to(torch.float32).clamp_(0.0, 1.0)


def window(image: np.ndarray, center: float, width: float) -> np.ndarray:
    """Physical units -> [0,1] through a display window (MONAI ScaleIntensityRange's sums)."""
    lo, hi = center - width / 2.0, center + width / 2.0
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    x = (x - lo) / (hi - lo)
    x = x * (1.0 - 0.0) + 0.0
    return x.clamp(0.0, 1.0).numpy()


def load_jpeg(path: str | Path) -> np.ndarray:
    """An 8-bit grayscale image file -> (H,W) float32 in [0,1]."""
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("L"), dtype=np.float32)
    return arr / 255.0


