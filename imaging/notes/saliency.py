"""Which saliency map backs a differential item, and the zone of the image it points at."""

from __future__ import annotations

import numpy as np

from ..types import Saliency, SeriesAnalysis
from .note import SaliencyRef, Text
from .strings import t, tt


def saliency_zone(array: np.ndarray) -> tuple[Text, tuple[float, float]]:
    """Name the zone of the saliency centroid (mass of the top half of the map).

    Thirds of the image: upper/middle/lower and, in the radiological display convention
    (the patient's right on the viewer's left), right/central/left of the patient.
    """
    a = np.asarray(array, dtype=np.float64)
    a = a[..., 0] if a.ndim == 3 else a
    if a.size == 0 or not np.isfinite(a).any() or float(np.nanmax(a)) <= 0:
        row, col = 0.5, 0.5
    else:
        a = np.nan_to_num(a)
        w = np.where(a >= 0.5 * a.max(), a, 0.0)
        rows, cols = np.indices(w.shape)
        row = float((w * rows).sum() / w.sum() / max(w.shape[0] - 1, 1))
        col = float((w * cols).sum() / w.sum() / max(w.shape[1] - 1, 1))
    vertical = "zone.upper" if row < 1 / 3 else "zone.middle" if row < 2 / 3 else "zone.lower"
    horizontal = "zone.right" if col < 1 / 3 else "zone.central" if col < 2 / 3 else "zone.left"
    zone = tt("zone.name", vertical=t(vertical), horizontal=t(horizontal))
    return zone, (round(row, 3), round(col, 3))


def _saliency_for(series: SeriesAnalysis, codes: tuple[str, ...]) -> Saliency | None:
    if not series.saliency:
        return None
    for s in series.saliency:
        if s.finding_code in codes:
            return s
    probs = {o.code: o.probability for o in series.observations}
    return max(series.saliency, key=lambda s: (probs.get(s.finding_code, 0.0), s.finding_code))


def saliency_ref(series: SeriesAnalysis, codes: tuple[str, ...]) -> SaliencyRef | None:
    """The series' map for the first of `codes` it has (else its most probable finding's)."""
    sal = _saliency_for(series, codes)
    if sal is None or sal.array is None:
        return None
    zone, centroid = saliency_zone(sal.array)
    return SaliencyRef(series.series_instance_uid, sal.finding_code, sal.slice_index, zone,
                       centroid)
