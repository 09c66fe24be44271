"""`analyze(study, context) -> Analysis`: every diagnostic series through the model.

Before any model runs, each series gets a role from its header (`pacs_bridge.series_role`):
localizers, exam-summary and dose screens and non-image objects are listed with the reason
and never diagnosed. Per diagnostic stack: skip empty edge slices, choose at most 24 evenly
spaced slices, window them as a reader would (the header window unless it saturates the
image), run the network once on the batch, aggregate slice probabilities to the series
(mean for modality, region and plane; max for findings, naming the slices that drive
them), and combine them with what the header already says (modality, BodyPartExamined,
the plane of ImageOrientationPatient). CT and MR series also get the bundle's CT/MR finding
heads (`model.findings_ctmr`), max-pooled over slices with their driving slices. Quality
comes before anything clinical: an unsupported modality, a blank image, a colour
photograph, a test object (phantom) or an embedding far from every training image is out of
distribution and gets no region, plane or finding statements.

The clinical context never changes the pixels' analysis; it is accepted for the composer.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass

import numpy as np
import torch

from imaging.datasets import FINDINGS, MODALITIES, PLANES, REGIONS
from imaging.model.preprocess import to_input, window
from imaging.phantom import phantom_reason
from imaging.series_header import (
    OBLIQUE_LIMIT,
    SeriesHeader,
    plane_of,
    series_header,
    with_prior,
)
from imaging.types import (
    Analysis,
    ClinicalContext,
    ImageStack,
    ListedSeries,
    Observation,
    Saliency,
    SeriesAnalysis,
)
from pacs_bridge.errors import RadAssistError
from pacs_bridge.series_role import Role, series_role

MAX_SLICES = 24
SUPPORTED_MODALITIES = ("CT", "MR", "CR", "DX", "OT", "SC")
RADIOGRAPH_MODALITIES = ("CR", "DX")
CROSS_SECTIONAL = ("CT", "MR")
OOD_QUALITY = 0.01  # below the 1st percentile of validation images' typicality
FINDING_REPORT_THRESHOLD = 0.5  # saliency is computed for findings at or above this
BLANK_STD = 0.01  # windowed [0,1] standard deviation of an empty image
COLOUR_CHROMA = 0.04  # mean |R-G|+|G-B| (0-1 scale) of a photograph, not a grey image
# A slice is empty (edge of a volume, outside the body) when its share of pixels above the
# stack's background is below this fraction of the fullest slice's share.
EMPTY_SLICE_SHARE = 0.25
BODY_PART_RATIO = 9.0  # likelihood ratio of a BodyPartExamined that maps to a region
PLANE_RATIO = 50.0  # of the plane ImageOrientationPatient states (clear, not oblique)
OBLIQUE_PLANE_RATIO = 3.0  # of the nearest plane of a strongly oblique orientation

REGION_LABEL = {
    "head": "Head", "spine_muscles": "Spine and muscles", "thorax": "Thorax",
    "abdomen": "Abdomen", "reproductive_urinary": "Reproductive and urinary system",
    "chest_radiograph": "Chest radiograph",
}
MODALITY_LABEL = {"CT": "Computed tomography", "MR": "Magnetic resonance", "XR": "Radiograph"}


def analyze(study, context: ClinicalContext | None = None) -> Analysis:
    """Analyse every diagnostic series of a `pacs_bridge.study.Study`; list the others."""
    from imaging.model import get_model

    model = get_model()
    results: list[SeriesAnalysis] = []
    listed: list[ListedSeries] = []
    warnings: list[str] = []
    for series in study.series:
        uid = series.series_instance_uid
        role = series_role(series)
        n_objects = len(series.instances)
        if role.role is not Role.DIAGNOSTIC:
            listed.append(ListedSeries(uid, role.role.value, series.modality or "",
                                       series.description, n_objects, role.reason, role.code))
            continue
        try:
            stacks = _series_stacks(series)
        except RadAssistError as exc:
            listed.append(ListedSeries(uid, "unreadable", series.modality or "",
                                       series.description, n_objects, str(exc), "unreadable"))
            continue
        if not stacks:
            listed.append(ListedSeries(uid, "unreadable", series.modality or "",
                                       series.description, n_objects, "no decodable image",
                                       "no_pixels"))
            continue
        header = series_header(series)
        for stack in stacks:
            try:
                results.append(analyze_stack(model, stack, header))
            except RadAssistError as exc:
                warnings.append(f"stack_failed: {uid}: {exc}")
    return Analysis(study_instance_uid=str(study.study_instance_uid), series=tuple(results),
                    model_version=model.version, warnings=tuple(warnings),
                    listed=tuple(listed))


def _series_stacks(series) -> tuple[ImageStack, ...]:
    from imaging.pixels import series_stacks

    return tuple(series_stacks(series))


def _gray_and_chroma(image: np.ndarray) -> tuple[np.ndarray, float]:
    """Grey values and how colourful an RGB image is (0 for greyscale)."""
    if image.ndim == 3 and image.shape[-1] == 3:
        rgb = image.astype(np.float32)
        span = float(np.nanmax(rgb) - np.nanmin(rgb)) or 1.0
        chroma = float(np.mean(np.abs(rgb[..., 0] - rgb[..., 1]) +
                               np.abs(rgb[..., 1] - rgb[..., 2]))) / span
        return rgb.mean(axis=-1), chroma
    return image.astype(np.float32), 0.0


def _to_unit(gray: np.ndarray, stack: ImageStack) -> tuple[np.ndarray, bool]:
    """Windowed to [0, 1] as a reader would see it; True when the header window was refused."""
    from imaging.pixels import auto_window, reader_window

    win, refused = (None, False) if stack.photometric == "RGB" else reader_window(
        gray, stack.windows)
    if win is None:
        win = auto_window(gray)
    if win is None or not win.width > 0 or not np.isfinite(win.width):
        return np.zeros_like(gray, dtype=np.float32), refused
    return window(gray, win.center, win.width), refused


def _display(gray01: np.ndarray) -> np.ndarray:
    return np.round(np.clip(gray01, 0.0, 1.0) * 255.0).astype(np.uint8)


def select_slices(n: int, limit: int = MAX_SLICES, keep: np.ndarray | None = None
                  ) -> np.ndarray:
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

    def batch(self) -> torch.Tensor:
        return torch.stack([to_input(u) for u in self.units])


def prepare_stack(stack: ImageStack) -> PreparedStack:
    """Skip empty edge slices, choose at most MAX_SLICES, window each as a reader would."""
    arr = np.asarray(stack.array)
    if arr.ndim in (2,) or (arr.ndim == 3 and arr.shape[-1] == 3 and stack.photometric == "RGB"):
        arr = arr[None]
    n_images = int(arr.shape[0])
    keep = content_slices(arr) if stack.photometric != "RGB" else np.arange(n_images)
    idx = select_slices(n_images, keep=keep)
    warnings: list[str] = list(stack.warnings)
    if len(keep) < n_images:
        warnings.append(f"empty_slices: {n_images - len(keep)} empty edge slice(s) of "
                        f"{n_images} skipped")
    if len(idx) < len(keep):
        warnings.append(f"subsampled: {len(idx)} of {len(keep)} slices analysed")

    units, chromas, stds, refused = [], [], [], 0
    for i in idx:
        gray, chroma = _gray_and_chroma(arr[i])
        unit, saturated = _to_unit(gray, stack)
        refused += saturated
        units.append(unit)
        chromas.append(chroma)
        stds.append(float(np.std(unit)))
    if refused:
        warnings.append(f"header_window_saturates: the header window turns {refused} of "
                        f"{len(idx)} analysed slices white; the 0.5-99.5 % window was used")
    return PreparedStack(stack, n_images, idx, tuple(units), tuple(chromas), tuple(stds),
                         tuple(warnings))


def analyze_stack(model, stack: ImageStack, context: SeriesHeader | None = None
                  ) -> SeriesAnalysis:
    prepared = prepare_stack(stack)
    batch = prepared.batch()
    return interpret(model, prepared, model.predict(batch), context, batch)


def interpret(model, prepared: PreparedStack, pred, context: SeriesHeader | None = None,
              batch: torch.Tensor | None = None) -> SeriesAnalysis:
    """The series' observations from the network's per-slice outputs `pred` (see module
    docstring); `batch` is needed only for GradCAM of radiograph findings."""
    context = context or SeriesHeader()
    stack = prepared.stack
    header = (stack.modality or "").upper()
    n_images, idx, units = prepared.n_images, prepared.idx, prepared.units
    chromas, stds = prepared.chromas, prepared.stds
    warnings = list(prepared.warnings)

    # quality first: say nothing clinical about what we were not trained for
    reasons = []
    if header not in SUPPORTED_MODALITIES:
        reasons.append(f"unsupported modality {header or 'unknown'}")
    if max(stds) < BLANK_STD:
        reasons.append("blank or uniform image")
    if np.median(chromas) > COLOUR_CHROMA:
        reasons.append("colour photograph, not a radiological image")
    slice_quality = np.array([model.quality(e) for e in pred.embedding])
    quality = 0.0 if reasons else float(np.median(slice_quality))
    if not reasons:
        phantom = phantom_reason(pred.embedding, model)
        if phantom:
            reasons.append(phantom)
            quality = 0.0
    if not reasons and quality < OOD_QUALITY:
        reasons.append(f"image unlike the training data (typicality {quality:.3f})")
    ood = bool(reasons)
    if ood:
        warnings.append("out_of_distribution: " + "; ".join(reasons))

    observations: list[Observation] = []
    image_modality = MODALITIES[int(np.argmax(pred.modality.mean(axis=0)))]
    modality_p = _with_header(pred.modality.mean(axis=0), header)
    for k in np.argsort(-modality_p, kind="stable"):
        code = MODALITIES[k]
        observations.append(Observation(f"modality:{code}", "modality", MODALITY_LABEL[code],
                                        round(float(modality_p[k]), 6)))
    predicted_modality = MODALITIES[int(np.argmax(modality_p))]
    expected = HEADER_MODALITY.get(header)
    if expected and expected != image_modality and not ood:
        warnings.append(f"modality_mismatch: header says {header}, image alone looks like "
                        f"{image_modality}")
    is_radiograph = header in RADIOGRAPH_MODALITIES or (
        header not in CROSS_SECTIONAL and predicted_modality == "XR")

    saliency: list[Saliency] = []
    key_pos = len(idx) // 2
    if not ood:
        region_p = pred.region.copy()
        if header in CROSS_SECTIONAL or (not is_radiograph):
            region_p[:, REGIONS.index("chest_radiograph")] = 0.0
            region_p /= np.maximum(region_p.sum(axis=1, keepdims=True), 1e-12)
        series_region = region_p.mean(axis=0)
        if not is_radiograph:
            series_region = with_prior(series_region, REGIONS, context.region, BODY_PART_RATIO)
        for k in np.argsort(-series_region, kind="stable")[:3]:
            observations.append(Observation(
                f"region:{REGIONS[k]}", "region", REGION_LABEL[REGIONS[k]],
                round(float(series_region[k]), 6), _driving(idx, region_p[:, k])))
        top_region = int(np.argmax(series_region))
        key_pos = int(np.argmax(region_p[:, top_region]))
        if not is_radiograph:
            plane_p = pred.plane.mean(axis=0)
            stated, clarity = plane_of(stack.orientation)
            ratio = PLANE_RATIO if clarity >= OBLIQUE_LIMIT else OBLIQUE_PLANE_RATIO
            plane_p = with_prior(plane_p, PLANES, stated, ratio)
            if stated is not None and PLANES[int(np.argmax(pred.plane.mean(axis=0)))] != stated:
                warnings.append(f"plane_mismatch: ImageOrientationPatient says {stated}, the "
                                f"image alone looks "
                                f"{PLANES[int(np.argmax(pred.plane.mean(axis=0)))]}")
            for k in np.argsort(-plane_p, kind="stable"):
                observations.append(Observation(
                    f"plane:{PLANES[k]}", "plane", PLANES[k].capitalize(),
                    round(float(plane_p[k]), 6), _driving(idx, pred.plane[:, k])))
            observations.extend(_ctmr_findings(model, pred, idx))
        else:
            finding_p = pred.findings.max(axis=0)
            for k in np.argsort(-finding_p, kind="stable"):
                name = FINDINGS[k]
                observations.append(Observation(
                    f"finding:{name}", "finding", _finding_label(name),
                    round(float(finding_p[k]), 6), _driving(idx, pred.findings[:, k])))
            top = int(np.argmax(finding_p))
            key_pos = int(np.argmax(pred.findings[:, top]))
            for k in np.flatnonzero(finding_p >= FINDING_REPORT_THRESHOLD):
                pos = int(np.argmax(pred.findings[:, k]))
                if pos != key_pos or batch is None:
                    continue  # saliency is aligned with the key image only
                cam = model.gradcam(batch[pos:pos + 1], int(k))
                saliency.append(Saliency(f"finding:{FINDINGS[k]}", int(idx[pos]), "gradcam",
                                         _to_image_grid(cam, units[pos].shape)))
    observations.append(Observation("quality:ood", "quality", "Out of distribution",
                                    1.0 if ood else round(float(np.clip(
                                        1.0 - quality / 0.1, 0.0, 1.0)), 6)))

    emb = pred.embedding.mean(axis=0)
    emb = (emb / max(float(np.linalg.norm(emb)), 1e-12)).astype(np.float32)
    return SeriesAnalysis(
        series_instance_uid=stack.series_instance_uid,
        header_modality=header,
        n_images=n_images,
        description=context.description,
        n_volumes=stack.n_volumes,
        key_slice=int(idx[key_pos]),
        observations=tuple(observations),
        quality_score=round(quality, 6),
        out_of_distribution=ood,
        saliency=tuple(saliency),
        warnings=tuple(warnings),
        source_sop_instance_uids=tuple(dict.fromkeys(stack.sop_instance_uids)),
        embedding=emb,
        key_image=_display(units[key_pos]),
    )


HEADER_MODALITY = {"CT": "CT", "MR": "MR", "CR": "XR", "DX": "XR"}
HEADER_LIKELIHOOD_RATIO = 18.0  # how much more we trust a CT/MR/CR/DX header than the pixels


def _with_header(p_image: np.ndarray, header: str) -> np.ndarray:
    """Combine the image head with the DICOM header (Bayes, likelihood ratio 18:1).

    OT/SC headers say nothing about the modality, so the image head decides alone; a CT,
    MR, CR or DX header is strong evidence but not certainty (mislabelled series exist).
    """
    expected = HEADER_MODALITY.get(header)
    if expected is None:
        return p_image
    weights = np.ones(len(MODALITIES))
    weights[MODALITIES.index(expected)] = HEADER_LIKELIHOOD_RATIO
    post = p_image * weights
    return post / max(float(post.sum()), 1e-12)


def _ctmr_findings(model, pred, idx: np.ndarray) -> list[Observation]:
    """The bundle's CT/MR finding heads on each slice's trunk features, max-pooled over the
    slices like the radiograph findings; the driving slices are the saliency, and each
    observation carries the threshold (chosen on train folds) at which it counts."""
    from imaging.model.findings_ctmr import LABELS, load_heads

    heads = load_heads(getattr(model, "weights_dir", None))
    features = getattr(pred, "features", None)
    if heads is None or features is None or not len(heads.names):
        return []
    per_slice = heads.probabilities(features)
    series_p = per_slice.max(axis=0)
    out = []
    for k in np.argsort(-series_p, kind="stable"):
        name = heads.names[k]
        out.append(Observation(f"finding:{name}", "finding", LABELS.get(name, name),
                               round(float(series_p[k]), 6), _driving(idx, per_slice[:, k]),
                               round(float(heads.thresholds[k]), 6)))
    return out


def _finding_label(name: str) -> str:
    return {"covid19": "COVID-19 pattern"}.get(name, name.replace("_", " ").capitalize())


def _driving(idx: np.ndarray, per_slice: np.ndarray, top: int = 3) -> tuple[int, ...]:
    """The stack indices of the slices with the highest probability (none for one image)."""
    if len(idx) <= 1:
        return ()
    order = np.argsort(-per_slice, kind="stable")[:top]
    return tuple(int(idx[i]) for i in sorted(order))


def _to_image_grid(cam224: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Undo pad-to-square + resize so the map lines up with the key image's pixels."""
    h, w = shape
    side = max(h, w)
    t = torch.from_numpy(cam224)[None, None]
    big = torch.nn.functional.interpolate(t, size=(side, side), mode="bilinear",
                                          align_corners=False)[0, 0].numpy()
    top, left = (side - h) // 2, (side - w) // 2
    return np.ascontiguousarray(np.clip(big[top:top + h, left:left + w], 0, 1),
                                dtype=np.float32)


class _CallableModule(types.ModuleType):
    """`imaging.analyze` names both this module and the function: importing the module
    first would otherwise shadow the function on the package, so the module is callable."""

    def __call__(self, study, context: ClinicalContext | None = None) -> Analysis:
        return analyze(study, context)


sys.modules[__name__].__class__ = _CallableModule
