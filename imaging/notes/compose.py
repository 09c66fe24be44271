"""Compose the draft note from an `Analysis` and the clinical context.

Pure given its inputs (the analysis, the context, the knowledge files, the model's text
tower and the case library): no clock, no randomness, no dict-order dependence, so the same
input gives the same note byte for byte (tested across processes). Every sentence is built
from `strings.py` or knowledge-base text, in both languages.

Uncertainty bands for calibrated probabilities (observations, and differential items'
calibrated probability of being the diagnosis): "likely" at 0.70 or more, "possible" from
0.30 to below 0.70, "indeterminate" below 0.30 — the same cut-offs shown to the reader in
the note itself.
"""

from __future__ import annotations

import dataclasses
import os
from functools import lru_cache

import numpy as np

from ..ddx import rank as ddx_rank
from ..ddx.calibration import Calibration, calibration_feature, load_calibration
from ..ddx.knowledge_view import KnowledgeView, load_view
from ..types import Analysis, ClinicalContext, Saliency, SeriesAnalysis
from .evidence_text import evidence_texts
from .note import (
    ConsideredRule,
    DifferentialItem,
    FollowUpItem,
    Note,
    NoteSection,
    ObservationItem,
    SaliencyRef,
    SimilarCase,
    Text,
)
from .series_text import ROLE_KEYS, series_items, study_summary, warning_text
from .strings import DISCLAIMER, STRINGS, observation_label, t, tt

LIKELY, POSSIBLE = 0.70, 0.30
MIN_ITEMS, MAX_ITEMS = 3, 5
SIMILAR_CASES_K = 5
# Quality is the share of validation images less typical than the series (analyze.py). Below
# the 1st percentile the series is out of distribution and not diagnosed; below the 10th it
# is still diagnosed, but the reader is told the model is on thin ground (e.g. pydicom's
# 128-pixel CT_small slice, quality 0.05, whose differential is a run of pneumonias).
ATYPICAL_QUALITY = 0.10
_SHOWN_KINDS = ("modality", "region", "plane")
FINDING_THRESHOLD = 0.5  # a radiograph finding at or above this is image evidence


def band(probability: float) -> str:
    """The uncertainty band of a calibrated probability (cut-offs in the module docstring)."""
    if probability >= LIKELY:
        return "likely"
    if probability >= POSSIBLE:
        return "possible"
    return "indeterminate"


def _r(x: float) -> float:
    return round(float(x), 4)


@dataclasses.dataclass(frozen=True)
class Resources:
    """What composing reads besides the analysis; injectable for tests."""

    view: KnowledgeView
    model: object | None = None  # has encode_text(list[str]) and .version, or None
    library: object | None = None  # imaging.cases.CaseLibrary or None
    weights: ddx_rank.Weights | None = None  # None: the tuned defaults
    # P(item is the diagnosis) and the measured hit rates; None: items are not calibrated
    calibration: Calibration | None = None

    @property
    def ranking_weights(self) -> ddx_rank.Weights:
        return self.weights or ddx_rank.DEFAULT_WEIGHTS


def _default_model():
    try:
        from ..model import get_model  # type: ignore[attr-defined]

        return get_model()
    except Exception:  # noqa: BLE001 - no weights yet: the note says the term is missing
        return None


@lru_cache(maxsize=1)
def default_resources() -> Resources:
    from ..cases.store import default_library

    model = _default_model()
    return Resources(view=load_view(), model=model, library=default_library(),
                     calibration=load_calibration(getattr(model, "weights_dir", None)))


# --- saliency -------------------------------------------------------------------------------

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


# --- follow-up rules --------------------------------------------------------------------------

def _rules() -> dict:
    """The executable guideline rules. They ship with the package: an import failure is a
    bug to surface, never a reason for guidelines to vanish from every note."""
    from ..knowledge.guidelines import RULES

    return dict(RULES)


class RuleNotEvaluated(Exception):
    """A rule that should have run could not; the note says so instead of dropping it."""


def _evaluate_rule(rule, context: ClinicalContext, modality: str):
    """Run a rule whose finding needs no measurement; None when it needs one.

    Any other failure raises `RuleNotEvaluated` with the reason (shown in the note; with
    RADASSIST_STRICT_RULES=1, as the test suite runs, the error itself propagates).
    """
    from ..knowledge.guidelines.common import PatientContext

    try:
        finding = rule.finding_type()
    except TypeError:
        return None  # the finding needs measurements the model does not give
    try:
        patient = PatientContext.from_clinical(context, modality=modality or "CT")
        return rule.evaluate(finding, patient)
    except Exception as exc:
        if os.environ.get("RADASSIST_STRICT_RULES"):
            raise
        raise RuleNotEvaluated(f"{type(exc).__name__}: {exc}") from exc


