"""Fit the differential's calibration on MedPix *train*; measure what the note quotes on val.

    python -m imaging.ddx.fit_calibration --data ../shared/data/dev \
        --out weights/models/ddx_calibration.json

1. Every train case is ranked as the note ranks it (`analyze`'s reading of its images,
   `rank.study_evidence`, the train library with the case itself left out of its neighbours
   and of the library prior), with and without its clinical history. The top-10 items'
   calibration features (`calibration.calibration_feature`) and whether each is the case's
   diagnosis give one isotonic map per situation. Validation plays no part in the maps.
2. On validation (the train library, as `radassist evaluate` uses it): the image-text
   similarity that only 1% of entries that are *not* the case's diagnosis reach becomes the
   "resembles" threshold (a false-alarm rate measured, not a tuned knob), and
   `evaluation.ddx.evaluate_ddx` with the new maps gives the top-5 hit rate per situation
   (modality x history) and the top-5 ECE, each with case-level intervals, stored for the
   note to quote.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..cases.library import read_medpix
from ..types import ClinicalContext
from . import rank as R
from .calibration import (
    SITUATIONS,
    Calibration,
    Rate,
    calibration_feature,
    fit_isotonic,
)
from .evidence import SimilarCase
from .knowledge_view import load_view

TOP_K = 10  # items per case the maps are fitted on (the note lists 5)
FALSE_ALARM = 0.01  # share of non-diagnosis entries allowed to "resemble" the image


def train_rows(data_dir: Path, model, view, library) -> dict[str, tuple[list, list]]:
    """situation -> (features, hits) of the top-K items of every leave-one-out train case."""
    from ..evaluation.medpix_study import case_analyses, case_contexts

    cases = read_medpix(data_dir, ("train",))
    analyses = case_analyses(model, cases, data_dir, progress=True)
    contexts = case_contexts(data_dir, "train")
    prior = library.entry_prior(view)
    index = R.name_index(view)
    out: dict[str, tuple[list, list]] = {s: ([], []) for s in SITUATIONS}
    for case in cases:
        evidence = R.study_evidence(analyses[case.case_id])
        matching = {view.entries[i].id for i in index.matching(case.diagnosis)}
        own_prior = {k: v - (k in matching) for k, v in prior.items()}
        age, sex = contexts.get(case.case_id, (None, None))
        for key, ctx in (("history", ClinicalContext(age=age, sex=sex, history=case.history)),
                         ("no_history", ClinicalContext(age=age, sex=sex))):
            hits = library.search(evidence.embedding, ctx.history or None, k=5,
                                  exclude=(case.case_id,))
            similar = tuple(SimilarCase(h.case_id, h.diagnosis, h.similarity) for h in hits)
            history_embedding = (np.asarray(model.encode_text([ctx.history]))[0]
                                 if ctx.history.strip() else None)
            ranked = R.rank(evidence, ctx, view, model=model, similar_cases=similar,
                            case_prior=own_prior, history_embedding=history_embedding,
                            n_evidence=0)
            feature = calibration_feature(np.array([s.score for s in ranked]))[:TOP_K]
            out[key][0].extend(feature.tolist())
            out[key][1].extend(int(s.entry.id in matching) for s in ranked[:TOP_K])
    return out


def similarity_threshold(data_dir: Path, model, view) -> tuple[float, float]:
    """(the 99th percentile of image-entry cosines over val cases' non-diagnosis entries,
    the share of diagnosis entries above it)."""
    from ..evaluation.medpix_study import case_analyses
    from .text_space import entry_embeddings

    cases = read_medpix(data_dir, ("val",))
    analyses = case_analyses(model, cases, data_dir)
    text = entry_embeddings(view, model)
    index = R.name_index(view)
    wrong, right = [], []
    for case in cases:
        evidence = R.study_evidence(analyses[case.case_id])
        if evidence.embedding is None:
            continue
        cos = text @ evidence.embedding.astype(np.float32)
        target = np.zeros(len(view.entries), bool)
        target[list(index.matching(case.diagnosis))] = True
        wrong.extend(cos[~target].tolist())
        right.extend(cos[target].tolist())
    threshold = float(np.quantile(wrong, 1.0 - FALSE_ALARM))
    above = float(np.mean(np.asarray(right) >= threshold)) if right else 0.0
    return round(threshold, 4), round(above, 4)


def _rate(metric: dict) -> Rate:
    return Rate(float(metric["value"]), float(metric["ci95"][0]), float(metric["ci95"][1]),
                int(metric["n"]))


def main() -> int:
    from ..evaluation.ddx import evaluate_ddx, library_for
    from ..model import get_model

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    model, view = get_model(), load_view()
    library = library_for(args.data, model, progress=True)
    rows = train_rows(args.data, model, view, library)
    maps = {key: fit_isotonic(np.array(f), np.array(h)) for key, (f, h) in rows.items()}
    threshold, sensitivity = similarity_threshold(args.data, model, view)
    calibration = Calibration(maps=maps, image_similarity_threshold=threshold)
    metrics = evaluate_ddx(args.data, "val", args.data, model=model, view=view,
                           calibration=calibration, progress=True)
    hit = {}
    for modality in ("all", "CT", "MR"):
        for key in SITUATIONS:
            suffix = "" if key == "history" else "_no_history"
            name = (f"medpix.ddx_hit@5{suffix}" if modality == "all"
                    else f"medpix.ddx_hit@5_{modality}{suffix}")
            if name in metrics and metrics[name].get("value") is not None:
                hit[f"{modality}|{key}"] = _rate(metrics[name])
    ece = {key: _rate(metrics[f"medpix.ddx_ece_top5{'' if key == 'history' else '_no_history'}"])
           for key in SITUATIONS}
    n_train = {key: len(rows[key][1]) // TOP_K for key in SITUATIONS}
    calibration = Calibration(
        maps=maps, hit_at_5=hit, image_similarity_threshold=threshold, ece_top5=ece,
        source=(f"isotonic maps: MedPix train, {n_train['history']} cases leave-one-out "
                f"(top {TOP_K} items each); hit rates, ECE and the similarity threshold "
                f"(99th percentile of non-diagnosis entries; {sensitivity:.0%} of diagnosis "
                f"entries reach it): MedPix val, {metrics['medpix.ddx_n_cases']} cases; "
                f"model {model.version}, knowledge {view.knowledge_hash}"))
    args.out.write_text(json.dumps(calibration.to_json(), indent=1) + "\n")
    print(json.dumps({k: v for k, v in metrics.items() if "ddx" in k}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
