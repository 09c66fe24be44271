"""Turning physical-unit slices into the pictures the viewer shows.

Everything here is a pure numpy / Pillow function, so the browser-facing callbacks stay
thin and every display rule (window, invert, zoom, saliency blend, colour bar) is testable
without a browser. Windowing itself belongs to `imaging.pixels.to_display`; the small local
fallback only keeps the viewer usable while that module is absent.
"""

from __future__ import annotations

import atexit
import hashlib
import io
import os
import shutil
import tempfile
import threading
import time

import numpy as np
from PIL import Image, ImageDraw

from imaging.types import Window

try:  # the project's single definition of windowing
    from imaging.pixels import to_display as _to_display
except ImportError:  # pragma: no cover - only while imaging.pixels has not landed
    _to_display = None

# Anchor colours of the saliency map (low → high): dark blue, cyan, yellow, red.
_CMAP_POS = np.array([0.0, 0.35, 0.65, 1.0])
_CMAP_RGB = np.array(
    [[20, 20, 140], [0, 200, 220], [250, 230, 40], [220, 20, 20]], dtype=np.float32
)
BAR_WIDTH = 56


def _window_local(array2d: np.ndarray, window: Window | None, invert: bool) -> np.ndarray:
    a = np.asarray(array2d, dtype=np.float32)
    if window is None:
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    else:
        lo = window.center - window.width / 2.0
        hi = window.center + window.width / 2.0
    scale = 255.0 / max(hi - lo, 1e-6)
    out = np.clip((a - lo) * scale, 0, 255).astype(np.uint8)
    return 255 - out if invert else out


def window_image(
    array2d: np.ndarray, center: float | None, width: float | None, invert: bool = False
) -> np.ndarray:
    """uint8 display image of one slice (grey HxW, or RGB HxWx3 passed through)."""
    window = None
    if center is not None and width is not None and width > 0:
        window = Window("manual", float(center), float(width))
    a = np.asarray(array2d)
    if a.ndim == 3:  # colour images are shown as stored (window does not apply)
        out = np.clip(a, 0, 255).astype(np.uint8)
        return 255 - out if invert else out
    if _to_display is not None:
        return np.asarray(_to_display(a, window=window, invert=invert), dtype=np.uint8)
    return _window_local(a, window, invert)


def to_rgb(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image, dtype=np.uint8)
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3]


def colourise(saliency: np.ndarray) -> np.ndarray:
    """Map [0, 1] floats to the viewer's colour scale (RGB uint8)."""
    s = np.clip(np.nan_to_num(np.asarray(saliency, dtype=np.float32)), 0.0, 1.0)
    channels = [np.interp(s, _CMAP_POS, _CMAP_RGB[:, c]) for c in range(3)]
    return np.stack(channels, axis=-1).astype(np.uint8)


