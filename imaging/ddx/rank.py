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
  and a strong one for the wrong sex;
- similar teaching cases: similarity-weighted votes of the nearest library cases whose
  diagnosis matches the entry (see `matcher.py`), plus a small prior for diagnoses frequent
  in the library.

The score is turned into a relative likelihood by a softmax over the entries. Everything is
deterministic: ties break by entry id.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from ..notes.note import SimilarCase, Text
from ..notes.strings import observation_label, region_label, t, tt
from ..types import Analysis, ClinicalContext
from . import matcher
from .knowledge_view import REGIONS_OF_MODEL_REGION, Entry, KnowledgeView, model_region
from .text_space import entry_embeddings, history_index


@dataclass(frozen=True)
class Weights:
    image: float = 0.6
    region: float = 1.5
    modality: float = 0.7
    finding: float = 2.0
    history_tfidf: float = 6.0
    history_keyword: float = 0.8
    history_name: float = 2.5
    history_embed: float = 0.5
    age: float = 0.8
    sex: float = 4.0
    cases: float = 2.0
    prior: float = 0.15
    temperature: float = 1.0


DEFAULT_WEIGHTS = Weights()


@dataclass(frozen=True)
class StudyEvidence:
    """What the ranking needs from an `Analysis`: pooled over in-distribution series."""

    modality: str | None
    region_probs: dict[str, float]
    observations: dict[str, tuple[float, str]]  # code -> (probability, English label)
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)

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
    return StudyEvidence(modality, region_probs, observations, embedding)


@dataclass(frozen=True)
class Scored:
    entry: Entry
    score: float
    supporting: tuple[Text, ...]
    against: tuple[Text, ...]
    supporting_codes: tuple[str, ...]
    against_codes: tuple[str, ...]
    similar_cases: tuple[SimilarCase, ...]


def _phrase_in(phrase: str, text_norm: str) -> bool:
    p = matcher.normalise(phrase)
    return bool(p) and re.search(rf"\b{re.escape(p)}\b", text_norm) is not None


