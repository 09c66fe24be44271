"""A series' observations from the network's per-slice outputs (`interpret`).

Slice probabilities are aggregated to the series (mean for modality, region and plane; max
for findings, naming the slices that drive them) and combined with what the header says
(`priors`). Labels, the finding report threshold and the OOD threshold are the bundle's
(`model.spec`), so a bundle whose heads are ordered otherwise is read in its own order.
"""

from __future__ import annotations

import numpy as np
import torch

from imaging.analyze.priors import (
    HEADER_MODALITY,
    PlaneDecision,
    plane_decision,
    with_header,
    with_header_regions,
)
from imaging.analyze.quality import ood_reasons, ood_score
from imaging.analyze.slices import PreparedStack, display
from imaging.series_header import SeriesHeader
from imaging.types import Observation, Saliency, SeriesAnalysis

RADIOGRAPH_MODALITIES = ("CR", "DX")
CROSS_SECTIONAL = ("CT", "MR")
REGION_LABEL = {
    "head": "Head", "spine_muscles": "Spine and muscles", "thorax": "Thorax",
    "abdomen": "Abdomen", "reproductive_urinary": "Reproductive and urinary system",
    "chest_radiograph": "Chest radiograph",
}
MODALITY_LABEL = {"CT": "Computed tomography", "MR": "Magnetic resonance", "XR": "Radiograph"}


def interpret(model, prepared: PreparedStack, pred, context: SeriesHeader | None = None,
              batch: torch.Tensor | None = None) -> SeriesAnalysis:
    """The series' observations from the network's per-slice outputs `pred` (see module
    docstring); `batch` is needed only for GradCAM of radiograph findings."""
    spec = model.spec
    context = context or SeriesHeader()
    stack = prepared.stack
    header = (stack.modality or "").upper()
    idx, units = prepared.idx, prepared.units
    warnings = list(prepared.warnings)

    # quality first: say nothing clinical about what we were not trained for
    reasons, quality = ood_reasons(model, spec, header, prepared.stds, prepared.chromas,
                                   pred.embedding)
    ood = bool(reasons)
    if ood:
        warnings.append("out_of_distribution: " + "; ".join(reasons))

    observations: list[Observation] = []
    modalities = spec.modalities
    image_modality = modalities[int(np.argmax(pred.modality.mean(axis=0)))]
    modality_p = with_header(pred.modality.mean(axis=0), header, modalities)
    for k in np.argsort(-modality_p, kind="stable"):
        code = modalities[k]
        observations.append(Observation(f"modality:{code}", "modality",
                                        MODALITY_LABEL.get(code, code),
                                        round(float(modality_p[k]), 6)))
    predicted_modality = modalities[int(np.argmax(modality_p))]
    expected = HEADER_MODALITY.get(header)
    if expected and expected != image_modality and not ood:
        warnings.append(f"modality_mismatch: header says {header}, image alone looks like "
                        f"{image_modality}")
    is_radiograph = header in RADIOGRAPH_MODALITIES or (
        header not in CROSS_SECTIONAL and predicted_modality == "XR")

    saliency: list[Saliency] = []
    key_pos = len(idx) // 2
    plane: PlaneDecision | None = None
    named_regions: tuple[str, ...] = ()
    if not ood and not is_radiograph:
        named_regions = context.regions or ((context.region,) if context.region else ())
    if not ood:
        key_pos = _region(observations, warnings, pred, spec.regions, idx, context, header,
                          is_radiograph)
        if not is_radiograph:
            plane = _plane(observations, warnings, pred, spec.planes, idx, stack.orientation)
            observations.extend(_ctmr_findings(model, pred, idx))
        else:
            key_pos, saliency = _radiograph_findings(observations, model, pred, idx, units,
                                                     batch)
    observations.append(Observation("quality:ood", "quality", "Out of distribution",
                                    ood_score(ood, quality)))

    emb = pred.embedding.mean(axis=0)
    emb = (emb / max(float(np.linalg.norm(emb)), 1e-12)).astype(np.float32)
    return SeriesAnalysis(
        series_instance_uid=stack.series_instance_uid,
        header_modality=header,
        n_images=prepared.n_images,
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
        key_image=display(units[key_pos]),
        plane_source=plane.source if plane is not None else "",
        plane_angle=(plane.geometry.angle if plane is not None and plane.geometry is not None
                     else None),
        plane_nearest=(plane.geometry.nearest if plane is not None and plane.geometry is not None
                       else ""),
        patient_position=context.position,
        header_regions=named_regions,
        header_region_evidence=(f"{context.region_field}: {' '.join(context.region_terms)}"
                                if named_regions else ""),
    )


