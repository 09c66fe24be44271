"""The clinical context section, the plane and position lines of each series, and the
paediatric caveat: who the patient is and what the header said, each with its source.

`context_section` lists every `ContextItem` of the context (`header_context.merged` builds
them: the header's items, the user's over them) as "Age: 3 years (from the DICOM header)".
`series_geometry_lines` says, per analysed series, which evidence decided its plane (the
header geometry, or the image model without it) and the patient position the header states.
`paediatric_limitations` flags a child as outside the population the model was mostly
trained on, with the accuracy measured on paediatric validation images
(`imaging.training.paediatric` writes it into the weights bundle; a measurement of another
model version is not quoted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..ddx.population import ADULT_AGE
from ..header_context import age_text
from ..series_header import HEADER_REGION_RATIO, OBLIQUE_DEGREES, position_parts
from ..types import ClinicalContext, ContextItem, SeriesAnalysis
from .note import ContextEntry, Text
from .strings import STRINGS, joined, observation_label, t, tt

PAEDIATRIC_FILE = "models/paediatric.json"
_PRONE_OR_SIDE = ("prone", "decubitus_right", "decubitus_left")


def _value(item: ContextItem) -> Text:
    if item.key == "age":
        return t("ctx.age_90") if item.value.endswith("+") else t("ctx.age", age=item.value)
    if item.key == "sex" and f"sex.{item.value}" in STRINGS:
        return t(f"sex.{item.value}")
    if item.key == "laterality":
        words = [t(f"laterality.{v}") if f"laterality.{v}" in STRINGS else Text(v)
                 for v in item.value.split("; ")]
        return joined(words, "list.comma")
    if item.key in ("history", "reason", "admitting_diagnoses", "patient_history"):
        return t("ctx.text", text=item.value)
    return Text(item.value)


def context_entries(context: ClinicalContext) -> tuple[ContextEntry, ...]:
    """Every item of the context with its line, in the context's order."""
    items = list(context.items)
    if not items:  # a context built by hand (tests, tools): its fields, as the user's
        if context.age is not None:
            items.append(ContextItem("age", age_text(context.age), "user"))
        if context.sex in ("F", "M"):
            items.append(ContextItem("sex", context.sex, "user"))
        if context.history.strip():
            items.append(ContextItem("history", " ".join(context.history.split()), "user"))
    out = []
    for item in items:
        label_key = f"ctx.key.{item.key}"
        label = t(label_key) if label_key in STRINGS else Text(item.key)
        text = tt("ctx.item", label=label, value=_value(item),
                  source=t(f"ctx.source.{item.source}"))
        out.append(ContextEntry(item.key, item.value, item.source, text))
    return tuple(out)


def context_lines(entries: tuple[ContextEntry, ...]) -> tuple[Text, ...]:
    if not entries:
        return (t("ctx.none"),)
    return (*(e.text for e in entries), t("ctx.used"))


def series_geometry_lines(index: int, s: SeriesAnalysis) -> list[Text]:
    """The region(s) the header names, which evidence decided the plane, the patient
    position the header states."""
    lines: list[Text] = []
    plane = s.top("plane")
    if plane is not None and s.plane_source == "geometry" and s.plane_angle is not None:
        if plane.code == "plane:oblique":
            nearest = s.plane_nearest or "axial"
            lines.append(tt("analysed.plane_oblique", index=index, angle=f"{s.plane_angle:.0f}",
                            nearest=observation_label(f"plane:{nearest}", nearest),
                            limit=f"{OBLIQUE_DEGREES:.0f}"))
        else:
            label = observation_label(plane.code, plane.label)
            lines.append(tt("analysed.plane_geometry", index=index, plane=label,
                            angle=f"{s.plane_angle:.0f}", nearest=label))
    elif plane is not None and s.plane_source == "image":
        lines.append(tt("analysed.plane_image", index=index,
                        plane=observation_label(plane.code, plane.label)))
    if s.header_regions:
        lines.append(tt("analysed.region_header", index=index,
                        regions=joined([observation_label(f"region:{r}", r)
                                        for r in s.header_regions], "list.comma"),
                        evidence=s.header_region_evidence, ratio=HEADER_REGION_RATIO))
    parts = position_parts(s.patient_position)
    if parts:
        words = joined([t(f"position.{p}") for p in parts], "list.comma")
        lines.append(tt("analysed.position", index=index, position=words,
                        code=s.patient_position))
        lying = [p for p in parts if p in _PRONE_OR_SIDE]
        if lying and s.plane_source == "image":
            lines.append(tt("analysed.position_caution", index=index,
                            position=t(f"position.{lying[0]}")))
    return lines


@dataclass(frozen=True)
class PaediatricMeasurement:
    """What `imaging.training.paediatric` measured for one model version."""

    model_version: str
    raw: dict

    @classmethod
    def load(cls, weights_dir: str | Path | None) -> PaediatricMeasurement | None:
        if weights_dir is None:
            return None
        path = Path(weights_dir) / PAEDIATRIC_FILE
        if not path.is_file():
            return None
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls(str(raw.get("model_version", "")), raw)


def _rate(metric: dict | None, key: str = "lim.rate") -> Text | None:
    if not metric or "value" not in metric:
        return None
    low, high = (metric.get("ci95") or [metric["value"], metric["value"]])[:2]
    return t(key, value=metric["value"], low=low, high=high)


def paediatric_limitations(context: ClinicalContext, model_version: str,
                           measured: PaediatricMeasurement | None) -> list[Text]:
    """The paediatric caveat (none for adults or an unknown age)."""
    if context.age is None or context.age >= ADULT_AGE:
        return []
    lines = [t("lim.paediatric", age=context.age)]
    if measured is None or measured.model_version != model_version:
        return [*lines, t("lim.paediatric_unmeasured")]
    raw = measured.raw
    train = raw.get("train", {})
    lines.append(t("lim.paediatric_train",
                   children=sum(d.get("children", 0) for d in train.values()),
                   images=sum(d.get("with_age", 0) for d in train.values()),
                   young=sum(d.get("under_5", 0) for d in train.values())))
    kids, adults = raw.get("metrics_children", {}), raw.get("metrics_adults", {})
    rates = {k: _rate(kids.get(f"medpix.{k}_acc")) for k in ("modality", "region", "plane")}
    adult_rates = {k: _rate(adults.get(f"medpix.{k}_acc")) for k in rates}
    if all(rates.values()) and all(adult_rates.values()):
        first = kids.get("medpix.modality_acc") or {}
        lines.append(tt("lim.paediatric_measured", n=first.get("n", 0),
                        cases=first.get("groups", "?"), **rates,
                        **{f"a_{k}": v for k, v in adult_rates.items()}))
    auc, adult_auc = (_rate(kids.get("nih_cxr14.pneumonia_auroc"), "lim.auc"),
                      _rate(adults.get("nih_cxr14.pneumonia_auroc"), "lim.auc"))
    if auc is not None and adult_auc is not None:
        n = kids["nih_cxr14.pneumonia_auroc"].get("n", 0)
        lines.append(tt("lim.paediatric_pneumonia", n=n, auc=auc, a_auc=adult_auc))
    if len(lines) == 2:
        lines.append(t("lim.paediatric_unmeasured"))
    return lines


__all__ = ["PaediatricMeasurement", "context_entries", "context_lines",
           "paediatric_limitations", "series_geometry_lines"]
