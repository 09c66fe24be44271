"""Types shared by every executable guideline rule.

A rule never guesses: when its published scope excludes the patient or the examination it
returns `applies=False` with the reason in both languages, so the note can list the rules
that were considered and why they did not apply.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common.text import Text as Bilingual

URGENCIES = ("emergent", "urgent", "soon", "routine", "none")


@dataclass(frozen=True)
class PatientContext:
    """What a rule needs to know about the patient and the examination.

    `risk` is the Fleischner clinical risk ("low" | "high" | None = not stated);
    `modality` is the examination the finding was seen on ("CT", "XR", "MR", "US", ...).
    """

    age: int | None = None
    sex: str | None = None  # "F" | "M" | None
    risk: str | None = None
    known_cancer: bool = False
    immunocompromised: bool = False
    screening: bool = False  # a lung cancer screening low-dose CT
    modality: str = "CT"
    smoker: bool | None = None
    postmenopausal: bool | None = None

    def __post_init__(self) -> None:
        if self.risk not in (None, "low", "high"):
            raise ValueError(f"risk must be 'low', 'high' or None, got {self.risk!r}")

    @classmethod
    def from_clinical(cls, context: Any, modality: str = "CT") -> PatientContext:
        """Derive the rule inputs from a `ClinicalContext` (age, sex, free-text history).

        The keyword reading is conservative: it only sets a flag when the history says so.
        Smoking sets Fleischner risk to high; otherwise risk stays unknown.
        """
        history = (getattr(context, "history", "") or "").lower()
        smoker = None
        if re.search(r"\b(non-?smoker|never smoked|never-smoker)\b", history):
            smoker = False
        elif re.search(r"\b(smok\w*|pack[- ]?years?|tobacco|cigarettes?)\b", history):
            smoker = True
        own_history = re.sub(r"\bfamily (history|hx)\b[^.;]*", " ", history)
        known_cancer = bool(
            re.search(
                r"\b(known|history of|metastatic|treated)\b[^.]{0,40}"
                r"\b(cancer|carcinoma|malignan\w*|lymphoma|melanoma|sarcoma)",
                own_history,
            )
        )
        immuno = bool(
            re.search(
                r"\b(hiv|aids|immunosuppress\w*|immunocompromis\w*|transplant\w*|"
                r"chemotherapy|neutropeni\w*)\b",
                history,
            )
        )
        screening = bool(re.search(r"\b(lung cancer screening|ldct|low[- ]dose ct)\b", history))
        post = None
        if re.search(r"\bpost-?menopaus\w*", history):
            post = True
        elif re.search(r"\bpre-?menopaus\w*", history):
            post = False
        return cls(
            age=getattr(context, "age", None),
            sex=getattr(context, "sex", None),
            risk="high" if smoker else None,
            known_cancer=known_cancer,
            immunocompromised=immuno,
            screening=screening,
            modality=modality,
            smoker=smoker,
            postmenopausal=post,
        )


@dataclass(frozen=True)
class RuleResult:
    """The outcome of one rule for one finding.

    `category` carries a classification when the guideline defines one (e.g. Lung-RADS
    "4A", Bosniak "IIF"); `note` adds a caveat that does not change the recommendation.
    """

    rule_id: str
    applies: bool
    recommendation: Bilingual | None
    not_applicable_reason: Bilingual | None
    urgency: str
    citation: str
    category: str | None = None
    note: Bilingual | None = None

    def __post_init__(self) -> None:
        if self.urgency not in URGENCIES:
            raise ValueError(f"urgency {self.urgency!r} not in {URGENCIES}")
        if self.applies and self.recommendation is None:
            raise ValueError(f"{self.rule_id}: an applicable result needs a recommendation")
        if not self.applies and self.not_applicable_reason is None:
            raise ValueError(f"{self.rule_id}: a non-applicable result needs a reason")

    def bilinguals(self) -> tuple[Bilingual, ...]:
        """Every user-visible string of this result (for the bilingual completeness test)."""
        return tuple(
            b for b in (self.recommendation, self.not_applicable_reason, self.note) if b
        )


@dataclass(frozen=True)
class Exclusion:
    """Why a guideline's population leaves the patient out: `kind` is "age_below" (the
    guideline starts at `bound` years), "age_above" (ends at `bound`) or "sex" (`bound` is
    the sex it covers); `age` / `sex` are the patient's. The note words it."""

    kind: str
    bound: int | str
    age: int | None = None
    sex: str | None = None


@dataclass(frozen=True)
class Population:
    """Who a guideline was written for, as the guideline states it (None / (): anyone)."""

    min_age: int | None = None
    max_age: int | None = None
    sexes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if any(s not in ("F", "M") for s in self.sexes):
            raise ValueError(f'Argument "sexes" must hold "F" / "M", got {self.sexes!r}')

    def exclusion(self, age: int | None, sex: str | None) -> Exclusion | None:
        """Why the patient is outside this population; None when inside or not known."""
        if age is not None and self.min_age is not None and age < self.min_age:
            return Exclusion("age_below", self.min_age, age, sex)
        if age is not None and self.max_age is not None and age > self.max_age:
            return Exclusion("age_above", self.max_age, age, sex)
        if sex in ("F", "M") and self.sexes and sex not in self.sexes:
            return Exclusion("sex", self.sexes[0], age, sex)
        return None


ANYONE = Population()
ADULTS = Population(min_age=18)


@dataclass(frozen=True)
class Rule:
    """A registered guideline: `evaluate(finding, patient) -> RuleResult`.

    The finding type is rule-specific (e.g. `NoduleFinding` for Fleischner); `finding_type`
    names it so callers can build the right input. `population` is who the guideline covers;
    the follow-up section checks it before the rule runs, so a patient it excludes is told
    so with the age ("not applicable: patient is 3 years old"), whatever finding is asked.
    """

    id: str
    name: Bilingual
    citation: str
    finding_type: type
    evaluate: Callable[[Any, PatientContext], RuleResult]
    population: Population = ANYONE


def not_applicable(rule_id: str, citation: str, en: str, zh: str) -> RuleResult:
    return RuleResult(
        rule_id=rule_id,
        applies=False,
        recommendation=None,
        not_applicable_reason=Bilingual(en, zh),
        urgency="none",
        citation=citation,
    )


def round_mm(size_mm: float) -> int:
    """Round half up to a whole millimetre, as Fleischner 2017 asks (not banker's rounding)."""
    return int(size_mm + 0.5)
