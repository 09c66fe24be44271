"""Tune the ranking weights on the MedPix *train* split (never on validation).

    python -m imaging.ddx.tune --data ../shared/data/dev [--out weights.json]

Every train case is ranked with the library built from the other train cases (its own
case left out of the neighbours and of the library prior), the unweighted terms are kept
(`rank(..., terms_out=...)`), and coordinate ascent on the weights maximises hit@5 with and
without history (+0.3 x hit@1 and hit@10 as tie-breakers). Prints the tuned weights; copy
them into `rank.Weights` with the date and the numbers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..cases.deid import scrub
from ..cases.library import CaseLibrary, read_medpix
from ..types import ClinicalContext
from . import rank as R
from .evidence import SimilarCase
from .knowledge_view import load_view

FACTORS = (0.0, 0.25, 0.5, 0.7, 1.4, 2.0, 4.0)


def case_terms(data_dir: Path, model, split: str, library: CaseLibrary, view,
               leave_out: bool) -> list:
    """Per case, the unweighted terms with and without history, and which entries match.
    Each case's evidence is `analyze`'s own reading of its images (`case_analyses`)."""
    from ..evaluation.medpix_study import case_analyses, case_contexts

    contexts = case_contexts(data_dir, split)
    cases = read_medpix(data_dir, (split,))
    analyses = case_analyses(model, cases, data_dir, progress=True)
    rows = []
    for case in cases:
        target = np.zeros(len(view.entries), bool)
        target[list(R.name_index(view).matching(case.diagnosis))] = True
        if not target.any():
            rows.append(None)
            continue
        evidence = R.study_evidence(analyses[case.case_id])
        age, sex = contexts.get(case.case_id, (None, None))
        exclude = (case.case_id,) if leave_out else ()
        per_context = {}
        for key, ctx in (("history", ClinicalContext(age=age, sex=sex,
                                                     history=scrub(case.history))),
                         ("no_history", ClinicalContext(age=age, sex=sex))):
            hits = library.search(evidence.embedding, ctx.history or None, k=5, exclude=exclude)
            similar = tuple(SimilarCase(h.case_id, h.diagnosis, h.similarity) for h in hits)
            history_embedding = (np.asarray(model.encode_text([ctx.history]))[0]
                                 if ctx.history else None)
            terms: dict = {}
            R.rank(evidence, ctx, view, model=model, similar_cases=similar,
                   case_prior=library.entry_prior(view), terms_out=terms, n_evidence=0,
                   history_embedding=history_embedding)
            if leave_out:  # the case itself is in the library prior: take it out
                terms["prior"] = np.log1p(np.maximum(np.expm1(terms["prior"]) - target, 0))
            per_context[key] = np.stack([terms[t] for t in R.TERMS])
        rows.append((per_context, target))
    return rows


def hit_rates(rows: list, weights: np.ndarray, key: str) -> dict[int, float]:
    hits = {1: 0, 5: 0, 10: 0}
    for row in rows:
        if row is None:
            continue
        terms, target = row
        order = np.argsort(-(weights @ terms[key]), kind="stable")
        first = int(np.nonzero(target[order])[0][0])
        for k in hits:
            hits[k] += first < k
    return {k: round(v / max(len(rows), 1), 4) for k, v in hits.items()}


def objective(rows: list, weights: np.ndarray) -> float:
    a, b = hit_rates(rows, weights, "history"), hit_rates(rows, weights, "no_history")
    return a[5] + b[5] + 0.3 * (a[1] + a[10] + b[1] + b[10])


def coordinate_ascent(rows: list, start: np.ndarray, sweeps: int = 3) -> np.ndarray:
    best, best_value = start.copy(), objective(rows, start)
    for _ in range(sweeps):
        improved = False
        for i in range(len(best)):
            for factor in FACTORS:
                trial = best.copy()
                trial[i] = best[i] * factor if best[i] else factor
                value = objective(rows, trial)
                if value > best_value + 1e-9:
                    best, best_value, improved = trial, value, True
        if not improved:
            break
    return best


def main() -> int:
    from ..evaluation.ddx import library_for
    from ..model import get_model

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    model, view = get_model(), load_view()
    library = library_for(args.data, model, progress=True)
    rows = case_terms(args.data, model, "train", library, view, leave_out=True)
    start = np.array([getattr(R.DEFAULT_WEIGHTS, t) for t in R.TERMS])
    tuned = coordinate_ascent(rows, start)
    result = {
        "model_version": str(model.version), "knowledge_hash": view.knowledge_hash,
        "train_cases": len(rows),
        "before": {k: hit_rates(rows, start, k) for k in ("history", "no_history")},
        "after": {k: hit_rates(rows, tuned, k) for k in ("history", "no_history")},
        "weights": {t: round(float(w), 4) for t, w in zip(R.TERMS, tuned, strict=True)},
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
