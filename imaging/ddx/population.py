"""Who the patient is, weighed against who gets each diagnosis: age and sex as prevalence.

The knowledge base says who typically has each diagnosis (`age_range`, `sex`). The ranking
already penalises an age outside the typical range by its distance and a sex-specific
diagnosis in the other sex (`rank.py`). What it did not know is the life stage: a child
(under `ADULT_AGE`) with a disease whose typical patients are all adults (`age_range`
starting at 18 or later) — breast carcinoma, aortic dissection — or an adult with a disease of
childhood. `life_stage_weights` adds, per entry, the log likelihood ratio of the patient's
life stage given the entry's class, learned on the MedPix *train* split (`population.json`,
written by `fit_population.py`, which also records why no extra sex term is added: the
measured sex ratio equals the ranking's own sex term).

`excluded(entry, age)` says when a knowledge-base recommendation (a protocol with no
executable rule) is not for this patient at all: a child and an adults-only diagnosis, or an
adult and a childhood-only one. The follow-up section then lists it as not applicable with
the patient's age, instead of advising adult imaging for a child.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

ADULT_AGE = 18
POPULATION_FILE = Path(__file__).resolve().parent.parent / "knowledge" / "population.json"
CLASSES = ("adult", "child", "any")
STAGES = ("adult", "child")


def stage(age: int | float) -> str:
    return "child" if age < ADULT_AGE else "adult"


def entry_class(age_range) -> str:
    """"adult" when every typical patient is an adult, "child" when every one is a child."""
    if not age_range:
        return "any"
    lo, hi = age_range
    if lo >= ADULT_AGE:
        return "adult"
    if hi < ADULT_AGE:
        return "child"
    return "any"


@dataclass(frozen=True)
class LifeStageTable:
    """log P(entry class | stage, true diagnosis) / P(entry class | stage, any entry)."""

    log_ratio: dict[str, dict[str, float]]

    def weight(self, age: float, cls: str) -> float:
        return float(self.log_ratio.get(stage(age), {}).get(cls, 0.0))


@lru_cache(maxsize=4)
def load_table(path: str | None = None) -> LifeStageTable | None:
    """The fitted table (None when the file is absent: no life-stage term)."""
    file = Path(path) if path else POPULATION_FILE
    if not file.is_file():
        return None
    raw = json.loads(file.read_text(encoding="utf-8"))
    table = {s: {c: float(v) for c, v in raw["log_ratio"][s].items() if c in CLASSES}
             for s in STAGES if s in raw.get("log_ratio", {})}
    return LifeStageTable(table)


def life_stage_weights(entries, age: float | None, table: LifeStageTable | None = None
                       ) -> np.ndarray:
    """Per entry, the log ratio of the patient's life stage (zeros without an age)."""
    out = np.zeros(len(entries), dtype=np.float64)
    table = table if table is not None else load_table()
    if age is None or table is None:
        return out
    for i, e in enumerate(entries):
        out[i] = table.weight(age, entry_class(getattr(e, "age_range", None)))
    return out


def excluded(age_range, age: float | None) -> bool:
    """The patient's life stage is one the diagnosis's typical patients never are."""
    if age is None:
        return False
    cls = entry_class(age_range)
    return cls != "any" and cls != stage(age)


__all__ = ["ADULT_AGE", "LifeStageTable", "entry_class", "excluded", "life_stage_weights",
           "load_table", "stage"]
