"""Compressed files against their uncompressed twins, in physical units.

Which file is whose twin (NEMA WG04 families, the dcm_qa_ts slice, `KNOWN_TWINS`), and the
tolerances: lossless transfer syntaxes must match exactly; JPEG-LS near-lossless within the
NEAR parameter of its own codestream (times the rescale slope); other lossy syntaxes must
reach a PSNR of `LOSSY_MIN_PSNR_DB`, the peak being the reference's value range.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import JPEGLSNearLossless

from pacs_bridge.transfer_syntaxes import DECODABLE, transfer_syntax_of

LOSSY_MIN_PSNR_DB = 30.0
LOSSLESS_SYNTAXES = frozenset(uid for uid, syntax in DECODABLE.items() if syntax.lossless)
TOLERANCE_TEXT = (
    "lossless syntaxes: identical float32 values; JPEG-LS near-lossless: max |error| <= "
    f"NEAR x |slope|; other lossy: PSNR >= {LOSSY_MIN_PSNR_DB:g} dB (peak = reference range)"
)

@dataclass(frozen=True)
class PairResult:
    """One compressed file compared with its uncompressed twin."""

    family: str
    compressed: str
    reference: str
    lossless: bool
    max_abs_error: float
    psnr_db: float
    rule: str
    passed: bool
    note: str = ""


KNOWN_TWINS: dict[tuple[str, str], str] = {
    **{
        ("pydicom-data", f"emri_small_{v}.dcm"): "emri_small.dcm"
        for v in ("RLE", "big_endian", "jpeg_2k_lossless", "jpeg_ls_lossless")
    },
    **{("pydicom-data", f"liver_{v}.dcm"): "liver.dcm" for v in ("expb", "deflate", "rle", "j2k")},
    **{
        ("pydicom-data", f"liver_nonbyte_aligned_{v}.dcm"): "liver_nonbyte_aligned.dcm"
        for v in ("deflate", "rle", "j2k")
    },
    ("pydicom-data", "OBXXXX1A_expb.dcm"): "OBXXXX1A.dcm",
    ("pydicom-data", "OBXXXX1A_rle.dcm"): "OBXXXX1A.dcm",
    ("pydicom-data", "OBXXXX1A_expb_2frame.dcm"): "OBXXXX1A_2frame.dcm",
    ("pydicom-data", "OBXXXX1A_rle_2frame.dcm"): "OBXXXX1A_2frame.dcm",
    **{
        ("pydicom-data", f"SC_rgb_expb{v}.dcm"): f"SC_rgb{v}.dcm"
        for v in ("", "_2frame", "_16bit", "_16bit_2frame", "_32bit", "_32bit_2frame")
    },
    ("pydicom-data", "gdcm-US-ALOKA-16_big.dcm"): "gdcm-US-ALOKA-16.dcm",
    ("pydicom-data", "693_J2KR.dcm"): "693_UNCR.dcm",
    **{
        ("test_files", f"MR_small_{v}.dcm"): "MR_small.dcm"
        for v in ("RLE", "bigendian", "expb", "implicit", "jp2klossless", "jpeg_ls_lossless")
    },
    **{("test_files", f"rtdose_{v}.dcm"): "rtdose.dcm" for v in ("expb", "rle")},
    **{("test_files", f"rtdose_{v}_1frame.dcm"): "rtdose_1frame.dcm" for v in ("expb", "rle")},
    ("test_files", "SC_rgb_small_odd_big_endian.dcm"): "SC_rgb_small_odd.dcm",
    ("test_files", "SC_rgb_small_odd_jpeg.dcm"): "SC_rgb_small_odd.dcm",
    **{
        ("dicomParser", f"CT1_UNC.{v}.dcm"): "CT1_UNC.explicit_little_endian.dcm"
        for v in ("explicit_big_endian", "implicit_little_endian")
    },
    **{
        ("single-frame", f"CT1_UNC.{v}.80.dcm"): "../../CT1_UNC.explicit_little_endian.dcm"
        for v in (
            "fragmented_bot_jpeg_ls",
            "fragmented_no_bot_jpeg_ls",
            "not_fragmented_bot_jpeg_ls",
        )
    },
}

_NEMA = re.compile(r"^(?P<name>.+)_(?P<family>[A-Z0-9]+)$")


def twin_of(path: Path) -> tuple[str, Path] | None:
    """(family, reference path) for a compressed file with a known uncompressed twin."""
    parent = path.parent
    if parent.parent.name == "nema-wg04" and parent.name != "REF":
        match = _NEMA.match(path.name)
        if match and match["family"] == parent.name:
            return f"nema-wg04/{parent.name}", parent.parent / "REF" / f"{match['name']}_UNC"
    if parent.name == "dcm_qa_ts" and path.name != "1.dcm" and re.fullmatch(r"\d+\.dcm", path.name):
        return "dcm_qa_ts", parent / "1.dcm"
    twin = KNOWN_TWINS.get((parent.name, path.name))
    if twin is not None:
        return parent.name, Path(os.path.normpath(parent / twin))
    return None


def jpeg_ls_near(ds: Dataset) -> int | None:
    """The NEAR parameter of the first JPEG-LS scan of the first frame, if it can be read."""
    try:
        frame = next(
            generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1))
        )
    except Exception:
        return None
    at = frame.find(b"\xff\xda")
    if at < 0 or at + 5 > len(frame):
        return None
    ns = frame[at + 4]
    near_at = at + 5 + 2 * ns
    return frame[near_at] if near_at < len(frame) else None


def compare(family: str, comp_path: Path, ref_path: Path, comp: list, ref: list) -> PairResult:
    comp_ds, a = comp[0]
    _, b = ref[0]
    tsyntax = str(transfer_syntax_of(comp_ds))
    lossless = (
        tsyntax in LOSSLESS_SYNTAXES and str(comp_ds.get("LossyImageCompression", "")) != "01"
    )
    base = dict(
        family=family, compressed=str(comp_path), reference=str(ref_path), lossless=lossless
    )
    if a.shape != b.shape:
        return PairResult(
            **base,
            max_abs_error=math.inf,
            psnr_db=-math.inf,
            rule="same shape",
            passed=False,
            note=f"shape {a.shape} vs reference {b.shape}",
        )
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    max_err = float(diff.max()) if diff.size else 0.0
    mse = float(np.mean(diff**2)) if diff.size else 0.0
    peak = float(b.max() - b.min()) if b.size else 0.0
    psnr = math.inf if mse == 0 else 10 * math.log10(max(peak, 1e-12) ** 2 / mse)
    if lossless:
        return PairResult(
            **base, max_abs_error=max_err, psnr_db=psnr, rule="exact", passed=max_err == 0.0
        )
    if tsyntax == JPEGLSNearLossless:
        near = jpeg_ls_near(comp_ds)
        if near is not None:
            slope = abs(float(comp_ds.get("RescaleSlope", 1.0) or 1.0))
            bound = near * slope
            # float32 physical values carry rounding of a few ulps of their magnitude
            magnitude = float(max(np.abs(a).max(), np.abs(b).max())) if a.size else 0.0
            bound += 4.0 * float(np.spacing(np.float32(magnitude)))
            return PairResult(
                **base,
                max_abs_error=max_err,
                psnr_db=psnr,
                rule=f"max|err| <= NEAR {near} x {slope:g}",
                passed=max_err <= bound,
            )
    return PairResult(
        **base,
        max_abs_error=max_err,
        psnr_db=psnr,
        rule=f"PSNR >= {LOSSY_MIN_PSNR_DB:g} dB",
        passed=psnr >= LOSSY_MIN_PSNR_DB,
    )


# ---------------------------------------------------------------------------- the whole corpus


