"""A stack's slices as the network sees them: empty edge slices skipped, at most the bundle's
`max_slices_per_stack` evenly spaced, each windowed as a reader would, before any model runs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from imaging.model.bundle import BundleSpec, bundle_spec
from imaging.model.preprocess import to_input, window
from imaging.types import ImageStack

# A slice is empty (edge of a volume, outside the body) when its share of pixels above the
# stack's background is below this fraction of the fullest slice's share.
EMPTY_SLICE_SHARE = 0.25


def gray_and_chroma(image: np.ndarray) -> tuple[np.ndarray, float]:
    """Grey values and how colourful an RGB image is (0 for greyscale)."""
    if image.ndim == 3 and image.shape[-1] == 3:
        rgb = image.astype(np.float32)
        span = float(np.nanmax(rgb) - np.nanmin(rgb)) or 1.0
        chroma = float(np.mean(np.abs(rgb[..., 0] - rgb[..., 1]) +
                               np.abs(rgb[..., 1] - rgb[..., 2]))) / span
        return rgb.mean(axis=-1), chroma
    return image.astype(np.float32), 0.0


def to_unit(gray: np.ndarray, stack: ImageStack) -> tuple[np.ndarray, bool]:
    """Windowed to [0, 1] as a reader would see it; True when the header window was refused."""
    from imaging.pixels import auto_window, reader_window

    win, refused = (None, False) if stack.photometric == "RGB" else reader_window(
        gray, stack.windows)
    if win is None:
        win = auto_window(gray)
    if win is None or not win.width > 0 or not np.isfinite(win.width):
        return np.zeros_like(gray, dtype=np.float32), refused
    return window(gray, win.center, win.width), refused


def display(gray01: np.ndarray) -> np.ndarray:
    return np.round(np.clip(gray01, 0.0, 1.0) * 255.0).astype(np.uint8)


def select_slices(n: int, limit: int, keep: np.ndarray | None = None) -> np.ndarray:
    """Evenly spaced slice indices (all of them for short stacks), within `keep` if given."""
    candidates = np.arange(n) if keep is None or not len(keep) else np.asarray(keep)
    if len(candidates) <= limit:
        return candidates
    picks = np.linspace(0, len(candidates) - 1, limit).round().astype(int)
    return candidates[np.unique(picks)]


def content_slices(arr: np.ndarray) -> np.ndarray:
    """Indices of the slices that hold something: empty edge slices of a volume are dropped.

    Content is the share of a slice's pixels above the stack's background level (10 % of
    the way from its 1st to its 99th percentile); slices with less than EMPTY_SLICE_SHARE
    of the fullest slice's share are empty. Stacks of one or two slices keep them all.
    """
    n = int(arr.shape[0])
    if n <= 2 or arr.ndim != 3:
        return np.arange(n)
    step = max(1, int(np.prod(arr.shape[1:])) // 20_000)
    sample = arr.reshape(n, -1)[:, ::step].astype(np.float32)
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:
        return np.arange(n)
    lo, hi = np.percentile(finite, [1.0, 99.0])
    if hi <= lo:
        return np.arange(n)
    share = np.mean(np.nan_to_num(sample, nan=lo) > lo + 0.1 * (hi - lo), axis=1)
    keep = np.flatnonzero(share >= EMPTY_SLICE_SHARE * float(share.max()))
    return np.arange(keep[0], keep[-1] + 1) if len(keep) else np.arange(n)


@dataclass(frozen=True)
class PreparedStack:
    """A stack's analysed slices windowed as a reader sees them, before any model runs.

    Split from `interpret` so that an evaluation can batch many stacks through the network
    and still read every one with the code a real study goes through.
    """

    stack: ImageStack
    n_images: int
    idx: np.ndarray  # stack indices of the analysed slices
    units: tuple[np.ndarray, ...]  # windowed [0, 1] slices, one per idx
    chromas: tuple[float, ...]
    stds: tuple[float, ...]
    warnings: tuple[str, ...]
    input_size: int = 224  # the bundle's; `prepare_stack` sets it

    def batch(self) -> torch.Tensor:
        return torch.stack([to_input(u, self.input_size) for u in self.units])


def prepare_stack(stack: ImageStack, spec: BundleSpec | None = None) -> PreparedStack:
    """Skip empty edge slices, choose at most the bundle's `max_slices_per_stack`, window each
    as a reader would. `spec`: the bundle's (default: the weights `get_model()` loads)."""
    spec = spec or bundle_spec()
    arr = np.asarray(stack.array)
    if arr.ndim in (2,) or (arr.ndim == 3 and arr.shape[-1] == 3 and stack.photometric == "RGB"):
        arr = arr[None]
    n_images = int(arr.shape[0])
    keep = content_slices(arr) if stack.photometric != "RGB" else np.arange(n_images)
    idx = select_slices(n_images, spec.max_slices_per_stack, keep=keep)
    warnings: list[str] = list(stack.warnings)
    if len(keep) < n_images:
        warnings.append(f"empty_slices: {n_images - len(keep)} empty edge slice(s) of "
                        f"{n_images} skipped")
    if len(idx) < len(keep):
        warnings.append(f"subsampled: {len(idx)} of {len(keep)} slices analysed")

    units, chromas, stds, refused = [], [], [], 0
    for i in idx:
        gray, chroma = gray_and_chroma(arr[i])
        unit, saturated = to_unit(gray, stack)
        refused += saturated
        units.append(unit)
        chromas.append(chroma)
        stds.append(float(np.std(unit)))
    if refused:
        warnings.append(f"header_window_saturates: the header window turns {refused} of "
                        f"{len(idx)} analysed slices white; the 0.5-99.5 % window was used")
    return PreparedStack(stack, n_images, idx, tuple(units), tuple(chromas), tuple(stds),
                         tuple(warnings), spec.input_size)


__all__ = ["PreparedStack", "content_slices", "display", "prepare_stack", "select_slices"]
