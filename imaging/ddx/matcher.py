"""Does a free-text diagnosis (a MedPix `Case Diagnosis`, a human differential line) name
the same disease as a differential item?

Used by the ddx evaluation, so its rules are explicit and tested (tests/test_ddx_matcher.py):

1. Split the text into parts: lines, bullets, numbered items, ";" and "," and parenthesised
   asides each become a separate part ("Angiomyolipoma (sporadic), Cholelithiasis" ->
   "Angiomyolipoma", "sporadic", "Cholelithiasis"). A match on any part counts: MedPix
   diagnoses often list a primary disease and its complication.
2. Normalise each part and each name: lower case, accents removed, British spellings mapped
   to American ("ischaemic" -> "ischemic", "tumour" -> "tumor"), punctuation dropped, words
   that never change the disease dropped (articles, "left", "right", "bilateral",
   "confirmed", "pathology", ...), then every word reduced to a crude stem so that
   "embolus"/"embolism", "metastases"/"metastasis", "infarct"/"infarction" agree.
3. Generic words ("mass", "lesion", "tumor", "benign", "acute", ...) never decide a match.
   A name matches a part when they have the same stems, or when both keep specific stems
   and the name's specific stems all occur in the part (containment: "Posterior cerebral
   artery infarction" contains "cerebral infarction"; "Bronchial carcinoid" contains
   "carcinoid tumor"), or the part's all occur in the name and make up at least half of
   its specific stems, and only for the text's first (main) part ("Granuloma" matches
   "Pulmonary granuloma"; "Large-cell" does not match "Diffuse large B-cell lymphoma";
   "Fibrous dysplasia" does not match "Cystic fibrosis"; in "Breast implant, rupture" the
   second part "rupture" does not match "ACL rupture"). "Disease" and "syndrome" are not
   generic: "Celiac artery aneurysm" is not "Celiac disease". "Mass" alone matches nothing
   but "mass".
4. An entry matches when its English name or any of its synonyms (from the knowledge base)
   matches. Synonyms carry abbreviations ("GBM", "PE"); a name of one or two letters only
   matches a part that is exactly that abbreviation.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

_BRITISH = (
    ("haem", "hem"), ("aem", "em"), ("oedem", "edem"), ("oesophag", "esophag"),
    ("tumour", "tumor"), ("oestr", "estr"), ("paediatr", "pediatr"), ("foetal", "fetal"),
    ("ischaem", "ischem"), ("leukaem", "leukem"), ("anaem", "anem"), ("orthopaed", "orthoped"),
    ("fibre", "fiber"), ("centre", "center"), ("calcaneal", "calcaneus"),
)
_STOP = frozenset(
    "a an the of with and or in on to at by for from due secondary associated likely probable "
    "possible consistent confirmed pathology proven left right bilateral unilateral type "
    "status post s p case diagnosis finding findings versus vs see".split()
)
_GENERIC = frozenset(
    "mass lesion abnormality tumor tumour process change changes cell cells acute chronic "
    "benign malignant primary small large focal diffuse".split()
)
_SUFFIXES = ("ations", "ation", "isms", "ism", "ities", "ity", "ies", "es", "is", "us", "um", "ic",
             "al", "a", "i", "s", "e", "y", "ion")


def _stem(word: str) -> str:
    """Strip inflection suffixes until none applies (keeps at least four letters)."""
    for _ in range(3):
        for suffix in _SUFFIXES:
            if len(word) - len(suffix) >= 4 and word.endswith(suffix):
                word = word[: -len(suffix)]
                break
        else:
            break
    return word


def normalise(text: str) -> str:
    """Lower case, ASCII, American spelling, single spaces, punctuation removed."""
    text = text.replace("æ", "ae").replace("Æ", "AE").replace("œ", "oe").replace("Œ", "OE")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    text = text.replace("'s ", " ").replace("’s ", " ")
    for british, american in _BRITISH:
        text = text.replace(british, american)
    text = re.sub(r"[^a-z0-9]+", " ", text)
    return " ".join(text.split())


@lru_cache(maxsize=65536)
def stems(text: str) -> frozenset[str]:
    """The meaningful stems of one phrase (rule 2)."""
    words = [w for w in normalise(text).split()
             if w not in _STOP and not w.isdigit() and len(w) > 1]
    return frozenset(_stem(w) for w in words)


_GENERIC_STEMS = frozenset(_stem(w) for w in _GENERIC)


@lru_cache(maxsize=65536)
def split_parts(text: str) -> tuple[str, ...]:
    """Rule 1: the separate statements inside one free-text diagnosis or differential."""
    asides = re.findall(r"\(([^()]*)\)", text)
    main = re.sub(r"\([^()]*\)", " ", text)
    separators = r"[\n;,•\u2022·]|\s\d+[.)]\s|^\d+[.)]\s|\s-\s|/"
    pieces = re.split(separators, main + " ; " + " ; ".join(asides))
    parts = []
    for piece in pieces:
        piece = re.sub(r"^\s*(\d+[.)]|[-*])\s*", "", piece).strip(" .:-\t")
        if piece and stems(piece):
            parts.append(piece)
    return tuple(dict.fromkeys(parts))


@lru_cache(maxsize=65536)
def _abbreviation(name: str) -> str | None:
    """The compact form of a name that is an abbreviation ("PE", "GBM"), else None."""
    compact = normalise(name).replace(" ", "")
    if len(compact) <= 2 or (name.isupper() and len(compact) <= 5):
        return compact
    return None


@lru_cache(maxsize=65536)
def _compact(text: str) -> str:
    return normalise(text).replace(" ", "")


@lru_cache(maxsize=262144)
def name_matches_part(name: str, part: str, first: bool = True) -> bool:
    """Rule 3 (and the abbreviation case of rule 4) for one name and one part; `first`: the
    part is the text's first (main) statement, the only one allowed to be shorter."""
    abbreviation = _abbreviation(name)
    if abbreviation is not None:
        return _compact(part) == abbreviation
    name_stems, part_stems = stems(name), stems(part)
    if not name_stems or not part_stems:
        return False
    if name_stems == part_stems:
        return True
    # generic words ("tumor", "benign") never decide a match: compare the specific stems
    name_specific, part_specific = name_stems - _GENERIC_STEMS, part_stems - _GENERIC_STEMS
    if not name_specific or not part_specific:
        return False
    if name_specific <= part_specific:
        return True
    # the part names less than the name ("Granuloma" vs "Pulmonary granuloma"): only when it
    # carries at least half of the name's specific words ("cell" is not a lymphoma)
    return (first and part_specific <= name_specific
            and 2 * len(part_specific) >= len(name_specific))


