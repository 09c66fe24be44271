"""Siemens MOSAIC: one stored image that is really a grid of slices.

Siemens EPI (fMRI, diffusion) stores every slice of one volume as a tile of a single large
image, ImageType containing "MOSAIC". Read as one picture it is a 6×6 contact sheet that no
model was trained on. The slice count comes from the CSA image header (read with nibabel,
the field's reader for it), else from the private NumberOfImagesInMosaic element, else from
the tile grid the acquisition matrix implies. Positions follow nibabel's MosaicWrapper: the
stored ImagePositionPatient is the corner of the whole mosaic, so it is moved to the corner
of one tile, and slices advance along the CSA slice normal by the slice spacing.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

_SIEMENS_MR_HEADER = "SIEMENS MR HEADER"


@dataclass(frozen=True)
class MosaicLayout:
    n_slices: int
    grid: int  # tiles per row and per column
    tile_rows: int
    tile_cols: int
    normal: tuple[float, float, float] | None  # CSA SliceNormalVector, when stated


def is_mosaic(ds: Dataset) -> bool:
    try:
        return "MOSAIC" in {str(v).upper() for v in (ds.get("ImageType") or ())}
    except TypeError:
        return False


def _csa(ds: Dataset) -> tuple[int | None, tuple[float, float, float] | None]:
    """(NumberOfImagesInMosaic, SliceNormalVector) from the CSA image header, if readable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nibabel warns that its DICOM readers are young
            from nibabel.nicom import csareader

            header = csareader.get_csa_header(ds, "image")
            if header is None:
                return None, None
            n = csareader.get_n_mosaic(header)
            normal = csareader.get_slice_normal(header)
    except Exception:  # noqa: BLE001 - a malformed private header is not an error of ours
        return None, None
    vec = None
    if normal is not None and len(normal) == 3 and np.all(np.isfinite(normal)):
        vec = tuple(float(v) for v in normal)
    return (int(n) if n else None), vec


def _private_count(ds: Dataset) -> int | None:
    try:
        block = ds.private_block(0x0019, _SIEMENS_MR_HEADER)
        value = block[0x0A].value
        return int(value[0] if isinstance(value, list | tuple | bytes) else value)
    except (KeyError, ValueError, TypeError, IndexError):
        return None


def _tile_side(ds: Dataset) -> int | None:
    matrix = [int(v) for v in (ds.get("AcquisitionMatrix") or ()) if v]
    return max(matrix) if matrix else None


def mosaic_layout(ds: Dataset, shape: tuple[int, ...]) -> MosaicLayout | None:
    """The tile layout of a MOSAIC image of `shape` (frames, rows, cols), or None.

    None also when the header calls it a mosaic but the numbers do not fit the pixels:
    the image is then analysed as stored, which is at worst what happened before.
    """
    if not is_mosaic(ds) or len(shape) != 3 or shape[0] != 1:
        return None
    rows, cols = int(shape[1]), int(shape[2])
    n, normal = _csa(ds)
    n = n or _private_count(ds)
    if n:
        grid = math.ceil(math.sqrt(n))
    else:
        side = _tile_side(ds)
        if not side or rows % side:
            return None
        grid = rows // side
        n = grid * grid  # empty tiles are dropped by `unpack`
    if n <= 1 or grid <= 1 or rows % grid or cols % grid:
        return None
    return MosaicLayout(n, grid, rows // grid, cols // grid, normal)


def unpack(image: np.ndarray, layout: MosaicLayout) -> np.ndarray:
    """(n, tile_rows, tile_cols) slices of one mosaic image, trailing empty tiles dropped."""
    tiles = []
    for k in range(layout.n_slices):
        r, c = divmod(k, layout.grid)
        tiles.append(image[r * layout.tile_rows:(r + 1) * layout.tile_rows,
                           c * layout.tile_cols:(c + 1) * layout.tile_cols])
    out = np.stack(tiles)
    while len(out) > 1 and not np.any(out[-1]):
        out = out[:-1]
    return np.ascontiguousarray(out)


def tile_positions(ds: Dataset, layout: MosaicLayout, n: int,
                   orientation: np.ndarray | None, position: np.ndarray | None,
                   spacing: tuple[float, float] | None) -> list[np.ndarray | None]:
    """ImagePositionPatient of each of the `n` slices (None when the header lacks geometry)."""
    if orientation is None or position is None or spacing is None:
        return [None] * n
    row_cos, col_cos = orientation[:3], orientation[3:]
    row_mm, col_mm = spacing  # PixelSpacing: between rows, then between columns
    corner = (position
              + col_cos * row_mm * (int(ds.Rows) - layout.tile_rows) / 2.0
              + row_cos * col_mm * (int(ds.Columns) - layout.tile_cols) / 2.0)
    normal = np.asarray(layout.normal) if layout.normal is not None else np.cross(row_cos, col_cos)
    step = 0.0
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        try:
            step = float(ds.get(keyword) or 0.0)
        except (TypeError, ValueError):
            step = 0.0
        if step > 0:
            break
    step = step or 1.0
    return [corner + k * step * normal for k in range(n)]
