"""How the model does on children: measured on the paediatric validation images (tooling).

    .venv/bin/python -m imaging.training.paediatric --data ../shared/data/dev \
        --out weights/models/paediatric.json

The training images are mostly adults. This counts the children (age under 18, as each
dataset states it: MedPix image descriptions, NIH labels, COVID metadata) among the train
images, and scores the bundle on the validation images of children and of adults separately
with the evaluation's own metrics (`imaging.evaluation.run.score`, case/patient bootstrap
intervals). The note reads the result (`notes.population`) to flag a paediatric study with
these numbers; the file records the model version it was measured on.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from imaging.datasets import ImageRecord, load_all
from imaging.ddx.population import ADULT_AGE

YOUNG = 5  # "under 5" is counted too: the youngest children are the rarest in training


def record_ages(data_dir: Path) -> dict[str, float]:
    """ImageRecord.id -> age in years, where the dataset states one."""
    data_dir = Path(data_dir)
    ages: dict[str, float] = {}

    def number(value) -> float | None:
        try:
            return float(str(value).strip())
        except (TypeError, ValueError):
            return None

    desc = data_dir / "medpix" / "descriptions.json"
    if desc.is_file():
        for d in json.loads(desc.read_text()):
            age = number((d.get("Description") or {}).get("Age"))
            if age is not None:
                ages[f"medpix/{d['image']}"] = age
    for folder, column in (("nih_cxr14", "labels.csv"), ("covid_cxr", "metadata.csv")):
        path = data_dir / folder / column
        if not path.is_file():
            continue
        with path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                age = number(row.get("age"))
                if age is not None and row.get("image"):
                    ages[f"{folder}/{Path(row['image']).stem}"] = age
    return ages


def composition(records: list[ImageRecord], ages: dict[str, float]) -> dict:
    out: dict[str, dict[str, int]] = {}
    for r in records:
        d = out.setdefault(r.dataset, {"images": 0, "with_age": 0, "children": 0,
                                       f"under_{YOUNG}": 0})
        d["images"] += 1
        age = ages.get(r.id)
        if age is None:
            continue
        d["with_age"] += 1
        d["children"] += age < ADULT_AGE
        d[f"under_{YOUNG}"] += age < YOUNG
    return out


def measure(data_dir: Path, model=None) -> dict:
    from imaging.evaluation.run import predict_records, score

    if model is None:
        from imaging.model import get_model

        model = get_model()
    ages = record_ages(data_dir)
    train = load_all(data_dir, ["train"])
    val = [r for r in load_all(data_dir, ["val"]) if r.id in ages]
    probs = predict_records(model, val)
    result: dict[str, object] = {
        "model_version": str(model.version),
        "adult_age": ADULT_AGE,
        "train": composition(train, ages),
        "validation": composition(val, ages),
    }
    for name, keep in (("children", lambda a: a < ADULT_AGE), ("adults", lambda a: a >= ADULT_AGE)):
        idx = [i for i, r in enumerate(val) if keep(ages[r.id])]
        subset = [val[i] for i in idx]
        sub_probs = {k: np.asarray(v)[idx] for k, v in probs.items()}
        result[f"metrics_{name}"] = score(subset, sub_probs, None) if subset else {}
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    result = measure(args.data)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k.startswith("metrics")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