def matches(text: str, names: Iterable[str]) -> bool:
    """Rule 4: does any name (an entry's name and synonyms) match any part of `text`?"""
    parts = split_parts(text)
    return any(name_matches_part(n, p, k == 0) for n in names if n
               for k, p in enumerate(parts))


def overlap(human_differential: str, names_of_items: list[Iterable[str]]) -> tuple[int, int]:
    """(how many of the human list's items one of ours matches, length of the human list)."""
    parts = split_parts(human_differential)
    pools = [tuple(names) for names in names_of_items]
    hit = sum(1 for part in parts if any(
        name_matches_part(n, part) for names in pools for n in names if n))
    return hit, len(parts)


class NameIndex:
    """Which of many items (each a tuple of names) match a text — same rules as `matches`.

    A name can only match a part it shares a stem with (or, for an abbreviation, equals),
    so candidates come from an inverted index of stems and only they are checked: matching
    one diagnosis against hundreds of entries costs microseconds, not milliseconds.
    """

    def __init__(self, names_per_item: Iterable[Iterable[str]]) -> None:
        self.items = [tuple(n for n in names if n) for names in names_per_item]
        self.by_stem: dict[str, set[int]] = {}
        self.by_abbreviation: dict[str, set[int]] = {}
        for i, names in enumerate(self.items):
            for name in names:
                abbreviation = _abbreviation(name)
                if abbreviation is not None:
                    self.by_abbreviation.setdefault(abbreviation, set()).add(i)
                else:
                    for stem in stems(name):
                        self.by_stem.setdefault(stem, set()).add(i)

    def matching(self, text: str) -> set[int]:
        found: set[int] = set()
        for k, part in enumerate(split_parts(text)):
            found |= self.by_abbreviation.get(_compact(part), set())
            candidates: set[int] = set()
            for stem in stems(part):
                candidates |= self.by_stem.get(stem, set())
            for i in candidates - found:
                if any(name_matches_part(n, part, k == 0) for n in self.items[i]):
                    found.add(i)
        return found