_NEEDS_MEASUREMENT = Text(
    "needs a measured finding (size, attenuation) that the model does not provide",
    "需要模型无法提供的测量值（大小、密度）")


def _not_evaluated(reason: str) -> Text:
    return t("fu.not_evaluated", reason=reason[:200])


def _follow_up(items: list[ddx_rank.Scored], context: ClinicalContext, modality: str):
    rules = _rules()
    follow, considered = [], []
    for scored in items:
        entry = scored.entry
        for rec in entry.next_imaging:
            rule_id = rec.get("rule")
            protocol = Text(*(str((rec.get("protocol") or {}).get(k, "")) for k in ("en", "zh")))
            timing = Text(*(str((rec.get("timing") or {}).get(k, "")) for k in ("en", "zh")))
            urgency, citation = str(rec.get("urgency") or "routine"), str(rec.get("source") or "")
            if rule_id and rule_id not in rules:
                # a knowledge entry names a rule that does not exist: say so, cite nothing
                considered.append(ConsideredRule(rule_id, entry.id,
                                                 _not_evaluated("no such rule is installed")))
                continue
            if rule_id:
                try:
                    result = _evaluate_rule(rules[rule_id], context, modality)
                except RuleNotEvaluated as exc:
                    considered.append(ConsideredRule(rule_id, entry.id, _not_evaluated(str(exc))))
                    continue
                if result is None:
                    considered.append(ConsideredRule(rule_id, entry.id, _NEEDS_MEASUREMENT))
                    continue
                if not result.applies:
                    reason = result.not_applicable_reason
                    considered.append(ConsideredRule(rule_id, entry.id, Text(reason.en, reason.zh)))
                    continue
                rec_text = result.recommendation
                protocol = Text(rec_text.en, rec_text.zh)
                urgency, citation = result.urgency, result.citation or citation
            follow.append(FollowUpItem(entry.id, str(rec.get("modality") or ""), protocol, timing,
                                       urgency, citation, rule_id))
    unique_considered: dict[tuple[str, Text], ConsideredRule] = {}
    for c in considered:  # one line per rule and reason, for the first diagnosis citing it
        unique_considered.setdefault((c.rule_id, c.reason), c)
    return tuple(dict.fromkeys(follow)), tuple(unique_considered.values())


# --- the note ------------------------------------------------------------------------------------

def _context_line(context: ClinicalContext) -> Text:
    parts: list[Text] = []
    if context.age is not None:
        parts.append(t("context.age", age=context.age))
    if context.sex in ("F", "M"):
        parts.append(t(f"context.sex.{context.sex}"))
    if context.history.strip():
        parts.append(t("context.history", text=" ".join(context.history.split())))
    if not parts:
        return t("analysed.context_none")
    return Text(t("analysed.context", text="; ".join(p.en for p in parts)).en,
                t("analysed.context", text="；".join(p.zh for p in parts)).zh)


