"""Common clinical-history abbreviations, expanded before history matching.

Histories are written tersely ("18yo c/o RLQ pain", "h/o HTN, DM"); the knowledge base
spells its keywords out. Expansion keeps the original token and appends the long form, so
both match. Only unambiguous, widely used abbreviations are listed.
"""

from __future__ import annotations

import re

ABBREVIATIONS: dict[str, str] = {
    "rlq": "right lower quadrant", "llq": "left lower quadrant",
    "ruq": "right upper quadrant", "luq": "left upper quadrant",
    "sob": "shortness of breath", "doe": "dyspnea on exertion", "cp": "chest pain",
    "htn": "hypertension", "dm": "diabetes mellitus", "cad": "coronary artery disease",
    "chf": "congestive heart failure", "copd": "chronic obstructive pulmonary disease",
    "afib": "atrial fibrillation", "a-fib": "atrial fibrillation",
    "mi": "myocardial infarction", "cva": "stroke", "tia": "transient ischemic attack",
    "loc": "loss of consciousness", "ams": "altered mental status",
    "n/v": "nausea vomiting", "abd": "abdominal", "uti": "urinary tract infection",
    "uri": "upper respiratory infection", "gi": "gastrointestinal", "gu": "genitourinary",
    "bph": "benign prostatic hyperplasia", "psa": "prostate specific antigen",
    "hiv": "human immunodeficiency virus", "tb": "tuberculosis",
    "mva": "motor vehicle accident", "mvc": "motor vehicle collision", "fx": "fracture",
    "etoh": "alcohol", "ivdu": "intravenous drug use", "lfts": "liver function tests",
    "wbc": "white blood cell", "esrd": "end stage renal disease", "ckd": "chronic kidney disease",
    "sah": "subarachnoid hemorrhage", "dvt": "deep vein thrombosis",

}
_TOKEN = re.compile(r"(?<![\w/-])(" + "|".join(
    re.escape(k) for k in sorted(ABBREVIATIONS, key=len, reverse=True)) + r")(?![\w/-])", re.I)


def expand(text: str) -> str:
    """The text with each known abbreviation followed by its long form in parentheses."""
    return _TOKEN.sub(lambda m: f"{m.group(0)} ({ABBREVIATIONS[m.group(0).lower()]})", text)
