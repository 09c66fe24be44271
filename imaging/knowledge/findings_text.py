"""CT/MR finding labels read from MedPix text (image caption + the case's Findings).

The CT/MR finding heads need labels nobody drew: the radiologists' own words are the only
source. Each candidate finding is a regular expression over a sentence; a mention counts
unless a negation ("no", "without", "absence of", "negative for", "rather than", ...) comes
before it in the same clause, so "No mass effect or hemorrhage" labels neither. Which
candidates become heads is decided by how many *train* cases mention them (`select`),
never by validation.

Labels are noisy (a case's Findings describe all its images; a caption may name a finding
the image crops out); the heads' validation AUROC is measured against the same kind of
labels, beside a pixel baseline trained on them, so both face the same noise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# name -> pattern over lower-case text. British and American spellings both match.
CANDIDATES: dict[str, str] = {
    "mass": r"\bmass(es)?\b(?! effect)",
    "enhancement": r"\benhanc(ing|ement|es|ed)\b",
    "oedema": r"\b(o)?edema(tous)?\b",
    "cyst": r"\bcyst(s|ic)?\b",
    "calcification": r"\bcalcifi(c|ed|cation|cations)\b",
    "haemorrhage": r"\bh(a)?emorrhag\w*|\bh(a)?ematoma(s)?\b|\bbleed(ing)?\b",
    "effusion": r"\beffusion(s)?\b",
    "fracture": r"\bfractur\w*",
    "infarct": r"\binfarct\w*|\bisch(a)?emi\w*",
    "hydrocephalus": r"\bhydroceph\w*|\bventriculomegaly\b",
    "nodule": r"\bnodul(e|es|ar)\b",
    "dilatation": r"\bdilat(ed|ion|ation)\b",
    "wall_thickening": r"\bthicken(ed|ing)\b",
    "free_fluid": r"\bfluid\b",
    "air": r"\bfree air\b|\bpneumo(thorax|peritoneum|mediastinum|cephalus)\b|\bgas\b",
    "stenosis": r"\bstenos(is|es|ed)\b",
    "lymphadenopathy": r"\b(lymph)?adenopath\w*",
    "mass_effect": r"\bmass effect\b|\bmidline shift\b",
}
MIN_TRAIN_CASES = 20  # a head needs this many positive train cases to be fitted at all

_NEGATION = re.compile(
    r"\b(no|not|without|absence of|absent|negative for|free of|rather than|rule out|"
    r"ruled out|resolution of|resolved|nor|unremarkable)\b")
_CLAUSE = re.compile(r"[.;:!?\n]|\bbut\b|\bhowever\b|\balthough\b|\bwhich\b")
_COMPILED = {name: re.compile(p) for name, p in CANDIDATES.items()}


def mentions(text: str, names: Iterable[str] | None = None) -> frozenset[str]:
    """The candidate findings `text` asserts (negated mentions excluded)."""
    wanted = tuple(names) if names is not None else tuple(CANDIDATES)
    found: set[str] = set()
    for clause in _CLAUSE.split(str(text or "").lower()):
        if not clause.strip():
            continue
        for name in wanted:
            for m in _COMPILED[name].finditer(clause):
                if not _NEGATION.search(clause[: m.start()]):
                    found.add(name)
                    break
    return frozenset(found)


@dataclass(frozen=True)
class LabelledImage:
    image_id: str
    case_id: str
    split: str
    modality: str
    findings: frozenset[str]


def image_labels(records, cases_findings: dict[str, str]) -> list[LabelledImage]:
    """One label set per MedPix image: its caption plus its case's Findings text."""
    out = []
    for r in records:
        text = f"{r.caption} . {cases_findings.get(r.group, '')}"
        out.append(LabelledImage(r.id, r.group, r.split, r.modality, mentions(text)))
    return out


def select(labels: list[LabelledImage], min_cases: int = MIN_TRAIN_CASES) -> tuple[str, ...]:
    """Candidates mentioned in at least `min_cases` train cases, most frequent first."""
    cases: dict[str, set[str]] = {}
    for item in labels:
        if item.split == "train":
            for name in item.findings:
                cases.setdefault(name, set()).add(item.case_id)
    kept = [(len(c), name) for name, c in cases.items() if len(c) >= min_cases]
    return tuple(name for _, name in sorted(kept, key=lambda x: (-x[0], x[1])))
