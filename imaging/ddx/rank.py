"""Rank the knowledge base's diagnoses for one study.

Each entry gets a score, a sum of evidence terms (weights in `Weights`, tuned on the
MedPix *train* split with a leave-one-out library, never on validation):

- image: cosine between the study's image embedding and the entry's feature sentences in
  the model's joint text space, standardised over the entries (z-score);
- region / modality fit: log of the probability mass the region head gives to regions
  where the entry occurs; a penalty when the predicted modality is not one the entry is
  diagnosed on;
- findings: observations named in the entry's `supported_by` (e.g. `finding:pneumonia`)
  push it up when likely and down when indeterminate;
- history: TF-IDF similarity of the clinical history to the entry's text, the entry's
  history keywords found in it, the entry's name or synonym written in it, and (when the
  model has a text tower) the history's joint-space similarity to the entry;
- age and sex: a penalty outside the entry's typical age range (growing with the distance)
  and a strong one for the wrong sex; and the life stage (a child with an adults-only
  diagnosis, an adult with a childhood one), a log ratio fitted on train (`population.py`);
- similar teaching cases: similarity-weighted votes of the nearest library cases whose
  diagnosis matches the entry (see `matcher.py`), plus a small prior for diagnoses frequent
  in the library.

The score is turned into a probability that the item is the diagnosis by the bundle's
calibration (`calibration.py`, isotonic maps fitted on train cases). The first items also get
their evidence for and against as typed `Evidence` (`evidence.py`), which `imaging.notes`
words. The image term counts as evidence (`EvidenceKind.IMAGE`) only when the cosine reaches
the similarity threshold measured on validation (`resembles_threshold`); below it the image is
not claimed to resemble anything. Everything is deterministic: ties break by entry id.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..types import Analysis, ClinicalContext
from . import matcher, population
from .abbreviations import expand
from .evidence import Evidence, EvidenceKind, SimilarCase, codes
from .knowledge_view import REGIONS_OF_MODEL_REGION, Entry, KnowledgeView, model_region
from .text_space import entry_embeddings, history_index


@dataclass(frozen=True)
class Weights:
    """Term weights. Tuned by coordinate ascent on hit@5 (with and without history) over the
    MedPix train split, each case left out of the library and of the library prior; the
    validation split was never used for tuning."""

    image: float = 0.6
    region: float = 0.75
    modality: float = 0.7
    finding: float = 2.0
    history_tfidf: float = 12.0
    history_keyword: float = 0.5
    history_name: float = 5.0
    history_embed: float = 0.5
    age: float = 0.8
    sex: float = 1.0
    cases: float = 2.0
    prior: float = 0.3
    temperature: float = 1.0


DEFAULT_WEIGHTS = Weights()
TERMS = tuple(f for f in Weights.__dataclass_fields__ if f != "temperature")


@dataclass(frozen=True)
class StudyEvidence:
    """What the ranking needs from an `Analysis`: pooled over in-distribution series."""

    modality: str | None
    region_probs: dict[str, float]
    observations: dict[str, tuple[float, str]]  # code -> (probability, English label)
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)
    # finding code -> the probability at which it counts as present (0.5 when absent)
    thresholds: dict[str, float] = field(default_factory=dict)

    @property
    def knowledge_region_fit(self) -> dict[str, float]:
        """Probability that the study shows each knowledge region."""
        fit: dict[str, float] = {}
        for region, p in self.region_probs.items():
            for k in REGIONS_OF_MODEL_REGION.get(region, ()):
                fit[k] = fit.get(k, 0.0) + p
        return fit


def study_evidence(analysis: Analysis) -> StudyEvidence:
    series = [s for s in analysis.series if not s.out_of_distribution]
    region_probs: dict[str, float] = {}
    observations: dict[str, tuple[float, str]] = {}
    thresholds: dict[str, float] = {}
    embeddings = []
    modality = None
    for s in series:
        for o in s.observations:
            if o.kind == "region":
                region = model_region(o.code)
                if region:
                    share = o.probability / len(series)
                    region_probs[region] = region_probs.get(region, 0.0) + share
            prev = observations.get(o.code)
            if prev is None or o.probability > prev[0]:
                observations[o.code] = (o.probability, o.label)
            if o.threshold is not None:
                thresholds[o.code] = o.threshold
        if s.embedding is not None:
            embeddings.append(np.asarray(s.embedding, dtype=np.float32).ravel())
    if series:
        top = max(series, key=lambda s: (s.n_images, s.series_instance_uid)).top("modality")
        if top is not None:
            modality = top.code.split(":", 1)[-1]
        else:
            modality = {"CR": "XR", "DX": "XR"}.get(series[0].header_modality,
                                                   series[0].header_modality)
    embedding = None
    if embeddings:
        mean = np.mean(np.stack(embeddings), axis=0)
        embedding = mean / max(float(np.linalg.norm(mean)), 1e-8)
    return StudyEvidence(modality, region_probs, observations, embedding, thresholds)


@dataclass(frozen=True)
class Scored:
    entry: Entry
    score: float
    supporting: tuple[Evidence, ...]
    against: tuple[Evidence, ...]
    similar_cases: tuple[SimilarCase, ...]

    @property
    def supporting_codes(self) -> tuple[str, ...]:
        return codes(self.supporting)

    @property
    def against_codes(self) -> tuple[str, ...]:
        return codes(self.against)


def _padded(text: str) -> str:
    return f" {matcher.normalise(text)} "


@dataclass(frozen=True)
class _Prepared:
    """Per knowledge view, computed once: what scoring needs as arrays and phrases."""

    keywords: tuple[tuple[tuple[str, str], ...], ...]  # per entry: (phrase, padded norm)
    names: tuple[tuple[str, ...], ...]  # per entry: padded normalised names (> 3 chars)
    age_lo: np.ndarray
    age_hi: np.ndarray
    sex: tuple[str, ...]


_PREPARED: dict[str, _Prepared] = {}
_NAME_INDEX: dict[str, matcher.NameIndex] = {}


def name_index(view: KnowledgeView) -> matcher.NameIndex:
    """The matcher's index over every entry's name and synonyms (once per knowledge hash)."""
    index = _NAME_INDEX.get(view.knowledge_hash)
    if index is None:
        index = matcher.NameIndex(e.all_names for e in view.entries)
        _NAME_INDEX[view.knowledge_hash] = index
    return index


def _prepare(view: KnowledgeView) -> _Prepared:
    prepared = _PREPARED.get(view.knowledge_hash)
    if prepared is None:
        entries = view.entries
        prepared = _Prepared(
            keywords=tuple(tuple((k, _padded(k)) for k in e.history_keywords if k.strip())
                           for e in entries),
            names=tuple(tuple(_padded(n) for n in e.all_names if len(n) > 3) for e in entries),
            age_lo=np.array([e.age_range[0] if e.age_range else -np.inf for e in entries]),
            age_hi=np.array([e.age_range[1] if e.age_range else np.inf for e in entries]),
            sex=tuple(e.sex for e in entries),
        )
        _PREPARED[view.knowledge_hash] = prepared
    return prepared


def rank(
    evidence: StudyEvidence,
    context: ClinicalContext | None,
    view: KnowledgeView,
    *,
    model=None,
    similar_cases: tuple[SimilarCase, ...] = (),
    case_prior: dict[str, float] | None = None,
    weights: Weights = DEFAULT_WEIGHTS,
    history_embedding: np.ndarray | None = None,
    n_evidence: int = 10,
    terms_out: dict[str, np.ndarray] | None = None,
    resembles_threshold: float | None = None,
) -> list[Scored]:
    """All entries, best first; evidence items for the first `n_evidence` only.

    `terms_out`, when given, receives each unweighted term (arrays in view order), which
    is how the weights are tuned without re-ranking.
    """
    entries = view.entries
    n = len(entries)
    if n == 0:
        return []
    context = context or ClinicalContext()
    w = weights
    prep = _prepare(view)
    terms = {name: np.zeros(n, dtype=np.float64) for name in TERMS}

    # image <-> entry features in the joint space
    image_cos = None
    text_matrix = None
    if model is not None and evidence.embedding is not None:
        try:
            text_matrix = entry_embeddings(view, model)
        except Exception:  # noqa: BLE001 - a text tower failure only drops this term
            text_matrix = None
        if text_matrix is not None and text_matrix.shape[1] == evidence.embedding.shape[0]:
            image_cos = text_matrix @ evidence.embedding.astype(np.float32)
            terms["image"] += (image_cos - image_cos.mean()) / max(float(image_cos.std()), 1e-6)
        else:
            text_matrix = None

    # region and modality fit
    fit = evidence.knowledge_region_fit
    region_p = np.zeros(n)
    if fit:
        region_p = np.array([max((fit.get(r, 0.0) for r in e.regions), default=0.0)
                             for e in entries])
        terms["region"] += np.log(region_p + 0.02)
    modality = evidence.modality
    if modality:
        terms["modality"] -= np.array([bool(e.modalities) and modality not in e.modalities
                                        for e in entries], dtype=np.float64)

    # observations the entry names as supporting (findings especially)
    finding_terms: list[list[tuple[str, float, str]]] = [[] for _ in range(n)]
    for i, e in enumerate(entries):
        for code in e.supported_by:
            if code.startswith("finding:") and code in evidence.observations:
                p, label = evidence.observations[code]
                terms["finding"][i] += p - evidence.thresholds.get(code, 0.5)
                finding_terms[i].append((code, p, label))

    # clinical history
    history = expand((context.history or "").strip())
    tfidf = np.zeros(n, dtype=np.float32)
    keyword_hits: list[list[str]] = [[] for _ in range(n)]
    if history:
        tfidf = history_index(view).similarity(history)
        terms["history_tfidf"] += tfidf
        norm = _padded(history)
        for i in range(n):
            hits = sorted({k for k, padded in prep.keywords[i] if padded in norm})
            if hits:
                keyword_hits[i] = hits
                terms["history_keyword"][i] += min(len(hits), 3)
            if any(padded in norm for padded in prep.names[i]):
                terms["history_name"][i] += 1.0
        if history_embedding is not None and text_matrix is not None:
            if text_matrix.shape[1] == history_embedding.shape[0]:
                cos = text_matrix @ history_embedding.astype(np.float32)
                terms["history_embed"] += (cos - cos.mean()) / max(float(cos.std()), 1e-6)

    # age and sex
    if context.age is not None:
        age = float(context.age)
        distance = np.maximum(prep.age_lo - age, 0) + np.maximum(age - prep.age_hi, 0)
        terms["age"] -= np.minimum(np.nan_to_num(distance / 15.0), 2.0)
    if context.sex in ("F", "M"):
        terms["sex"] -= np.array([s in ("F", "M") and s != context.sex for s in prep.sex],
                                  dtype=np.float64)

    # similar teaching cases and the library prior
    cases_of: dict[int, list[SimilarCase]] = {}
    if similar_cases:
        index = name_index(view)
        for case in similar_cases:
            for i in sorted(index.matching(case.diagnosis)):
                cases_of.setdefault(i, []).append(case)
                terms["cases"][i] += max(case.similarity, 0.0)
    if case_prior:
        terms["prior"] += np.log1p(np.array([case_prior.get(e.id, 0.0) for e in entries]))

    # life stage (child / adult) against the entry's typical patients: a fitted log ratio
    life_stage = population.life_stage_weights(entries, context.age)
    score = sum(getattr(w, name) * terms[name] for name in TERMS) + life_stage
    if terms_out is not None:
        terms_out.update(terms, population=life_stage)
    rounded = np.round(score, 9)
    order = sorted(range(n), key=lambda i: (-rounded[i], entries[i].id))
    image_top = set()
    if image_cos is not None and resembles_threshold is not None:
        image_top = set(np.flatnonzero(image_cos >= resembles_threshold).tolist())
    tfidf_top = set(np.argsort(-tfidf, kind="stable")[:10].tolist()) if history else set()

    out = []
    for position, i in enumerate(order):
        e = entries[i]
        support: list[Evidence] = []
        against: list[Evidence] = []
        if position < n_evidence:
            if i in image_top:
                support.append(Evidence.of(EvidenceKind.IMAGE, value=float(image_cos[i])))
            if fit and e.regions:
                best = max(e.regions, key=lambda r: (fit.get(r, 0.0), r))
                if region_p[i] >= 0.5:
                    support.append(Evidence.of(EvidenceKind.REGION, f"region:{best}", region=best))
                elif region_p[i] < 0.2:
                    against.append(Evidence.of(EvidenceKind.REGION_NO, region=best))
            if modality and e.modalities:
                code = f"modality:{modality}"
                if modality in e.modalities:
                    support.append(Evidence.of(EvidenceKind.MODALITY, code, modality=modality))
                else:
                    against.append(Evidence.of(EvidenceKind.MODALITY_NO, code, modality=modality))
            for code, p, label_en in finding_terms[i]:
                cut = evidence.thresholds.get(code, 0.5)
                if p >= cut:
                    support.append(Evidence.of(EvidenceKind.FINDING, code, label=label_en,
                                               probability=p))
                elif p < 0.6 * cut:
                    against.append(Evidence.of(EvidenceKind.FINDING_LOW, code, label=label_en,
                                               probability=p))
            if i in tfidf_top and tfidf[i] > 0.1:
                support.append(Evidence.of(EvidenceKind.HISTORY_SIMILAR))
            if keyword_hits[i]:
                support.append(Evidence.of(EvidenceKind.HISTORY, words=tuple(keyword_hits[i])))
            if context.age is not None and e.age_range is not None:
                lo, hi = e.age_range
                inside = lo <= context.age <= hi
                (support if inside else against).append(Evidence.of(
                    EvidenceKind.AGE_IN if inside else EvidenceKind.AGE_OUT,
                    age=context.age, lo=int(lo), hi=int(hi)))
            if context.sex in ("F", "M") and e.sex in ("F", "M") and e.sex != context.sex:
                against.append(Evidence.of(EvidenceKind.SEX_NO, sex=e.sex))
            if i in cases_of:
                support.append(Evidence.of(EvidenceKind.CASES, n=len(cases_of[i])))
        out.append(Scored(
            entry=e, score=round(float(score[i]), 6),
            supporting=tuple(dict.fromkeys(support)), against=tuple(dict.fromkeys(against)),
            similar_cases=tuple(cases_of.get(i, ())),
        ))
    return out
