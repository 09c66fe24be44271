"""Differential-diagnosis evaluation on MedPix cases (`radassist evaluate --task ddx`).

For each case of the evaluated split, every image goes through `analyze`'s own code as a
one-slice series (`medpix_study.case_analyses`: windowing, quality / phantom checks, header
priors, CT/MR finding heads), the case's `Analysis` is pooled by `ddx.rank.study_evidence`
as the note pools it, and the knowledge base is ranked exactly as the note ranks it, with the
teaching-case library built from `library_dir`'s *train* split (never the evaluated split;
when the two coincide each case is left out of its own neighbours).

Metrics (each `{"value", "ci95", "n"}`, percentile bootstrap over cases, never images):
- `medpix.ddx_hit@1/@5/@10`: the case's `Case Diagnosis` matches one of our top-k items
  (`imaging.ddx.matcher`: an item's name or a knowledge-base synonym), with the clinical
  history as context; `..._no_history` without it. Age and sex (image metadata) are given in
  both.
- `medpix.ddx_overlap`: share of the case's human `Differential Diagnosis` items that one of
  our top-10 items matches (cases without a human list are left out).
- `medpix.ddx_ece_top5` / `..._no_history`: 10-bin ECE of the calibrated probability of the
  top-5 items (`ddx.calibration`, fitted on train) against whether each is the diagnosis;
  `medpix.ddx_p_top1...`: mean calibrated probability of the first item beside its hit rate.
- `medpix.ddx_hit@5_<CT|MR>[_no_history]`: the hit rate per modality (the note quotes these).
- baselines, same cases, same matcher: `region_frequent` — the library's most frequent
  diagnoses among cases of the predicted region; `nearest_case` — the diagnosis of the single
  nearest library case (by image and history; by image only for `_no_history`).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np

from ..bands import band
from ..cases.deid import scrub
from ..cases.library import CaseLibrary, CaseRecord, build, read_medpix
from ..ddx import matcher
from ..ddx import rank as ddx_rank
from ..ddx.calibration import Calibration, calibration_feature, expected_calibration_error
from ..ddx.knowledge_view import KnowledgeView, load_view
from ..ddx.text_space import cache_dir, model_key
from ..types import ClinicalContext
from .medpix_study import case_analyses, case_contexts
from .metrics import with_ci

KS = (1, 5, 10)


def _predictor(model) -> Callable[[list[Path]], object]:
    from ..model.preprocess import load_jpeg, to_input

    def predict(paths: list[Path]):
        import torch

        batch = torch.stack([to_input(load_jpeg(p)) for p in paths])
        return model.predict(batch)

    return predict


def library_for(library_dir: Path, model, progress: bool = False) -> CaseLibrary:
    """The train-split library of `library_dir`, built once per model version and data."""
    manifest = Path(library_dir) / "medpix" / "cases.json"
    key = hashlib.sha1(manifest.read_bytes()).hexdigest()[:12] if manifest.is_file() else "none"
    path = cache_dir() / f"library_train_{key}_{model_key(model)}.sqlite"
    if not path.is_file():
        from .medpix_study import image_embeddings

        train = read_medpix(Path(library_dir), ("train",))
        embed = image_embeddings(model, train, Path(library_dir), progress=progress)
        build(Path(library_dir), path, splits=("train",),
              embed=lambda paths: np.stack([embed[Path(p).stem] for p in paths]),
              model_version=str(model.version), progress=progress)
    return CaseLibrary.load(path)


_case_contexts = case_contexts


def _hits(diagnosis: str, names_ranked: list[tuple[str, ...]]) -> dict[int, int]:
    first = next((i for i, names in enumerate(names_ranked) if matcher.matches(diagnosis, names)),
                 None)
    return {k: int(first is not None and first < k) for k in KS}


def prediction_line(case: CaseRecord, modality: str | None, history_used: bool,
                    ranked: list[ddx_rank.Scored], likelihoods: list[float | None],
                    hits: dict[int, int]) -> dict:
    """One case in one history setting, as `--predictions` writes it (format in the README):
    enough for an independent matcher to re-score it without this code."""
    items = []
    for rank_no, (s, p) in enumerate(zip(ranked, likelihoods, strict=False), start=1):
        items.append({"rank": rank_no, "id": s.entry.id, "name_en": s.entry.name_en,
                      "names": list(s.entry.all_names), "score": round(float(s.score), 6),
                      "likelihood": None if p is None else round(p, 6),
                      "band": None if p is None else band(p)})
    return {"kind": "ddx", "case": case.case_id, "history_used": history_used,
            "modality": modality, "reference_diagnosis": case.diagnosis,
            "differential": items, **{f"hit@{k}": bool(v) for k, v in sorted(hits.items())}}


def rank_case(
    evidence: ddx_rank.StudyEvidence, context: ClinicalContext, view: KnowledgeView, model,
    library: CaseLibrary | None, exclude: tuple[str, ...] = (),
    weights: ddx_rank.Weights = ddx_rank.DEFAULT_WEIGHTS, k_cases: int = 5,
) -> list[ddx_rank.Scored]:
    from ..ddx.evidence import SimilarCase

    similar: tuple[SimilarCase, ...] = ()
    prior = None
    if library is not None and len(library):
        hits = library.search(evidence.embedding, context.history or None, k=k_cases,
                              exclude=exclude)
        similar = tuple(SimilarCase(h.case_id, h.diagnosis, h.similarity) for h in hits)
        prior = library.entry_prior(view)
    history_embedding = None
    if model is not None and context.history.strip():
        history_embedding = np.asarray(model.encode_text([context.history]))[0]
    return ddx_rank.rank(evidence, context, view, model=model, similar_cases=similar,
                         case_prior=prior, weights=weights, history_embedding=history_embedding)


def evaluate_ddx(
    data_dir: str | Path, split: str, library_dir: str | Path | None,
    predictions_fh: IO[str] | None = None, *, model=None, view: KnowledgeView | None = None,
    weights: ddx_rank.Weights = ddx_rank.DEFAULT_WEIGHTS, progress: bool = True,
    calibration: Calibration | None = None,
) -> dict:
    """The metrics in the module docstring, as a flat dict keyed like the model metrics."""
    data_dir = Path(data_dir)
    library_dir = Path(library_dir) if library_dir is not None else data_dir
    if model is None:
        from ..model import get_model

        model = get_model()
    view = view or load_view()
    library = library_for(library_dir, model, progress=progress)
    same_data = library_dir.resolve() == data_dir.resolve()
    cases: list[CaseRecord] = read_medpix(data_dir, (split,))
    contexts = case_contexts(data_dir, split)
    analyses = case_analyses(model, cases, data_dir, progress=progress)
    if calibration is None:
        from ..ddx.calibration import load_calibration

        calibration = load_calibration(getattr(model, "weights_dir", None))

    region_lists: dict[str | None, list[str]] = {}
    counts: dict[str | None, Counter] = {}
    for r in library.rows:
        counts.setdefault(r.region, Counter())[matcher.normalise(r.diagnosis)] += 1
    examples = {matcher.normalise(r.diagnosis): r.diagnosis for r in library.rows}
    for region, counter in counts.items():
        region_lists[region] = [examples[d] for d, _ in
                                sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:10]]

    rows: dict[str, list[float]] = {}
    # per situation: (case index, calibrated probability, hit) of every top-5 item
    top5: dict[str, list[tuple[int, float, int]]] = {"": [], "_no_history": []}

    def add(key: str, value: float) -> None:
        rows.setdefault(key, []).append(value)

    iterator = cases
    if progress:
        from tqdm import tqdm
        iterator = tqdm(cases, desc=f"ddx {split}", unit="case")
    for case_no, case in enumerate(iterator):
        evidence = ddx_rank.study_evidence(analyses[case.case_id])
        age, sex = contexts.get(case.case_id, (None, None))
        history = scrub(case.history)
        exclude = (case.case_id,) if same_data else ()
        lines: list[dict] = []
        for suffix, ctx in (("", ClinicalContext(age=age, sex=sex, history=history)),
                            ("_no_history", ClinicalContext(age=age, sex=sex))):
            ranked = rank_case(evidence, ctx, view, model, library, exclude, weights)
            names = [s.entry.all_names for s in ranked[:10]]
            hits = _hits(case.diagnosis, names)
            for k, hit in hits.items():
                add(f"medpix.ddx_hit@{k}{suffix}", hit)
            add(f"medpix.ddx_hit@5_{evidence.modality}{suffix}", hits[5])
            likelihoods: list[float | None] = [None] * 10
            if calibration is not None:
                p = calibration.probabilities(
                    calibration_feature(np.array([s.score for s in ranked]))[:10],
                    bool(ctx.history.strip()))
                likelihoods = [float(v) for v in p]
                for s_item, p_item in zip(ranked[:5], p[:5], strict=True):
                    top5[suffix].append((case_no, float(p_item), int(matcher.matches(
                        case.diagnosis, s_item.entry.all_names))))
                add(f"medpix.ddx_p_top1{suffix}", float(p[0]))
            nearest = library.search(evidence.embedding, ctx.history or None, k=1,
                                     exclude=exclude)
            hit = int(bool(nearest) and matcher.matches(case.diagnosis, [nearest[0].diagnosis]))
            add(f"baselines.medpix.ddx_nearest_case_hit@1{suffix}", hit)
            if suffix == "":
                parts = matcher.split_parts(case.differential)
                if parts:
                    hit_parts, n_parts = matcher.overlap(case.differential, names)
                    add("medpix.ddx_overlap", hit_parts / n_parts)
            lines.append(prediction_line(case, evidence.modality, bool(ctx.history.strip()),
                                         ranked[:10], likelihoods, hits))
        region = max(evidence.region_probs, key=lambda r: (evidence.region_probs[r], r))
        frequent = [(d,) for d in region_lists.get(region, [])]
        for k, hit in _hits(case.diagnosis, frequent).items():
            add(f"baselines.medpix.ddx_region_frequent_hit@{k}", hit)
        if predictions_fh is not None:
            for line in lines:
                line["predicted_region"] = region
                predictions_fh.write(json.dumps(line, sort_keys=True, ensure_ascii=False) + "\n")

    metrics = {key: with_ci(np.mean, np.asarray(values, dtype=np.float64))
               for key, values in sorted(rows.items())}
    for suffix, items in top5.items():
        if items:
            metrics[f"medpix.ddx_ece_top5{suffix}"] = ece_by_case(items)
    metrics["medpix.ddx_n_cases"] = len(cases)
    metrics["medpix.ddx_knowledge_entries"] = len(view.entries)
    metrics["medpix.ddx_library_cases"] = len(library)
    return metrics


def ece_by_case(items: list[tuple[int, float, int]], seed: int = 0) -> dict:
    """Top-5 ECE of (case, probability, hit) rows with a 95% interval that resamples cases
    (`scipy.stats.bootstrap` over case indices: a case's five items stay together)."""
    from scipy.stats import bootstrap

    case = np.array([c for c, _, _ in items])
    p = np.array([q for _, q, _ in items])
    hit = np.array([h for _, _, h in items])
    ids = np.unique(case)
    rows_of = {c: np.flatnonzero(case == c) for c in ids}

    def stat(sample: np.ndarray) -> float:
        idx = np.concatenate([rows_of[int(c)] for c in sample])
        return expected_calibration_error(p[idx], hit[idx])

    value = expected_calibration_error(p, hit)
    if len(ids) < 2:
        return {"value": round(value, 4), "ci95": [None, None], "n": int(len(ids))}
    res = bootstrap((ids,), stat, vectorized=False, n_resamples=1000, method="percentile",
                    random_state=np.random.default_rng(seed))
    low, high = res.confidence_interval
    return {"value": round(value, 4), "ci95": [round(float(low), 4), round(float(high), 4)],
            "n": int(len(ids))}
