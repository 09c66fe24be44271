"""Scrub obvious identifiers from teaching-case text before it enters the library.

MedPix is already public, de-identified teaching data; this is a second line of defence
for any folder laid out like it: dates, names after titles, e-mail addresses, phone and
record numbers, URLs, and ages above 89 (a HIPAA identifier) are replaced by placeholders.
"""

from __future__ import annotations

import re

_MONTHS = (r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?")
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b"), "[email]"),
    (re.compile(r"\bhttps?://\S+|\bwww\.\S+", re.I), "[url]"),
    (re.compile(r"\b\d{1,4}[/.-]\d{1,2}[/.-]\d{2,4}\b"), "[date]"),
    (re.compile(rf"\b{_MONTHS}\s*\d{{1,2}}(?:st|nd|rd|th)?,?\s*\d{{4}}\b", re.I), "[date]"),
    (re.compile(rf"\b\d{{1,2}}\s*{_MONTHS}\s*,?\s*\d{{2,4}}\b", re.I), "[date]"),
    (re.compile(rf"\b{_MONTHS}\s*'?\d{{4}}\b", re.I), "[date]"),
    (re.compile(r"\b(?:19|20)\d{2}\b"), "[year]"),
    (re.compile(r"\(?\b\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b"), "[phone]"),
    (re.compile(r"\b(?:mrn|ssn|record|acct|account)\s*#?:?\s*\w+", re.I), "[id]"),
    (re.compile(r"\b\d{6,}\b"), "[number]"),
    (re.compile(r"\b(?:Dr|Mr|Mrs|Ms|Miss|Prof)\.?\s+[A-Z][a-zA-Z'-]+(?:\s+[A-Z][a-zA-Z'-]+)?"),
     "[name]"),
)
_AGE = re.compile(r"\b(\d{2,3})(\s*(?:-|\s)?\s*(?:y/?o|yo|y\.o\.|years?[- ]old|year|yr))", re.I)


def scrub(text: str | None) -> str:
    """The text with identifier-like patterns replaced (idempotent)."""
    out = str(text or "")
    for pattern, replacement in _PATTERNS:
        out = pattern.sub(replacement, out)
    out = _AGE.sub(lambda m: ("90+" if int(m.group(1)) > 89 else m.group(1)) + m.group(2), out)
    return " ".join(out.split())
