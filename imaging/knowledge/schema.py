"""Validation of the diagnosis files described in SCHEMA.md.

The knowledge base is hand-written JSON edited by several people at once, so every problem
is reported with the file, the entry id and the field, and all problems are collected before
raising: one run shows everything that needs fixing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from common.errors import RadAssistError

REGIONS = (
    "neuro",
    "head_neck",
    "spine",
    "chest",
    "cardiovascular",
    "abdomen",
    "genitourinary",
    "musculoskeletal",
)
MODALITIES = ("CT", "MR", "XR", "US", "NM", "PET", "MG", "FL", "ANGIO")
CATEGORIES = (
    "congenital",
    "infectious",
    "inflammatory",
    "neoplastic_benign",
    "neoplastic_malignant",
    "vascular",
    "traumatic",
    "degenerative",
    "metabolic",
    "iatrogenic",
    "other",
)
SEXES = ("any", "F", "M")
URGENCIES = ("emergent", "urgent", "soon", "routine", "none")
OBSERVATION_KINDS = ("modality", "region", "plane", "finding", "quality")

ID_RE = re.compile(r"^[a-z][a-z0-9_]*$")
CODE_RE = re.compile(r"^(modality|region|plane|finding|quality):[A-Za-z0-9_]+$")
CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")

REQUIRED_FIELDS = (
    "id",
    "names",
    "synonyms",
    "regions",
    "modalities",
    "category",
    "age_range",
    "sex",
    "history_keywords",
    "features",
    "supported_by",
    "differentials",
    "next_imaging",
    "urgency",
)
OPTIONAL_FIELDS: tuple[str, ...] = ()


class KnowledgeSchemaError(RadAssistError):
    """One or more knowledge files break the format; `problems` lists each one."""

    reason = "knowledge_schema"

    def __init__(self, source: str | None, problems: list[str]) -> None:
        self.problems = list(problems)
        shown = "\n  ".join(self.problems[:50])
        more = f"\n  ... and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
        super().__init__(source, f"{len(self.problems)} problem(s):\n  {shown}{more}")


def has_cjk(text: str) -> bool:
    """True if the text contains at least one CJK ideograph (a real Chinese string)."""
    return bool(CJK_RE.search(text))


def bilingual_problems(value: Any, where: str) -> list[str]:
    """Problems of one `{"en": ..., "zh": ...}` object (both non-empty, zh in Chinese)."""
    if not isinstance(value, Mapping):
        return [f"{where}: expected an object with 'en' and 'zh', got {type(value).__name__}"]
    problems = []
    extra = set(value) - {"en", "zh"}
    if extra:
        problems.append(f"{where}: unexpected keys {sorted(extra)}")
    for lang in ("en", "zh"):
        text = value.get(lang)
        if not isinstance(text, str) or not text.strip():
            problems.append(f"{where}.{lang}: missing or empty")
    zh = value.get("zh")
    if isinstance(zh, str) and zh.strip() and not has_cjk(zh):
        problems.append(f"{where}.zh: contains no Chinese characters: {zh!r}")
    return problems


def _string_list(value: Any, where: str, *, allowed: Iterable[str] | None = None,
                 non_empty: bool = False) -> list[str]:
    if not isinstance(value, list):
        return [f"{where}: expected a list, got {type(value).__name__}"]
    problems = []
    if non_empty and not value:
        problems.append(f"{where}: must not be empty")
    allowed_set = set(allowed) if allowed is not None else None
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            problems.append(f"{where}[{i}]: expected a non-empty string")
        elif allowed_set is not None and item not in allowed_set:
            problems.append(f"{where}[{i}]: {item!r} is not one of {sorted(allowed_set)}")
    if len(set(map(str, value))) != len(value):
        problems.append(f"{where}: duplicate items")
    return problems


def entry_problems(entry: Any, where: str, file_region: str | None = None) -> list[str]:
    """Problems of one entry, checked on its own (cross-references are checked later).

    `where` names the file; each message adds the entry id and the field.
    """
    if not isinstance(entry, Mapping):
        return [f"{where}: entry is not an object"]
    eid = entry.get("id")
    at = f"{where} [{eid if isinstance(eid, str) else '?'}]"
    problems: list[str] = []
    for key in REQUIRED_FIELDS:
        if key not in entry:
            problems.append(f"{at} {key}: missing")
    for key in set(entry) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS):
        problems.append(f"{at} {key}: unknown field")
    if problems:
        return problems

    if not isinstance(eid, str) or not ID_RE.match(eid):
        problems.append(f"{at} id: must be snake_case ([a-z][a-z0-9_]*)")
    problems += bilingual_problems(entry["names"], f"{at} names")
    problems += _string_list(entry["synonyms"], f"{at} synonyms")
    problems += _string_list(entry["regions"], f"{at} regions", allowed=REGIONS, non_empty=True)
    if file_region and isinstance(entry["regions"], list) and file_region not in entry["regions"]:
        problems.append(f"{at} regions: must include the file's region {file_region!r}")
    problems += _string_list(
        entry["modalities"], f"{at} modalities", allowed=MODALITIES, non_empty=True
    )
    if entry["category"] not in CATEGORIES:
        problems.append(f"{at} category: {entry['category']!r} is not one of {list(CATEGORIES)}")
    ages = entry["age_range"]
    if (
        not isinstance(ages, list)
        or len(ages) != 2
        or not all(isinstance(a, int) and not isinstance(a, bool) for a in ages)
        or not 0 <= ages[0] <= ages[1] <= 120
    ):
        problems.append(f"{at} age_range: expected [low, high] in whole years, 0..120")
    if entry["sex"] not in SEXES:
        problems.append(f"{at} sex: {entry['sex']!r} is not one of {list(SEXES)}")
    problems += _string_list(entry["history_keywords"], f"{at} history_keywords")
    problems += _features_problems(entry["features"], f"{at} features")
    problems += _string_list(entry["supported_by"], f"{at} supported_by")
    if isinstance(entry["supported_by"], list):
        for i, code in enumerate(entry["supported_by"]):
            if isinstance(code, str) and not CODE_RE.match(code):
                problems.append(
                    f"{at} supported_by[{i}]: {code!r} is not an observation code "
                    "like 'modality:CT' or 'finding:pneumonia'"
                )
    problems += _differentials_problems(entry["differentials"], f"{at} differentials", eid)
    problems += _next_imaging_problems(entry["next_imaging"], f"{at} next_imaging")
    if entry["urgency"] not in URGENCIES:
        problems.append(f"{at} urgency: {entry['urgency']!r} is not one of {list(URGENCIES)}")
    return problems


def _features_problems(value: Any, where: str) -> list[str]:
    if not isinstance(value, Mapping) or set(value) != {"en", "zh"}:
        return [f"{where}: expected an object with lists 'en' and 'zh'"]
    en, zh = value["en"], value["zh"]
    if not isinstance(en, list) or not isinstance(zh, list):
        return [f"{where}: 'en' and 'zh' must be lists of sentences"]
    problems = []
    if not 1 <= len(en) <= 6:
        problems.append(f"{where}.en: expected 1 to 6 sentences, got {len(en)}")
    if len(en) != len(zh):
        problems.append(f"{where}: {len(en)} English but {len(zh)} Chinese sentences")
    for i, (e, z) in enumerate(zip(en, zh, strict=False)):
        problems += bilingual_problems({"en": e, "zh": z}, f"{where}[{i}]")
    return problems


def _differentials_problems(value: Any, where: str, own_id: Any) -> list[str]:
    if not isinstance(value, list):
        return [f"{where}: expected a list"]
    problems = []
    seen = set()
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(item, Mapping) or set(item) != {"id", "discriminator"}:
            problems.append(f"{at}: expected an object with 'id' and 'discriminator'")
            continue
        if item["id"] == own_id:
            problems.append(f"{at}.id: an entry cannot be its own differential")
        if item["id"] in seen:
            problems.append(f"{at}.id: {item['id']!r} listed twice")
        seen.add(item["id"])
        problems += bilingual_problems(item["discriminator"], f"{at}.discriminator")
    return problems


NEXT_IMAGING_FIELDS = {"modality", "protocol", "timing", "urgency", "source"}


def _next_imaging_problems(value: Any, where: str) -> list[str]:
    if not isinstance(value, list):
        return [f"{where}: expected a list"]
    problems = []
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(item, Mapping):
            problems.append(f"{at}: expected an object")
            continue
        missing = NEXT_IMAGING_FIELDS - set(item)
        extra = set(item) - NEXT_IMAGING_FIELDS - {"rule"}
        if missing:
            problems.append(f"{at}: missing {sorted(missing)}")
            continue
        if extra:
            problems.append(f"{at}: unknown fields {sorted(extra)}")
        if item["modality"] not in MODALITIES:
            problems.append(f"{at}.modality: {item['modality']!r} is not one of {list(MODALITIES)}")
        problems += bilingual_problems(item["protocol"], f"{at}.protocol")
        problems += bilingual_problems(item["timing"], f"{at}.timing")
        if item["urgency"] not in URGENCIES:
            problems.append(f"{at}.urgency: {item['urgency']!r} is not one of {list(URGENCIES)}")
        if not isinstance(item["source"], str) or len(item["source"].strip()) < 3:
            problems.append(f"{at}.source: name the guideline or reference")
        if "rule" in item and (not isinstance(item["rule"], str) or not ID_RE.match(item["rule"])):
            problems.append(f"{at}.rule: expected a rule id")
    return problems


def load_entries(path: Path) -> list[dict]:
    """Read one region file; a JSON syntax error names the file, line and column."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise KnowledgeSchemaError(
            str(path), [f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"]
        ) from exc
    except OSError as exc:
        raise KnowledgeSchemaError(str(path), [f"{path}: cannot read: {exc}"]) from exc
    if not isinstance(data, list):
        raise KnowledgeSchemaError(str(path), [f"{path}: expected a JSON list of entries"])
    return data


