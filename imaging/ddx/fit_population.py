"""Fit the life-stage table of `population.py` on the MedPix train split (tooling).

    .venv/bin/python -m imaging.ddx.fit_population --data ../shared/data/dev \
        --out imaging/knowledge/population.json

Each train case whose `Case Diagnosis` names knowledge entries (the evaluation's matcher; a
case naming several counts 1/n for each) and whose images state an age is one observation of
(patient life stage, entry class). The null is the same patient against every entry of the
knowledge base. log P(class | stage, true) - log P(class | stage, null), add-one smoothed,
is the term. The sex mismatch rate is measured the same way and written beside it: it is the
evidence that the ranking's existing sex term (weight 1.0) already says what the data says.
The validation split is never read.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

from ..cases.library import read_medpix
from .knowledge_view import load_view
from .population import CLASSES, STAGES, entry_class, stage
from .rank import name_index


def case_ages(data_dir: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in json.loads((Path(data_dir) / "medpix" / "descriptions.json").read_text()):
        try:
            age = int(float(str((d.get("Description") or {}).get("Age")).strip()))
        except (TypeError, ValueError):
            continue
        out.setdefault(d["U_id"], age)
    return out


def fit(data_dir: Path, split: str = "train") -> dict:
    view = load_view()
    entries = view.entries
    index = name_index(view)
    ages = case_ages(data_dir)
    null_class = {c: sum(entry_class(e.age_range) == c for e in entries) / len(entries)
                  for c in CLASSES}
    sexed = [e.sex for e in entries if e.sex in ("F", "M")]
    true = {s: defaultdict(float) for s in STAGES}
    null = {s: defaultdict(float) for s in STAGES}
    sex_true = defaultdict(float)
    sex_null = defaultdict(float)
    n_cases = 0
    for case in read_medpix(Path(data_dir), [split]):
        matched = sorted(index.matching(case.diagnosis))
        age = ages.get(case.case_id)
        if not matched or age is None:
            continue
        n_cases += 1
        st = stage(age)
        for i in matched:
            true[st][entry_class(entries[i].age_range)] += 1.0 / len(matched)
        for c in CLASSES:
            null[st][c] += null_class[c]
        if case.sex in ("F", "M"):
            for i in matched:
                s = entries[i].sex
                key = "any" if s not in ("F", "M") else ("same" if s == case.sex else "other")
                sex_true[key] += 1.0 / len(matched)
            sex_null["other"] += sum(s != case.sex for s in sexed) / len(entries)
            sex_null["same"] += sum(s == case.sex for s in sexed) / len(entries)
            sex_null["any"] += 1 - len(sexed) / len(entries)

    def log_ratio(t: dict, n: dict, keys: tuple[str, ...] = CLASSES) -> dict[str, float]:
        tt, nn = sum(t.values()), sum(n.values())
        return {c: round(math.log((t[c] + 1) / (tt + len(keys)))
                         - math.log((n[c] + 1) / (nn + len(keys))), 4) for c in keys}

    sex_ratio = log_ratio(sex_true, sex_null, ("same", "other", "any"))
    return {
        "about": "log P(entry class | patient life stage) for the true diagnosis over the same "
                 "for any knowledge entry; entry class from age_range (adult: starts at 18 or "
                 "later; child: ends before 18); added to the ranking score by "
                 "imaging.ddx.population",
        "fitted_on": {"data": "medpix", "split": split, "cases": n_cases,
                      "knowledge_entries": len(entries),
                      "knowledge_hash": view.knowledge_hash},
        "counts": {s: {c: round(true[s][c], 3) for c in CLASSES} for s in STAGES},
        "log_ratio": {s: log_ratio(true[s], null[s]) for s in STAGES},
        "sex_check": {
            "log_ratio": sex_ratio,
            "counts": {k: round(v, 3) for k, v in sorted(sex_true.items())},
            "note": "a sex-specific entry in the other sex: the ranking's own sex term "
                    "(weight 1.0 x -1) already matches this ratio, so no sex term is added",
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    result = fit(args.data)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(json.dumps(result["log_ratio"], indent=1), json.dumps(result["sex_check"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