def _region(observations: list, warnings: list[str], pred, regions: tuple[str, ...],
            idx: np.ndarray, context: SeriesHeader, header: str, is_radiograph: bool) -> int:
    """The top three regions (chest radiograph only for radiographs); the key slice.

    Cross-sectional series combine the image with the region(s) the header names; when the
    image alone reads another region, a `region_mismatch` warning says so."""
    region_p = pred.region.copy()
    if header in CROSS_SECTIONAL or (not is_radiograph):
        region_p[:, regions.index("chest_radiograph")] = 0.0
        region_p /= np.maximum(region_p.sum(axis=1, keepdims=True), 1e-12)
    series_region = region_p.mean(axis=0)
    if not is_radiograph:
        named = context.regions or ((context.region,) if context.region else ())
        image_region = regions[int(np.argmax(series_region))]
        series_region = with_header_regions(series_region, regions, named)
        if named and image_region not in named:
            where = context.region_field or "BodyPartExamined"
            warnings.append(f"region_mismatch: the header ({where}: "
                            f"{' '.join(context.region_terms) or context.body_part}) names "
                            f"{', '.join(named)}, the image alone looks {image_region}")
    for k in np.argsort(-series_region, kind="stable")[:3]:
        observations.append(Observation(
            f"region:{regions[k]}", "region", REGION_LABEL.get(regions[k], regions[k]),
            round(float(series_region[k]), 6), _driving(idx, region_p[:, k])))
    top_region = int(np.argmax(series_region))
    return int(np.argmax(region_p[:, top_region]))


def _plane(observations: list, warnings: list[str], pred, planes: tuple[str, ...],
           idx: np.ndarray, orientation) -> PlaneDecision:
    """The plane: ImageOrientationPatient's where the header has one (a warning when the
    image alone looks otherwise), else the image head's; every plane as an observation."""
    decision = plane_decision(pred.plane.mean(axis=0), planes, orientation)
    geometry = decision.geometry
    if geometry is not None and decision.image_plane != geometry.nearest:
        warnings.append(f"plane_mismatch: ImageOrientationPatient says {geometry.plane} "
                        f"({geometry.angle:.0f}° from {geometry.nearest}), the image alone "
                        f"looks {decision.image_plane}")
    order = sorted(decision.probabilities, key=lambda p: (-decision.probabilities[p],
                                                          p not in planes, p))
    for plane in order:
        column = pred.plane[:, planes.index(plane)] if plane in planes else None
        observations.append(Observation(
            f"plane:{plane}", "plane", plane.capitalize(),
            round(float(decision.probabilities[plane]), 6),
            _driving(idx, column) if column is not None and decision.source == "image"
            else ()))
    return decision


def _radiograph_findings(observations: list, model, pred, idx: np.ndarray, units,
                         batch: torch.Tensor | None) -> tuple[int, list[Saliency]]:
    """Every finding head (max over slices) with the bundle's report threshold; GradCAM of
    the reported findings on the key slice. Returns (key slice position, saliency)."""
    findings, threshold = model.spec.findings, model.spec.finding_report_threshold
    finding_p = pred.findings.max(axis=0)
    for k in np.argsort(-finding_p, kind="stable"):
        name = findings[k]
        observations.append(Observation(
            f"finding:{name}", "finding", _finding_label(name),
            round(float(finding_p[k]), 6), _driving(idx, pred.findings[:, k]), threshold))
    top = int(np.argmax(finding_p))
    key_pos = int(np.argmax(pred.findings[:, top]))
    saliency = []
    for k in np.flatnonzero(finding_p >= threshold):
        pos = int(np.argmax(pred.findings[:, k]))
        if pos != key_pos or batch is None:
            continue  # saliency is aligned with the key image only
        cam = model.gradcam(batch[pos:pos + 1], int(k))
        saliency.append(Saliency(f"finding:{findings[k]}", int(idx[pos]), "gradcam",
                                 _to_image_grid(cam, units[pos].shape)))
    return key_pos, saliency


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


def _to_image_grid(cam: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Undo pad-to-square + resize so the map lines up with the key image's pixels."""
    h, w = shape
    side = max(h, w)
    t = torch.from_numpy(cam)[None, None]
    big = torch.nn.functional.interpolate(t, size=(side, side), mode="bilinear",
                                          align_corners=False)[0, 0].numpy()
    top, left = (side - h) // 2, (side - w) // 2
    return np.ascontiguousarray(np.clip(big[top:top + h, left:left + w], 0, 1),
                                dtype=np.float32)


__all__ = ["interpret"]