def compose(
    analysis: Analysis, context: ClinicalContext | None = None, *,
    resources: Resources | None = None,
) -> Note:
    """The draft note for one analysed study (see the module docstring)."""
    context = context or ClinicalContext()
    res = resources or default_resources()
    view = res.view
    knowledge_version = view.knowledge_hash

    # 1. what was analysed: the study in one line, then series by series
    summary = study_summary(analysis)
    analysed: list[Text] = [summary, t("analysed.study", uid=analysis.study_instance_uid,
                                       model=analysis.model_version, knowledge=knowledge_version)]
    if not analysis.series:
        analysed.append(t("analysed.no_series"))
    for index, s in enumerate(analysis.series, start=1):
        modality = s.top("modality")
        region = s.top("region")
        analysed.append(tt(
            "analysed.series", index=index,
            modality=observation_label(modality.code, modality.label) if modality
            else Text(s.header_modality, s.header_modality),
            region=observation_label(region.code, region.label) if region else t("unknown"),
            n=s.n_images, key_image=s.key_slice + 1, quality=s.quality_score))
        if s.out_of_distribution:
            analysed.append(t("analysed.ood", index=index, quality=s.quality_score))
        elif s.quality_score < ATYPICAL_QUALITY:
            analysed.append(t("analysed.atypical", index=index, quality=s.quality_score,
                              share=round(100 * (1 - s.quality_score))))
        if s.n_volumes > 1:
            analysed.append(t("analysed.four_d", index=index, n=s.n_volumes))
        for w in s.warnings:
            analysed.append(tt("analysed.warning", text=warning_text(w)))
    for index, listed in enumerate(analysis.listed, start=len(analysis.series) + 1):
        reason_key = f"reason.{listed.reason_code}"
        reason = t(reason_key) if reason_key in STRINGS else Text(listed.reason, listed.reason)
        analysed.append(tt("analysed.listed", index=index,
                           description=listed.description or listed.modality or "?",
                           role=t(ROLE_KEYS.get(listed.role, "role.unreadable")),
                           reason=reason))
    for w in analysis.warnings:
        analysed.append(tt("analysed.warning", text=warning_text(w)))
    analysed.append(_context_line(context))

    usable = [s for s in analysis.series if not s.out_of_distribution]
    ood = not usable

    # 2. observations
    observations: list[ObservationItem] = []
    for s in usable:
        for kind in _SHOWN_KINDS:
            top = s.top(kind)
            if top is not None:
                observations.append(ObservationItem(
                    s.series_instance_uid, top.code, observation_label(top.code, top.label),
                    _r(top.probability), band(top.probability)))
        for o in sorted((o for o in s.observations if o.kind == "finding"),
                        key=lambda o: (-o.probability, o.code)):
            observations.append(ObservationItem(
                s.series_instance_uid, o.code, observation_label(o.code, o.label),
                _r(o.probability), band(o.probability)))
    obs_lines = [tt("obs.line", label=o.label, probability=o.probability, band=t(f"band.{o.band}"))
                 for o in observations] or [t("obs.none")]
    obs_lines.append(t("obs.bands"))

    # 3. differential
    differential: list[DifferentialItem] = []
    ranked: list[ddx_rank.Scored] = []
    ddx_lines: list[Text] = []
    ddx_levels: list[int] = []
    without_evidence = None if ood else _no_evidence_reason(usable, context)
    if ood:
        ddx_lines.append(t("ddx.none_ood"))
    elif without_evidence is not None:
        ddx_lines.extend([without_evidence, t("ddx.ask_history")])
    elif not view.entries:
        ddx_lines.append(t("ddx.none_kb"))
    else:
        ranked = rank_for(analysis, context, res)
        shown = ranked[:MAX_ITEMS]
        has_history = bool(context.history.strip())
        probabilities: list[float | None] = [None] * len(shown)
        if res.calibration is not None:
            features = calibration_feature(np.array([s.score for s in ranked]))[:len(shown)]
            probabilities = [_r(p) for p in res.calibration.probabilities(features, has_history)]
        key_series = max(usable, key=lambda s: (s.n_images, s.series_instance_uid))
        for rank_no, (scored, share) in enumerate(zip(shown, probabilities, strict=True),
                                                  start=1):
            entry = scored.entry
            sal = _saliency_for(key_series, scored.supporting_codes)
            sal_ref = None
            if sal is not None and sal.array is not None:
                zone, centroid = saliency_zone(sal.array)
                sal_ref = SaliencyRef(key_series.series_instance_uid, sal.finding_code,
                                      sal.slice_index, zone, centroid)
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
                saliency=sal_ref, similar_cases=scored.similar_cases,
                knowledge_entry_id=entry.id, discriminators=discriminators,
                score=_r(scored.score))
            differential.append(item)
            item_lines = _item_lines(rank_no, item, analysis)
            ddx_lines.extend(item_lines)
            ddx_levels.extend([0] + [1] * (len(item_lines) - 1))
        ddx_lines.extend(_trust_lines(res.calibration, ddx_rank.study_evidence(analysis),
                                      has_history))
    ddx_levels.extend([0] * (len(ddx_lines) - len(ddx_levels)))

    # 4. follow-up
    fu_lines: list[Text] = []
    follow_up: tuple[FollowUpItem, ...] = ()
    considered: tuple[ConsideredRule, ...] = ()
    if ranked:
        modality = ddx_rank.study_evidence(analysis).modality or ""
        follow_up, considered = _follow_up(ranked[:MIN_ITEMS], context, modality)
        names = {d.diagnosis_id: d.names for d in differential}
        for f in follow_up:
            fu_lines.append(tt("fu.item", protocol=f.protocol, modality=f.modality,
                               timing=f.timing, urgency=t(f"urgency.{f.urgency}"),
                               citation=f.citation,
                               rule=t("fu.rule", rule=f.rule_id) if f.rule_id else t("fu.no_rule"),
                               diagnosis=names.get(f.diagnosis_id, Text(f.diagnosis_id,
                                                                       f.diagnosis_id))))
        for c in considered:
            fu_lines.append(tt("fu.not_applicable", rule=c.rule_id, reason=c.reason))
    if not follow_up:
        fu_lines.insert(0, t("fu.none"))

    # 5. limitations
    limits = [t("lim.draft"), t("lim.scope"), t("lim.knowledge", n=len(view.entries))]
    if ood:
        limits.append(t("lim.ood"))
    elif any(s.quality_score < ATYPICAL_QUALITY for s in usable):
        limits.append(t("lim.atypical"))
    if res.library is None or not len(res.library):
        limits.append(t("lim.no_library"))
    if res.model is None:
        limits.append(t("lim.no_text_model"))
    if any(d.saliency for d in differential):
        limits.append(t("lim.saliency"))
    limits.append(DISCLAIMER)

    sections = (
        NoteSection("analysed", t("sec.analysed"), tuple(analysed)),
        NoteSection("observations", t("sec.observations"), tuple(obs_lines)),
        NoteSection("differential", t("sec.differential"), tuple(ddx_lines),
                    tuple(ddx_levels)),
        NoteSection("follow_up", t("sec.follow_up"), tuple(fu_lines)),
        NoteSection("limitations", t("sec.limitations"), tuple(limits)),
    )
    return Note(
        study_instance_uid=analysis.study_instance_uid, model_version=analysis.model_version,
        knowledge_version=knowledge_version, out_of_distribution=ood, sections=sections,
        observations=tuple(observations), differential=tuple(differential),
        follow_up=follow_up, considered_rules=considered, disclaimer=DISCLAIMER,
        title=t("title"), series=series_items(analysis), summary=summary)


