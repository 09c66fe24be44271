"""Differential-diagnosis evaluation on MedPix cases (`radassist evaluate --task ddx`).

For each case of the evaluated split, all of its images go through the model (the same
per-image heads and embeddings `analyze` pools per series), are pooled per case, and the
knowledge base is ranked exactly as the note ranks it (`imaging.ddx.rank`), with the
teaching-case library built from `library_dir`'s *train* split (never the evaluated split;
when the two coincide each case is left out of its own neighbours).

Metrics (each `{"value", "ci95", "n"}`, percentile bootstrap over cases):
- `medpix.ddx_hit@1/@5/@10`: the case's `Case Diagnosis` matches one of our top-k items
  (`imaging.ddx.matcher`: an item's name or a knowledge-base synonym), with the clinical
  history as context; `..._no_history` without it. Age and sex (image metadata) are given in
  both.
- `medpix.ddx_overlap`: share of the case's human `Differential Diagnosis` items that one of
  our top-10 items matches (cases without a human list are left out).
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

from ..cases.deid import scrub
from ..cases.library import CaseLibrary, CaseRecord, build, read_medpix
from ..ddx import matcher
from ..ddx import rank as ddx_rank
from ..ddx.knowledge_view import KnowledgeView, load_view
from ..ddx.text_space import cache_dir, model_key
from ..types import ClinicalContext
from .metrics import with_ci

KS = (1, 5, 10)


def _predictor(model) -> Callable[[list[Path]], object]:
    from ..model.preprocess import load_jpeg, to_input

    def predict(paths: list[Path]):
        import torch

        batch = torch.stack([to_input(load_jpeg(p)) for p in paths])
        return model.predict(batch)

    return predict


def _evidence(prediction, model, cross_sectional: bool = True) -> ddx_rank.StudyEvidence:
    """Pool a case's per-image predictions the way `analyze` pools a series: a CT/MR header
    rules out the chest-radiograph region, and radiograph findings are read only on
    radiographs (MedPix cases are CT/MR)."""
    from ..model.loaded import HEAD_LABELS

    regions = list(HEAD_LABELS["region"])
    region_p = np.array(prediction.region, dtype=np.float64)
    if cross_sectional and "chest_radiograph" in regions:
        region_p[:, regions.index("chest_radiograph")] = 0.0
        region_p /= np.maximum(region_p.sum(axis=1, keepdims=True), 1e-12)
    region = region_p.mean(axis=0)
    modality = prediction.modality.mean(axis=0)
    emb = prediction.embedding.mean(axis=0)
    emb = emb / max(float(np.linalg.norm(emb)), 1e-8)
    observations = {}
    if not cross_sectional:
        findings = prediction.findings.max(axis=0)
        observations = {f"finding:{name}": (float(p), name)
                        for name, p in zip(HEAD_LABELS["findings"], findings, strict=True)}
    return ddx_rank.StudyEvidence(
        modality=HEAD_LABELS["modality"][int(np.argmax(modality))],
        region_probs={r: float(p) for r, p in zip(regions, region, strict=True)},
        observations=observations, embedding=emb.astype(np.float32))


def library_for(library_dir: Path, model, progress: bool = False) -> CaseLibrary:
    """The train-split library of `library_dir`, built once per model version and data."""
    manifest = Path(library_dir) / "medpix" / "cases.json"
    key = hashlib.sha1(manifest.read_bytes()).hexdigest()[:12] if manifest.is_file() else "none"
    path = cache_dir() / f"library_train_{key}_{model_key(model)}.sqlite"
    if not path.is_file():
        predict = _predictor(model)
        build(Path(library_dir), path, splits=("train",),
              embed=lambda paths: predict(paths).embedding, model_version=str(model.version),
              progress=progress)
    return CaseLibrary.load(path)


def _case_contexts(data_dir: Path, split: str) -> dict[str, tuple[int | None, str | None]]:
    """Age and sex per case from the image descriptions (what a DICOM header would carry)."""
    out: dict[str, tuple[int | None, str | None]] = {}
    for d in json.loads((Path(data_dir) / "medpix" / "descriptions.json").read_text()):
        desc = d.get("Description") or {}
        age = None
        try:
            age = int(float(str(desc.get("Age")).strip()))
        except (TypeError, ValueError):
            pass
        sex = {"male": "M", "female": "F"}.get(str(desc.get("Sex") or "").strip().lower())
        prev = out.get(d["U_id"], (None, None))
        out[d["U_id"]] = (prev[0] if prev[0] is not None else age, prev[1] or sex)
    return out


def _hits(diagnosis: str, names_ranked: list[tuple[str, ...]]) -> dict[int, int]:
    first = next((i for i, names in enumerate(names_ranked) if matcher.matches(diagnosis, names)),
                 None)
    return {k: int(first is not None and first < k) for k in KS}


def rank_case(
    evidence: ddx_rank.StudyEvidence, context: ClinicalContext, view: KnowledgeView, model,
    library: CaseLibrary | None, exclude: tuple[str, ...] = (),
    weights: ddx_rank.Weights = ddx_rank.DEFAULT_WEIGHTS, k_cases: int = 5,
) -> list[ddx_rank.Scored]:
    from ..notes.note import SimilarCase

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
    contexts = _case_contexts(data_dir, split)
    predict = _predictor(model)

    region_lists: dict[str | None, list[str]] = {}
    counts: dict[str | None, Counter] = {}
    for r in library.rows:
        counts.setdefault(r.region, Counter())[matcher.normalise(r.diagnosis)] += 1
    examples = {matcher.normalise(r.diagnosis): r.diagnosis for r in library.rows}
    for region, counter in counts.items():
        region_lists[region] = [examples[d] for d, _ in
                                sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:10]]

    rows: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        rows.setdefault(key, []).append(value)

    iterator = cases
    if progress:
        from tqdm import tqdm
        iterator = tqdm(cases, desc=f"ddx {split}", unit="case")
    for case in iterator:
        prediction = predict(list(case.image_paths))
        evidence = _evidence(prediction, model, cross_sectional=bool(
            set(case.modalities) & {"CT", "MR"}))
        age, sex = contexts.get(case.case_id, (None, None))
        history = scrub(case.history)
        exclude = (case.case_id,) if same_data else ()
        out: dict = {"case": case.case_id, "diagnosis": case.diagnosis}
        for suffix, ctx in (("", ClinicalContext(age=age, sex=sex, history=history)),
                            ("_no_history", ClinicalContext(age=age, sex=sex))):
            ranked = rank_case(evidence, ctx, view, model, library, exclude, weights)
            names = [s.entry.all_names for s in ranked[:10]]
            for k, hit in _hits(case.diagnosis, names).items():
                add(f"medpix.ddx_hit@{k}{suffix}", hit)
            nearest = library.search(evidence.embedding, ctx.history or None, k=1,
                                     exclude=exclude)
            hit = int(bool(nearest) and matcher.matches(case.diagnosis, [nearest[0].diagnosis]))
            add(f"baselines.medpix.ddx_nearest_case_hit@1{suffix}", hit)
            out[f"differential{suffix}"] = [
                {"id": s.entry.id, "name": s.entry.name_en, "score": s.score} for s in ranked[:10]]
            if suffix == "":
                parts = matcher.split_parts(case.differential)
                if parts:
                    hit_parts, n_parts = matcher.overlap(case.differential, names)
                    add("medpix.ddx_overlap", hit_parts / n_parts)
        region = max(evidence.region_probs, key=lambda r: (evidence.region_probs[r], r))
        frequent = [(d,) for d in region_lists.get(region, [])]
        for k, hit in _hits(case.diagnosis, frequent).items():
            add(f"baselines.medpix.ddx_region_frequent_hit@{k}", hit)
        out["predicted_region"] = region
        if predictions_fh is not None:
            predictions_fh.write(json.dumps(out, sort_keys=True, ensure_ascii=False) + "\n")

    metrics = {key: with_ci(np.mean, np.asarray(values, dtype=np.float64))
               for key, values in sorted(rows.items())}
    metrics["medpix.ddx_n_cases"] = len(cases)
    metrics["medpix.ddx_knowledge_entries"] = len(view.entries)
    metrics["medpix.ddx_library_cases"] = len(library)
    return metrics
