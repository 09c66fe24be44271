"""A series becomes geometrically consistent stacks (volumes), with what is odd about them.

Slices are ordered along the slice normal (row cosines × column cosines, dotted with
ImagePositionPatient; per-frame PlanePositionSequence in enhanced objects), never by
instance number or file name. Whatever would make a single array a lie — mixed
orientations or sizes, repeated positions — splits the series into several stacks;
whatever only makes it imperfect — uneven spacing, gaps, gantry tilt, too few slices — is
reported as a warning with a stable code prefix:

    skipped_instance, mixed_orientation, mixed_size, mixed_pixel_spacing,
    duplicate_positions, not_a_volume, uneven_spacing, missing_slices, gantry_tilt,
    too_few_slices, missing_pixel_spacing, mosaic, four_d

A series that visits every position several times (diffusion directions, fMRI time points,
echoes) is one 4D series, not several: it becomes one stack, the representative volume
(lowest b-value, else the first in acquisition order), with `n_volumes` saying how many
there are and a `four_d` warning saying which one was kept.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset

from common.errors import GeometryError, PixelDataError, RadAssistError
from imaging.types import ImageStack, Window

from .four_d import as_float, b_value, representative_volume
from .frames import decode_frames
from .geometry import (
    _close_spacing,
    _distinct,
    _same_orientation,
    frame_geometry,
)
from .mosaic import MosaicLayout, mosaic_layout, tile_positions, unpack
from .windows import window_presets

SAME_POSITION_MM = 0.01  # slices closer than this along the normal share a position
UNEVEN_RELATIVE = 0.05  # a step may differ from the median step by 5 % + 0.01 mm
GANTRY_TILT_DEGREES = 1.0  # angle between slice normal and the direction slices advance
MIN_VOLUME_SLICES = 4  # dicom2nifti's rule: fewer slices are a localizer, not a volume


@dataclass
class _Slice:
    instance: int  # index of the decoded instance
    frame: int  # 0-based within the instance
    sop_uid: str
    orientation: np.ndarray | None
    position: np.ndarray | None
    pixel_spacing: tuple[float, float] | None
    shape: tuple[int, ...]
    photometric: str
    distance: float = math.nan  # along the slice normal
    b_value: float | None = None  # diffusion weighting, s/mm²
    echo_time: float | None = None


@dataclass
class _Group:
    slices: list[_Slice] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _fmt(values: Iterable[float]) -> str:
    return "(" + ", ".join(f"{v:.3g}" for v in values) + ")"


def _split_by_orientation_and_size(slices: list[_Slice]) -> list[_Group]:
    groups: list[_Group] = []
    for s in slices:
        for g in groups:
            first = g.slices[0]
            if (
                first.shape == s.shape
                and first.photometric == s.photometric
                and _same_orientation(first.orientation, s.orientation)
                and (first.position is None) == (s.position is None)
                and _close_spacing(first.pixel_spacing, s.pixel_spacing)
            ):
                g.slices.append(s)
                break
        else:
            groups.append(_Group([s]))
    if len(groups) > 1:
        firsts = [g.slices[0] for g in groups]
        notes = []
        orients = _distinct([f.orientation for f in firsts], _same_orientation)
        if orients > 1:
            notes.append(
                f"mixed_orientation: the series has {orients} slice orientations; "
                f"split into {len(groups)} stacks"
            )
        sizes = len({(f.shape, f.photometric) for f in firsts})
        if sizes > 1:
            shapes = sorted({"x".join(map(str, f.shape)) for f in firsts})
            notes.append(
                f"mixed_size: the series has images of {sizes} sizes ({', '.join(shapes)}); "
                f"split into {len(groups)} stacks"
            )
        spacings = _distinct([f.pixel_spacing for f in firsts], _close_spacing)
        if spacings > 1:
            notes.append(
                f"mixed_pixel_spacing: the series has {spacings} pixel spacings; "
                f"split into {len(groups)} stacks"
            )
        if not notes:
            notes.append(
                f"mixed_geometry: some slices have a position and some do not; "
                f"split into {len(groups)} stacks"
            )
        for g in groups:
            g.warnings.extend(notes)
    return groups


def _order_and_measure(group: _Group) -> list[tuple[list[_Slice], float, list[str], int]]:
    """Sort along the normal; fold repeated positions into 4D; measure spacing and oddities.

    Returns (slices, slice spacing, warnings, number of volumes) per stack.
    """
    slices = group.slices
    first = slices[0]
    if first.position is None or first.orientation is None or len(slices) == 1:
        thickness = math.nan
        return [(slices, thickness, list(group.warnings), 1)]
    normal = np.cross(first.orientation[:3], first.orientation[3:])
    normal /= np.linalg.norm(normal)
    for s in slices:
        s.distance = float(np.dot(normal, s.position))
    ordered = sorted(slices, key=lambda s: s.distance)  # stable: keeps instance/frame order
    distances = np.array([s.distance for s in ordered])
    n = len(ordered)
    if distances[-1] - distances[0] < SAME_POSITION_MM:
        return [
            (
                ordered,
                math.nan,
                [
                    *group.warnings,
                    f"not_a_volume: all {n} slices share one position "
                    f"{_fmt(first.position)}; they are repeats (time points, echoes), not a volume",
                ],
                1,
            )
        ]
    # bucket repeated positions
    buckets: list[list[_Slice]] = [[ordered[0]]]
    for s in ordered[1:]:
        if s.distance - buckets[-1][0].distance < SAME_POSITION_MM:
            buckets[-1].append(s)
        else:
            buckets.append([s])
    counts = {len(b) for b in buckets}
    warnings = list(group.warnings)
    n_volumes = 1
    if counts != {1}:
        repeated = sum(len(b) - 1 for b in buckets)
        if len(counts) == 1:
            n_volumes = counts.pop()
            volume, note = representative_volume(buckets, n_volumes)
            warnings.append(note)
            ordered = volume
        else:
            warnings.append(
                f"duplicate_positions: {repeated} slices repeat a position already used; "
                "kept in one stack in acquisition order"
            )
    unique = np.array([b[0].distance for b in buckets])
    steps = np.diff(unique)
    median = float(np.median(steps))
    own = []
    if steps.size > 1 and np.any(np.abs(steps - median) > UNEVEN_RELATIVE * median + 0.01):
        own.append(
            f"uneven_spacing: slice steps range {steps.min():.3g}-{steps.max():.3g} mm "
            f"(median {median:.3g} mm); the volume's spacing is the median"
        )
        ratios = steps / median
        gaps = [(i, r) for i, r in enumerate(ratios) if r > 1.5 and abs(r - round(r)) < 0.15]
        if gaps:
            missing = sum(int(round(r)) - 1 for _, r in gaps)
            where = ", ".join(f"after {unique[i]:.4g} mm" for i, _ in gaps[:3])
            own.append(
                f"missing_slices: about {missing} slice(s) missing ({where} along the normal)"
            )
    direction = ordered[-1].position - ordered[0].position
    norm = float(np.linalg.norm(direction))
    if norm > 0:
        cos = min(1.0, abs(float(np.dot(direction / norm, normal))))
        angle = math.degrees(math.acos(cos))
        if angle > GANTRY_TILT_DEGREES:
            own.append(
                f"gantry_tilt: slices advance {angle:.1f}° away from the slice normal "
                "(tilted gantry or sheared volume); spacing is measured along the normal"
            )
    if 1 < len(buckets) < MIN_VOLUME_SLICES:
        own.append(
            f"too_few_slices: only {len(buckets)} slice positions; a volume needs at least "
            f"{MIN_VOLUME_SLICES} (a localizer or an incomplete series?)"
        )
    return [(ordered, median, [*warnings, *own], n_volumes)]


def _instances(series: object) -> list[object]:
    instances = getattr(series, "instances", series)
    out = []
    for inst in instances:
        kind = getattr(inst, "kind", None)
        if kind is not None and str(getattr(kind, "value", kind)) != "image":
            continue
        out.append(inst)
    return out


def series_stacks(series: object) -> tuple[ImageStack, ...]:
    """Every geometrically consistent stack of a series' image instances, in physical units.

    A bad instance is skipped with a `skipped_instance` warning on every stack (the gap it
    leaves is measured like any other); if no image of the series can be decoded, the
    first instance's `PixelDataError` is raised.
    """
    series_uid = str(getattr(series, "series_instance_uid", "") or "")
    modality = str(getattr(series, "modality", "") or "")
    datasets: list[Dataset] = []
    sops: list[str] = []
    arrays: list[np.ndarray | None] = []  # dropped once copied into every stack using them
    windows: list[tuple[Window, ...]] = []
    notes: list[str] = []
    first_error: RadAssistError | None = None
    layouts: list[MosaicLayout | None] = []
    sources: list[str] = []
    for inst in _instances(series):
        try:
            frames = decode_frames(inst)
            ds = getattr(inst, "dataset", inst)
            source = str(getattr(inst, "source", None) or getattr(ds, "filename", None) or
                         "<dataset>")
            array = frames.array
            layout = _mosaic(ds, array, source)
            if layout is not None:
                array = unpack(array[0], layout)
        except RadAssistError as exc:
            first_error = first_error or exc
            notes.append(f"skipped_instance: {exc}")
            continue
        if layout is not None:
            notes.append(f"mosaic: each image holds {len(array)} slices in a {layout.grid}x"
                         f"{layout.grid} grid (Siemens MOSAIC); unpacked into slices")
        sources.append(source)
        datasets.append(ds)
        sops.append(str(getattr(inst, "sop_instance_uid", "") or ds.get("SOPInstanceUID", "")))
        arrays.append(array)
        layouts.append(layout)
        windows.append(frames.windows)
        notes.extend(frames.notes)
    if not arrays:
        if first_error is not None:
            raise first_error
        return ()
    try:
        return _assemble(series_uid, modality, datasets, sops, arrays, layouts, windows, notes)
    except RadAssistError:
        raise
    except Exception as exc:  # a geometry value pydicom cannot read, or cannot be used
        text = " ".join(str(exc).split())[:200]
        raise GeometryError(
            sources[0] if len(sources) == 1 else (series_uid or sources[0]),
            f"slice geometry unusable ({type(exc).__name__}: {text})",
        ) from exc


def _mosaic(ds: Dataset, array: np.ndarray, source: str) -> MosaicLayout | None:
    """The MOSAIC layout of a decoded instance; a header that breaks it is a typed error."""
    if array.ndim != 3:
        return None
    try:
        return mosaic_layout(ds, array.shape)
    except Exception as exc:
        raise PixelDataError(source, f"MOSAIC header unusable ({type(exc).__name__})",
                             reason="inconsistent_pixel_header") from exc


def _assemble(series_uid, modality, datasets, sops, arrays, layouts, windows, notes):
    series_uid = series_uid or str(datasets[0].get("SeriesInstanceUID", ""))
    modality = modality or str(datasets[0].get("Modality", ""))

    slices: list[_Slice] = []
    for idx, (ds, array) in enumerate(zip(datasets, arrays, strict=True)):
        slices.extend(_slices_of(idx, ds, sops[idx], array.shape, layouts[idx]))
    plan = _plan(slices)
    uses = Counter(s.instance for ordered, _, _, _ in plan for s in ordered)
    notes = list(dict.fromkeys(notes))
    stacks = []
    for ordered, slice_spacing, warnings, n_volumes in plan:
        array = _gather(ordered, arrays, uses)
        stacks.append(
            _build(
                series_uid,
                modality or str(datasets[ordered[0].instance].get("Modality", "")),
                array,
                windows[ordered[len(ordered) // 2].instance],  # a central slice's own
                ordered,
                slice_spacing,
                [*notes, *warnings],
                n_volumes,
            )
        )
    return tuple(stacks)


def _slices_of(idx: int, ds: Dataset, sop: str, shape: tuple[int, ...],
               layout: MosaicLayout | None) -> list[_Slice]:
    """The slices of one instance whose frames have `shape` (frames, rows, cols[, 3])."""
    photometric = "RGB" if len(shape) == 4 else "MONOCHROME2"
    bval, echo = b_value(ds), as_float(ds.get("EchoTime"))
    return [_Slice(idx, f, sop, iop, ipp, spacing, tuple(shape[1:]), photometric,
                   b_value=bval, echo_time=echo)
            for f, (iop, ipp, spacing) in enumerate(_geometry(ds, shape[0], layout))]


def _plan(slices: list[_Slice]) -> list[tuple[list[_Slice], float, list[str], int]]:
    return [part for group in _split_by_orientation_and_size(slices)
            for part in _order_and_measure(group)]


def series_geometry(series: object) -> tuple[str, ...]:
    """The geometry warnings `series_stacks` would give, from the headers alone (no decoding).

    For `radassist ingest`, which lists a study without decoding its pixels: the same
    grouping, ordering and measuring on each instance's declared size and geometry. A
    header too broken to read is left to `series_stacks` to report.
    """
    slices: list[_Slice] = []
    notes: list[str] = []
    for idx, inst in enumerate(_instances(series)):
        ds = getattr(inst, "dataset", inst)
        try:
            rows, cols = int(ds.Rows), int(ds.Columns)
            frames = int(ds.get("NumberOfFrames") or 1)
            samples = int(ds.get("SamplesPerPixel") or 1)
        except (AttributeError, TypeError, ValueError):
            continue
        shape: tuple[int, ...] = (frames, rows, cols) + ((3,) if samples == 3 else ())
        layout = mosaic_layout(ds, shape) if samples == 1 else None
        if layout is not None:
            shape = (layout.n_slices, layout.tile_rows, layout.tile_cols)
            notes.append(f"mosaic: each image holds {layout.n_slices} slices in a "
                         f"{layout.grid}x{layout.grid} grid (Siemens MOSAIC)")
        try:
            slices.extend(_slices_of(idx, ds, "", shape, layout))
        except Exception:  # noqa: BLE001 - malformed geometry: series_stacks will say
            continue
    if not slices:
        return ()
    out = list(dict.fromkeys(notes))
    for _, _, warnings, _ in _plan(slices):
        out.extend(w for w in warnings if w not in out)
    return tuple(out)


def _geometry(ds: Dataset, n: int, layout: MosaicLayout | None):
    """Per-slice geometry; a mosaic's tiles are placed along its slice normal."""
    if layout is None:
        return frame_geometry(ds, n)
    ((iop, ipp, spacing),) = frame_geometry(ds, 1)
    return [(iop, pos, spacing) for pos in tile_positions(ds, layout, n, iop, ipp, spacing)]