def _age_penalty(age: float, lo: float, hi: float) -> float:
    distance = lo - age if age < lo else age - hi if age > hi else 0.0
    return min(distance / 15.0, 2.0)


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
) -> list[Scored]:
    """All entries, best first (see the module docstring for the terms)."""
    entries = view.entries
    n = len(entries)
    if n == 0:
        return []
    context = context or ClinicalContext()
    w = weights
    score = np.zeros(n, dtype=np.float64)
    support: list[list[Text]] = [[] for _ in range(n)]
    against: list[list[Text]] = [[] for _ in range(n)]
    support_codes: list[list[str]] = [[] for _ in range(n)]
    against_codes: list[list[str]] = [[] for _ in range(n)]

    # image <-> entry features in the joint space
    text_matrix = None
    if model is not None and evidence.embedding is not None:
        try:
            text_matrix = entry_embeddings(view, model)
        except Exception:  # noqa: BLE001 - a text tower failure only drops this term
            text_matrix = None
        if text_matrix is not None and text_matrix.shape[1] == evidence.embedding.shape[0]:
            cos = text_matrix @ evidence.embedding.astype(np.float32)
            z = (cos - cos.mean()) / max(float(cos.std()), 1e-6)
            score += w.image * z
            for i in np.argsort(-z, kind="stable")[: max(10, n // 10)]:
                support[i].append(t("ev.image_text", value=float(cos[i])))
        else:
            text_matrix = None

    # region and modality fit
    fit = evidence.knowledge_region_fit
    if fit:
        for i, e in enumerate(entries):
            p = max((fit.get(r, 0.0) for r in e.regions), default=0.0)
            score[i] += w.region * math.log(p + 0.02)
            best = max(e.regions, key=lambda r: (fit.get(r, 0.0), r)) if e.regions else None
            if best is not None:
                label = region_label(best)
                if p >= 0.5:
                    support[i].append(tt("ev.region", region=label))
                    support_codes[i].append(f"region:{best}")
                elif p < 0.2:
                    against[i].append(tt("ev.region_no", region=label))
    if evidence.modality:
        modality = evidence.modality
        for i, e in enumerate(entries):
            if not e.modalities:
                continue
            if modality in e.modalities:
                support[i].append(t("ev.modality", modality=modality))
                support_codes[i].append(f"modality:{modality}")
            else:
                score[i] -= w.modality
                against[i].append(t("ev.modality_no", modality=modality))
                against_codes[i].append(f"modality:{modality}")

    # observations the entry names as supporting (findings especially)
    for i, e in enumerate(entries):
        for code in e.supported_by:
            if not code.startswith("finding:") or code not in evidence.observations:
                continue
            p, label = evidence.observations[code]
            text = observation_label(code, label)
            score[i] += w.finding * (p - 0.5)
            if p >= 0.5:
                support[i].append(tt("ev.finding", label=text, probability=p))
                support_codes[i].append(code)
            elif p < 0.3:
                against[i].append(tt("ev.finding_low", label=text, probability=p))
                against_codes[i].append(code)

    # clinical history
    history = (context.history or "").strip()
    if history:
        sim = history_index(view).similarity(history)
        if sim.size == n:
            score += w.history_tfidf * sim
            for i in np.argsort(-sim, kind="stable")[:10]:
                if sim[i] > 0.1:
                    support[i].append(t("ev.history_similar"))
        norm = matcher.normalise(history)
        for i, e in enumerate(entries):
            hits = sorted({k for k in e.history_keywords if _phrase_in(k, norm)})
            if hits:
                score[i] += w.history_keyword * min(len(hits), 3)
                support[i].append(t("ev.history", words=", ".join(hits[:4])))
            if any(_phrase_in(name, norm) for name in e.all_names if len(name) > 3):
                score[i] += w.history_name
        if history_embedding is not None and text_matrix is not None:
            if text_matrix.shape[1] == history_embedding.shape[0]:
                cos = text_matrix @ history_embedding.astype(np.float32)
                score += w.history_embed * (cos - cos.mean()) / max(float(cos.std()), 1e-6)

    # age and sex
    for i, e in enumerate(entries):
        if context.age is not None and e.age_range is not None:
            lo, hi = e.age_range
            penalty = _age_penalty(float(context.age), lo, hi)
            if penalty > 0:
                score[i] -= w.age * penalty
                against[i].append(t("ev.age_out", age=context.age, lo=int(lo), hi=int(hi)))
            else:
                support[i].append(t("ev.age_in", age=context.age, lo=int(lo), hi=int(hi)))
        if context.sex in ("F", "M") and e.sex in ("F", "M") and e.sex != context.sex:
            score[i] -= w.sex
            against[i].append(tt("ev.sex_no", sex=Text(*_sex_words(e.sex))))

    # similar teaching cases and the library prior
    cases_of: list[list[SimilarCase]] = [[] for _ in range(n)]
    if similar_cases:
        for i, e in enumerate(entries):
            names = e.all_names
            for case in similar_cases:
                if matcher.matches(case.diagnosis, names):
                    cases_of[i].append(case)
            if cases_of[i]:
                score[i] += w.cases * sum(max(c.similarity, 0.0) for c in cases_of[i])
                support[i].append(t("ev.cases", n=len(cases_of[i])))
    if case_prior:
        for i, e in enumerate(entries):
            score[i] += w.prior * math.log1p(case_prior.get(e.id, 0.0))

    order = sorted(range(n), key=lambda i: (-round(float(score[i]), 9), entries[i].id))
    return [
        Scored(
            entry=entries[i], score=round(float(score[i]), 6),
            supporting=tuple(dict.fromkeys(support[i])), against=tuple(dict.fromkeys(against[i])),
            supporting_codes=tuple(dict.fromkeys(support_codes[i])),
            against_codes=tuple(dict.fromkeys(against_codes[i])),
            similar_cases=tuple(cases_of[i]),
        )
        for i in order
    ]


def _sex_words(sex: str) -> tuple[str, str]:
    return ("female", "女性") if sex == "F" else ("male", "男性")


def likelihoods(scored: list[Scored], k: int, temperature: float = 1.0) -> list[float]:
    """Softmax of the top-k scores: relative shares among the listed items (sum to 1)."""
    top = np.array([s.score for s in scored[:k]], dtype=np.float64) / temperature
    if top.size == 0:
        return []
    p = np.exp(top - top.max())
    p /= p.sum()
    return [round(float(x), 4) for x in p]