def _resize_float(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if array.shape[:2] == shape:
        return array.astype(np.float32)
    img = Image.fromarray(np.asarray(array, dtype=np.float32), mode="F")
    return np.asarray(img.resize((shape[1], shape[0]), Image.BILINEAR), dtype=np.float32)


def blend_saliency(image: np.ndarray, saliency: np.ndarray, opacity: float) -> np.ndarray:
    """Blend the saliency map over the image; weight grows with saliency, so cold areas stay
    readable grey and the hot areas carry the colour at the chosen opacity."""
    rgb = to_rgb(image).astype(np.float32)
    sal = np.clip(_resize_float(np.asarray(saliency), rgb.shape[:2]), 0.0, 1.0)
    colour = colourise(sal).astype(np.float32)
    alpha = float(np.clip(opacity, 0.0, 1.0)) * (0.25 + 0.75 * sal)[..., None]
    return np.clip(rgb * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8)


def colour_bar(height: int, label: str = "") -> np.ndarray:
    """A vertical colour bar (high at the top) with 0 / 0.5 / 1 ticks, as RGB uint8."""
    height = max(int(height), 64)
    bar = Image.new("RGB", (BAR_WIDTH, height), (24, 24, 24))
    ramp = colourise(np.linspace(1.0, 0.0, height - 16)[:, None].repeat(14, axis=1))
    bar.paste(Image.fromarray(ramp), (4, 8))
    draw = ImageDraw.Draw(bar)
    for value, y in ((1.0, 8), (0.5, 8 + (height - 16) // 2), (0.0, height - 9)):
        draw.line([(18, y), (22, y)], fill=(230, 230, 230))
        draw.text((24, max(y - 5, 0)), f"{value:g}", fill=(230, 230, 230))
    if label:
        draw.text((2, 0), label[:8], fill=(200, 200, 200))
    return np.asarray(bar)


def with_colour_bar(image: np.ndarray, label: str = "") -> np.ndarray:
    rgb = to_rgb(image)
    return np.concatenate([rgb, colour_bar(rgb.shape[0], label)], axis=1)


def zoom_crop(image: np.ndarray, zoom: float, cx: float = 0.5, cy: float = 0.5) -> np.ndarray:
    """Magnify around (cx, cy) (fractions of width / height), keeping the output size."""
    zoom = float(zoom or 1.0)
    if zoom <= 1.0:
        return image
    h, w = image.shape[:2]
    ch, cw = max(int(round(h / zoom)), 1), max(int(round(w / zoom)), 1)
    top = int(np.clip(round(cy * h - ch / 2), 0, h - ch))
    left = int(np.clip(round(cx * w - cw / 2), 0, w - cw))
    crop = np.ascontiguousarray(image[top : top + ch, left : left + cw])
    return np.asarray(Image.fromarray(crop).resize((w, h), Image.LANCZOS))


def upscale_for_display(image: np.ndarray, min_side: int = 384) -> np.ndarray:
    """Small images (64×64 MR) are enlarged so the browser does not show a postage stamp."""
    h, w = image.shape[:2]
    if min(h, w) >= min_side:
        return image
    f = min_side / min(h, w)
    return np.asarray(Image.fromarray(image).resize((round(w * f), round(h * f)), Image.BILINEAR))


def thumbnail(image: np.ndarray, size: int = 128) -> np.ndarray:
    img = Image.fromarray(to_rgb(image))
    img.thumbnail((size, size), Image.BILINEAR)
    return np.asarray(img)


# -- pictures handed to the browser ---------------------------------------------------------------
_PICTURE_DIR: str | None = None


def picture_dir() -> str:
    """A private folder for this process's rendered pictures, removed at exit."""
    global _PICTURE_DIR
    if _PICTURE_DIR is None:
        _PICTURE_DIR = tempfile.mkdtemp(prefix="radassist-view-")
        atexit.register(shutil.rmtree, _PICTURE_DIR, True)
    return _PICTURE_DIR


def picture_file(img: np.ndarray | None) -> str | None:
    """The picture as a lossless PNG file named by its content, written atomically.

    Why not hand Gradio the array: Gradio re-encodes an array output and rewrites its cached
    copy in place on every event, so the same picture rendered twice in a row (a new view,
    then a slider's re-render) can be cut short while the browser is reading it, and the
    viewer shows a broken image (seen in the browser tests). A file output is copied into
    Gradio's cache under a temporary name and renamed. PNG also keeps the display lossless
    (Gradio's default for arrays is lossy WebP).
    """
    if img is None:
        return None
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG", compress_level=1)
    data = buf.getvalue()
    path = os.path.join(picture_dir(), hashlib.sha1(data).hexdigest()[:24] + ".png")
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
        _prune(os.path.dirname(path))
    return path


def gallery_files(items: list[tuple[np.ndarray, str]]) -> list[tuple[str, str]]:
    """A gallery's (picture, caption) pairs with each picture as a `picture_file`."""
    return [(picture_file(img), caption) for img, caption in items]


PICTURE_MAX_AGE_S = 600  # Gradio copies a picture into its cache as soon as the handler returns
_WRITES = [0]


def _prune(folder: str) -> None:
    """Every 50 pictures, drop those older than ten minutes (a session of slider moves would
    otherwise keep every rendered frame until the process exits)."""
    _WRITES[0] += 1
    if _WRITES[0] % 50:
        return
    cutoff = time.time() - PICTURE_MAX_AGE_S
    for entry in os.scandir(folder):
        try:
            if entry.name.endswith(".png") and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
        except OSError:
            pass