def validate_directory(directory: Path, rule_ids: Iterable[str] | None = None) -> dict[str, list]:
    """Validate every `<region>.json` in `directory` together; return entries per region.

    Cross-file checks: ids unique across all files, every differential partner exists, and
    every `rule` names a registered guideline rule. Raises `KnowledgeSchemaError` listing
    every problem found.
    """
    directory = Path(directory)
    if rule_ids is None:
        from imaging.knowledge.guidelines import RULES

        rule_ids = RULES.keys()
    rule_set = set(rule_ids)
    problems: list[str] = []
    by_region: dict[str, list] = {}
    where_id: dict[str, str] = {}
    for path in sorted(directory.glob("*.json")):
        region = path.stem
        if region not in REGIONS:
            problems.append(f"{path.name}: file name must be a region code {list(REGIONS)}")
            continue
        try:
            entries = load_entries(path)
        except KnowledgeSchemaError as exc:
            problems += exc.problems
            continue
        by_region[region] = entries
        for entry in entries:
            problems += entry_problems(entry, path.name, region)
            eid = entry.get("id") if isinstance(entry, Mapping) else None
            if isinstance(eid, str):
                if eid in where_id:
                    problems.append(f"{path.name} [{eid}] id: duplicate (also in {where_id[eid]})")
                else:
                    where_id[eid] = path.name
    for region, entries in by_region.items():
        for entry in entries:
            if not isinstance(entry, Mapping):
                continue
            at = f"{region}.json [{entry.get('id')}]"
            for i, diff in enumerate(entry.get("differentials") or []):
                if isinstance(diff, Mapping) and diff.get("id") not in where_id:
                    problems.append(
                        f"{at} differentials[{i}].id: {diff.get('id')!r} is not an entry id"
                    )
            for i, nxt in enumerate(entry.get("next_imaging") or []):
                if isinstance(nxt, Mapping) and "rule" in nxt and nxt["rule"] not in rule_set:
                    problems.append(
                        f"{at} next_imaging[{i}].rule: {nxt['rule']!r} is not a registered rule"
                    )
    if problems:
        raise KnowledgeSchemaError(str(directory), problems)
    return by_region
