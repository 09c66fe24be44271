"""A Secondary Capture of the key image with the saliency overlay burned in (highdicom).

RGB pixels: the windowed key image in grey, the saliency of the top differential's finding
blended in red-yellow, and a visible banner "AI draft — not reviewed by a physician" so the
label survives any viewer that ignores DICOM attributes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from highdicom.sc import SCImage
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset

from ..notes.note import Note
from ..notes.render import to_json
from ..types import Analysis, SeriesAnalysis
from .sr import caveats
from .uids import (
    AI_DRAFT,
    ALGORITHM_NAME,
    content_hash,
    derived_uid,
    with_patient_study_attributes,
)

_FONTS = ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
          "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
MIN_WIDTH = 512


def _font(size: int):
    for path in _FONTS:
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


def key_series(analysis: Analysis, note: Note) -> SeriesAnalysis | None:
    usable = [s for s in analysis.series if s.key_image is not None]
    if not usable:
        return None
    if note.differential and note.differential[0].saliency is not None:
        uid = note.differential[0].saliency.series_instance_uid
        for s in usable:
            if s.series_instance_uid == uid:
                return s
    return max(usable, key=lambda s: (s.n_images, s.series_instance_uid))


def overlay_rgb(series: SeriesAnalysis, note: Note) -> np.ndarray:
    """uint8 (H, W, 3): grey key image, saliency blended in, AI-draft banner on top."""
    gray = np.asarray(series.key_image)
    if gray.ndim == 3:
        gray = gray[..., 0]
    gray = gray.astype(np.uint8)
    image = Image.fromarray(gray, "L")
    if image.width < MIN_WIDTH:
        scale = MIN_WIDTH / image.width
        image = image.resize((MIN_WIDTH, max(1, round(image.height * scale))), Image.BILINEAR)
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    saliency = None
    wanted = note.differential[0].saliency.finding_code if (
        note.differential and note.differential[0].saliency) else None
    for s in series.saliency:
        if s.array is not None and (wanted is None or s.finding_code == wanted):
            saliency = s.array
            break
    if saliency is not None and not note.out_of_distribution:
        sal = np.nan_to_num(np.asarray(saliency, dtype=np.float32))
        sal = np.clip(sal, 0.0, 1.0)
        sal_img = Image.fromarray((sal * 255).astype(np.uint8), "L").resize(
            (rgb.shape[1], rgb.shape[0]), Image.BILINEAR)
        alpha = (np.asarray(sal_img, dtype=np.float32) / 255.0)[..., None] * 0.5
        heat = np.stack([np.full_like(alpha[..., 0], 255.0),
                         255.0 * alpha[..., 0] * 2, np.zeros_like(alpha[..., 0])], axis=-1)
        rgb = rgb * (1 - alpha) + np.clip(heat, 0, 255) * alpha
    out = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(out)
    size = max(12, out.width // 32)
    font = _font(size)
    banner = size + size // 2
    draw.rectangle([0, 0, out.width, banner], fill=(0, 0, 0))
    draw.text((size // 3, size // 4), AI_DRAFT, fill=(255, 255, 0), font=font)
    if note.differential:
        first = note.differential[0]
        number = "not calibrated" if first.likelihood is None else f"p {first.likelihood:.2f}"
        bottom = f"1. {first.names.en} ({number})"
    elif note.out_of_distribution:
        bottom = "Out of distribution: not diagnosed"
    else:
        bottom = "No differential offered (see the SR)"
    draw.rectangle([0, out.height - banner, out.width, out.height], fill=(0, 0, 0))
    draw.text((size // 3, out.height - banner + size // 4), bottom, fill=(255, 255, 255),
              font=font)
    return np.asarray(out)


def build_sc(note: Note, analysis: Analysis, reference: Dataset | None = None, *,
             series_number: int = 9902) -> SCImage | None:
    """The secondary capture, or None when no series has a key image."""
    series = key_series(analysis, note)
    if series is None:
        return None
    pixels = overlay_rgb(series, note)
    digest = content_hash(to_json(note))
    study_uid = analysis.study_instance_uid
    common = dict(
        pixel_array=pixels, photometric_interpretation="RGB", bits_allocated=8,
        coordinate_system="PATIENT",
        series_instance_uid=derived_uid(study_uid, analysis.model_version, digest, "sc-series"),
        series_number=series_number,
        sop_instance_uid=derived_uid(study_uid, analysis.model_version, digest, "sc"),
        instance_number=1, manufacturer=ALGORITHM_NAME, patient_orientation=("L", "P"),
    )
    if reference is not None and getattr(reference, "StudyInstanceUID", None) == study_uid:
        sc = SCImage.from_ref_dataset(ref_dataset=with_patient_study_attributes(reference),
                                      **common)
    else:
        sc = SCImage(study_instance_uid=study_uid, **common)
    sc.SeriesDescription = f"{ALGORITHM_NAME} AI draft key image"
    # Image Comments is LT (10240 chars): the draft label first, then the caveats
    sc.ImageComments = "\n".join([AI_DRAFT, *caveats(note)])[:10240]
    sc.SpecificCharacterSet = "ISO_IR 192"
    sc.BurnedInAnnotation = "YES"
    body_part = str(reference.get("BodyPartExamined", "") or "").strip() if reference else ""
    if body_part:
        sc.BodyPartExamined = body_part
    side = laterality(reference)
    if side is not None:
        sc.Laterality = side
    return sc


# Body Part Examined defined terms (PS3.16 Annex L) of unpaired structures: with one of
# these, Laterality (type 2C, required for a paired structure) is left out; dciodvfy
# reports an empty one there as an error.
UNPAIRED_BODY_PARTS = frozenset(
    "ABDOMEN ABDOMENPELVIS AORTA BLADDER BRAIN CERVIX CHEST CHESTABDOMEN CHESTABDPELVIS "
    "COCCYX COLON CSPINE CTSPINE DUODENUM ESOPHAGUS FACE GALLBLADDER HEAD HEADNECK HEART "
    "JAW LARYNX LIVER LSPINE LSSPINE MEDIASTINUM MOUTH NECK NOSE PANCREAS PELVIS PENIS "
    "PHARYNX PROSTATE RECTUM SKULL SPINE SPLEEN SSPINE STERNUM STOMACH THYROID TLSPINE "
    "TONGUE TRACHEA TSPINE URETHRA UTERUS VAGINA VULVA WHOLEBODY".split())


def laterality(reference: Dataset | None) -> str | None:
    """General Series Laterality for the SC (type 2C): the source's Laterality, else its
    Image Laterality, when L or R; None (left out) when the source's Body Part Examined is
    an unpaired structure; else empty, as type 2 says for unknown (a paired or unnamed
    body part, or a plain image without a header)."""
    if reference is None:
        return ""
    for keyword in ("Laterality", "ImageLaterality"):
        value = str(reference.get(keyword, "") or "").strip().upper()
        if value in ("L", "R"):
            return value
    body_part = str(reference.get("BodyPartExamined", "") or "").strip().upper()
    return None if body_part in UNPAIRED_BODY_PARTS else ""