def _trust_lines(calibration: Calibration | None, evidence: ddx_rank.StudyEvidence,
                 has_history: bool) -> list[Text]:
    """What the list rests on, what its numbers mean and how often such a list was right."""
    findings = [(code, p, label) for code, (p, label) in evidence.observations.items()
                if code.startswith("finding:") and p >= evidence.thresholds.get(code, 0.5)]
    if findings:
        items = [tt("ddx.finding_p", label=observation_label(code, label), probability=p)
                 for code, p, label in sorted(findings, key=lambda f: (-f[1], f[0]))]
        lines = [tt("ddx.basis_findings", items=Text(", ".join(i.en for i in items),
                                                    "，".join(i.zh for i in items)))]
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
        return tt(key, items=Text(", ".join(i.en for i in items), "，".join(i.zh for i in items)))
    return t("ddx.none_cross_sectional")


def _threshold(o) -> float:
    return o.threshold if o.threshold is not None else FINDING_THRESHOLD


def rank_for(analysis: Analysis, context: ClinicalContext, res: Resources) -> list[ddx_rank.Scored]:
    """Rank the knowledge base for an analysis with the resources' model and library."""
    evidence = ddx_rank.study_evidence(analysis)
    similar: tuple[SimilarCase, ...] = ()
    prior = None
    if res.library is not None and len(res.library):
        hits = res.library.search(embedding=evidence.embedding, history=context.history,
                                  k=SIMILAR_CASES_K)
        similar = tuple(SimilarCase(h.case_id, h.diagnosis, _r(h.similarity)) for h in hits)
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


def _item_lines(rank_no: int, item: DifferentialItem, analysis: Analysis) -> list[Text]:
    if item.likelihood is None:
        lines = [tt("ddx.item_uncalibrated", rank=rank_no, name=item.names,
                    score=item.score)]
    else:
        lines = [tt("ddx.item", rank=rank_no, name=item.names, likelihood=item.likelihood,
                    band=t(f"band.{item.band}"))]
    if item.supporting:
        lines.append(_join("ddx.supporting", item.supporting))
    if item.against:
        lines.append(_join("ddx.against", item.against))
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


def _join(key: str, items: tuple[Text, ...]) -> Text:
    return tt(key, items=Text("; ".join(i.en for i in items), "；".join(i.zh for i in items)))
