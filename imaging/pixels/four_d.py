"""4D series: a series that visits every position several times is one series of volumes.

Diffusion (b-values, directions), fMRI time points and multi-echo acquisitions are read as
one series, analysed on the volume a reader looks at first: the lowest b-value, else the
first in acquisition order (first time point, first echo).
"""

from __future__ import annotations

import math
from typing import TypeVar

from pydicom.dataset import Dataset

S = TypeVar("S")  # a slice record with .b_value and .echo_time


def representative_volume(buckets: list[list[S]], k: int) -> tuple[list[S], str]:
    """The volume a reader would look at first, and the `four_d` note that says so.

    Diffusion: the lowest b-value (b=0 is the anatomical one; a slice without a b-value in
    a diffusion series is taken as b=0, as scanners often omit it there). Otherwise the
    first volume in acquisition order (first time point, first echo).
    """
    b_values = {s.b_value for b in buckets for s in b}
    echoes = {s.echo_time for b in buckets for s in b if s.echo_time is not None}
    diffusion = any(v for v in b_values if v)
    if diffusion:
        for b in buckets:
            b.sort(key=lambda s: s.b_value or 0.0)  # stable: acquisition order among equals
        kind = "diffusion, b = " + ", ".join(
            f"{v:g}" for v in sorted({v or 0.0 for v in b_values})) + " s/mm²"
        chosen = f"the b = {buckets[0][0].b_value or 0.0:g} volume"
    elif len(echoes) > 1:
        kind = f"{len(echoes)} echoes"
        chosen = "the first echo"
    else:
        kind = "time series"
        chosen = "the first time point"
    volume = [b[0] for b in buckets]
    note = (f"four_d: {k} volumes of {len(buckets)} slices ({kind}); read as one series and "
            f"analysed on {chosen}")
    return volume, note


def as_float(value: object) -> float | None:
    try:
        out = float(value[0] if isinstance(value, list | tuple) else value)  # type: ignore[index]
    except (TypeError, ValueError, IndexError):
        return None
    return out if math.isfinite(out) else None


# Diffusion b-value: the standard attribute, then GE's and Siemens' private ones
_PRIVATE_B_VALUES = ((0x0043, "GEMS_PARM_01", 0x39), (0x0019, "SIEMENS MR HEADER", 0x0C))


def b_value(ds: Dataset) -> float | None:
    value = as_float(ds.get("DiffusionBValue"))
    if value is not None:
        return value
    for group, creator, offset in _PRIVATE_B_VALUES:
        try:
            raw = ds.private_block(group, creator)[offset].value
        except (KeyError, ValueError):
            continue
        if isinstance(raw, bytes):
            raw = raw.decode("ascii", "replace").split("\\")
        value = as_float(raw)
        if value is not None:
            # GE stores b + 10^9 × (a flag) in the first value
            return value % 1e9 if group == 0x0043 else value
    return None