def _gather(ordered: list[_Slice], arrays: list, uses: Counter) -> np.ndarray:
    """The stack's array; instance arrays are released after their last use (1x peak memory)."""
    first = ordered[0]
    whole = arrays[first.instance]
    if (
        len(ordered) == whole.shape[0]
        and all(s.instance == first.instance for s in ordered)
        and all(s.frame == i for i, s in enumerate(ordered))
    ):
        return whole  # one instance in its own order: no copy
    out = np.empty((len(ordered), *first.shape), dtype=np.float32)
    for i, s in enumerate(ordered):
        out[i] = arrays[s.instance][s.frame]
        uses[s.instance] -= 1
        if uses[s.instance] == 0:
            arrays[s.instance] = None
    return out


def _build(
    series_uid: str,
    modality: str,
    array: np.ndarray,
    header: tuple[Window, ...],
    ordered: list[_Slice],
    slice_spacing: float,
    warnings: list[str],
    n_volumes: int = 1,
) -> ImageStack:
    first = ordered[0]
    if first.pixel_spacing is None:
        row_col = (1.0, 1.0)
        warnings.append(
            "missing_pixel_spacing: no PixelSpacing or ImagerPixelSpacing; assuming 1.0 mm"
        )
    else:
        row_col = first.pixel_spacing
    # colour stacks have no window: they are shown as they are
    windows = () if first.photometric == "RGB" else window_presets(modality, header, array)
    return ImageStack(
        series_instance_uid=series_uid,
        modality=modality,
        photometric=first.photometric,
        array=array,
        spacing=(float(slice_spacing), float(row_col[0]), float(row_col[1])),
        orientation=tuple(float(v) for v in first.orientation)
        if first.orientation is not None
        else None,
        origin=tuple(float(v) for v in first.position) if first.position is not None else None,
        windows=windows,
        sop_instance_uids=tuple(s.sop_uid for s in ordered),
        frame_numbers=tuple(s.frame + 1 for s in ordered),
        warnings=tuple(dict.fromkeys(warnings)),
        n_volumes=n_volumes,
    )


__all__ = ["series_stacks", "series_geometry", "frame_geometry", "PixelDataError"]
