"""The differential section: rank the knowledge base, then word each item and what the list
rests on — or why there is no list (out of distribution, no image evidence and no clinical
question, an empty knowledge base)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..bands import band, rounded
from ..ddx import rank as ddx_rank
from ..ddx.calibration import Calibration, calibration_feature
from ..ddx.evidence import SimilarCase
from ..types import Analysis, ClinicalContext, SeriesAnalysis
from .evidence_text import evidence_texts
from .note import DifferentialItem, Text
from .resources import Resources
from .saliency import saliency_ref
from .strings import joined, observation_label, t, tt

MAX_ITEMS = 5  # items shown
SIMILAR_CASES_K = 5
FINDING_THRESHOLD = 0.5  # a radiograph finding at or above this is image evidence


def rank_for(evidence: ddx_rank.StudyEvidence, context: ClinicalContext,
             res: Resources) -> list[ddx_rank.Scored]:
    """Rank the knowledge base for a study's evidence with the resources' model and library."""
    similar: tuple[SimilarCase, ...] = ()
    prior = None
    if res.library is not None and len(res.library):
        hits = res.library.search(embedding=evidence.embedding, history=context.history,
                                  k=SIMILAR_CASES_K)
        similar = tuple(SimilarCase(h.case_id, h.diagnosis, rounded(h.similarity)) for h in hits)
        prior = res.library.entry_prior(res.view)
    history_embedding = None
    if res.model is not None and context.history.strip():
        try:
            history_embedding = np.asarray(res.model.encode_text([context.history]))[0]
        except Exception:  # noqa: BLE001 - the history term is optional
            history_embedding = None
    return ddx_rank.rank(evidence, context, res.view, model=res.model, similar_cases=similar,
                         case_prior=prior, weights=res.ranking_weights,
                         history_embedding=history_embedding)


@dataclass(frozen=True)
class DifferentialSection:
    lines: tuple[Text, ...]
    levels: tuple[int, ...]
    items: tuple[DifferentialItem, ...]
    ranked: tuple[ddx_rank.Scored, ...]  # every entry, best first; empty when nothing ranked


def differential_section(analysis: Analysis, usable: list[SeriesAnalysis],
                         evidence: ddx_rank.StudyEvidence, context: ClinicalContext,
                         res: Resources) -> DifferentialSection:
    """The ranked items (at most `MAX_ITEMS`) and their lines, or why there are none.

    `usable` are the analysis' in-distribution series, `evidence` their pooled evidence.
    """
    differential: list[DifferentialItem] = []
    ranked: list[ddx_rank.Scored] = []
    lines: list[Text] = []
    levels: list[int] = []
    without_evidence = _no_evidence_reason(usable, context) if usable else None
    if not usable:
        lines.append(t("ddx.none_ood"))
    elif without_evidence is not None:
        lines.extend([without_evidence, t("ddx.ask_history")])
    elif not res.view.entries:
        lines.append(t("ddx.none_kb"))
    else:
        ranked = rank_for(evidence, context, res)
        shown = ranked[:MAX_ITEMS]
        has_history = bool(context.history.strip())
        probabilities: list[float | None] = [None] * len(shown)
        if res.calibration is not None:
            features = calibration_feature(np.array([s.score for s in ranked]))[:len(shown)]
            probabilities = [rounded(p)
                             for p in res.calibration.probabilities(features, has_history)]
        key_series = max(usable, key=lambda s: (s.n_images, s.series_instance_uid))
        for rank_no, (scored, share) in enumerate(zip(shown, probabilities, strict=True),
                                                  start=1):
            entry = scored.entry
            names = {d[0]: d for d in entry.differentials}
            discriminators = tuple(
                tt("ddx.discriminator", other=Text(other.entry.name_en, other.entry.name_zh),
                   text=Text(names[other.entry.id][1], names[other.entry.id][2]))
                for other in shown if other.entry.id in names)
            item = DifferentialItem(
                diagnosis_id=entry.id, names=Text(entry.name_en, entry.name_zh),
                likelihood=share, band=band(share) if share is not None else "uncalibrated",
                supporting=evidence_texts(scored.supporting),
                against=evidence_texts(scored.against),
                supporting_codes=scored.supporting_codes, against_codes=scored.against_codes,
                saliency=saliency_ref(key_series, scored.supporting_codes),
                similar_cases=scored.similar_cases,
                knowledge_entry_id=entry.id, discriminators=discriminators,
                score=rounded(scored.score))
            differential.append(item)
            item_lines = _item_lines(rank_no, item, analysis)
            lines.extend(item_lines)
            levels.extend([0] + [1] * (len(item_lines) - 1))
        lines.extend(_trust_lines(res.calibration, evidence, has_history))
    levels.extend([0] * (len(lines) - len(levels)))
    return DifferentialSection(tuple(lines), tuple(levels), tuple(differential), tuple(ranked))


def _trust_lines(calibration: Calibration | None, evidence: ddx_rank.StudyEvidence,
                 has_history: bool) -> list[Text]:
    """What the list rests on, what its numbers mean and how often such a list was right."""
    findings = [(code, p, label) for code, (p, label) in evidence.observations.items()
                if code.startswith("finding:") and p >= evidence.thresholds.get(code, 0.5)]
    if findings:
        items = [tt("ddx.finding_p", label=observation_label(code, label), probability=p)
                 for code, p, label in sorted(findings, key=lambda f: (-f[1], f[0]))]
        lines = [tt("ddx.basis_findings", items=joined(items))]
    else:
        lines = [t("ddx.basis_history")]
    if calibration is None:
        lines.append(t("ddx.how_uncalibrated"))
        return lines
    lines.append(t("ddx.how"))
    rate = calibration.hit_rate(evidence.modality, has_history)
    if rate is not None:
        lines.append(tt("ddx.hit_rate", modality=evidence.modality or "?",
                        situation=t("ddx.with_history" if has_history else "ddx.without_history"),
                        value=rate.value, low=rate.low, high=rate.high, n=rate.n))
    return lines


def _no_evidence_reason(usable: list[SeriesAnalysis], context: ClinicalContext) -> Text | None:
    """Why the image alone cannot support a differential, or None when something can.

    A header that disagrees with the image about the modality flags the study: nothing is
    ranked on it. Otherwise evidence is a clinical question, or a finding at or above its
    threshold: 0.5 for the radiograph heads, the threshold chosen on train folds for each
    CT/MR finding head. Modality, region and plane name no disease, so a CT or MR whose
    finding heads all stay below threshold (or a bundle without them) gets no list without
    a question.
    """
    if any(w.startswith("modality_mismatch") for s in usable for w in s.warnings):
        return t("ddx.none_mismatch")
    if context.history.strip():
        return None
    findings = [o for s in usable for o in s.observations if o.kind == "finding"]
    if any(o.probability >= _threshold(o) for o in findings):
        return None
    if findings:
        best: dict[str, tuple[float, float]] = {}
        for o in findings:
            if o.probability >= best.get(o.code, (-1.0, 0.0))[0]:
                best[o.code] = (o.probability, _threshold(o))
        items = [tt("ddx.finding_p_of", label=observation_label(code, code.split(":")[-1]),
                    probability=p, threshold=cut)
                 for code, (p, cut) in sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0]))]
        key = ("ddx.none_no_finding_ctmr" if all(s.header_modality in ("CT", "MR")
                                                 for s in usable) else "ddx.none_no_finding")
        return tt(key, items=joined(items))
    return t("ddx.none_cross_sectional")


def _threshold(o) -> float:
    return o.threshold if o.threshold is not None else FINDING_THRESHOLD


def _item_lines(rank_no: int, item: DifferentialItem, analysis: Analysis) -> list[Text]:
    if item.likelihood is None:
        lines = [tt("ddx.item_uncalibrated", rank=rank_no, name=item.names,
                    score=item.score)]
    else:
        lines = [tt("ddx.item", rank=rank_no, name=item.names, likelihood=item.likelihood,
                    band=t(f"band.{item.band}"))]
    if item.supporting:
        lines.append(tt("ddx.supporting", items=joined(item.supporting, "list.separator")))
    if item.against:
        lines.append(tt("ddx.against", items=joined(item.against, "list.separator")))
    if item.saliency is not None:
        index = next((i for i, s in enumerate(analysis.series, start=1)
                      if s.series_instance_uid == item.saliency.series_instance_uid), 1)
        lines.append(tt("ddx.region", region=item.saliency.zone, series=index,
                        slice=item.saliency.slice_index + 1))
    if item.similar_cases:
        text = "; ".join(f"{c.case_id} ({c.diagnosis})" for c in item.similar_cases)
        lines.append(t("ddx.cases", items=text))
    lines.append(t("ddx.knowledge", id=item.knowledge_entry_id))
    lines.extend(item.discriminators)
    return lines
