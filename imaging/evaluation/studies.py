"""`radassist evaluate --task studies`: real studies scored series by series, as delivered.

DIR holds one folder per study and a `labels.csv` (study, folder, series_instance_uid,
role, modality, region, plane, ...), as `dicom/studies` in the dev data. Each study goes
through the same calls a user's does — `ingest` of the folder, `analyze`, `compose` — and
the note's `series` list is scored against the labels:

- diagnostic series: right when role, modality, region and plane all match;
- localizers and derived screens: kept out when the note does not diagnose them;
- phantoms: out of distribution, with no region and no plane;
- studies without a diagnostic series must get no differential;
- a crash is any exception escaping those calls for one study (the others still run).
"""

from __future__ import annotations

import csv
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

LABEL_MODALITY = {"CR": "XR", "DX": "XR", "XR": "XR", "CT": "CT", "MR": "MR"}


@dataclass(frozen=True)
class SeriesScore:
    study: str
    folder: str
    series_instance_uid: str
    role: str  # labelled
    expected: str  # "MR head sagittal", "localizer", ...
    predicted: str
    right: bool
    detail: str = ""


@dataclass
class StudiesResult:
    rows: list[SeriesScore] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)
    ddx_without_diagnostic: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def totals(self) -> dict[str, tuple[int, int]]:
        """(right, of) per group, the numbers the issue's acceptance names."""
        groups = {"diagnostic series right on modality, region and plane": ("diagnostic",),
                  "localizers and derived screens kept out": ("localizer", "derived"),
                  "phantom series out of distribution, no region or plane": ("phantom",)}
        out = {}
        for name, roles in groups.items():
            rows = [r for r in self.rows if r.role in roles]
            out[name] = (sum(r.right for r in rows), len(rows))
        return out


def labels_file(data: Path) -> Path:
    """DIR/labels.csv, or the dev layout's DIR/dicom/studies/labels.csv."""
    for candidate in (data / "labels.csv", data / "dicom" / "studies" / "labels.csv"):
        if candidate.is_file():
            return candidate
    raise ValueError(f"no labels.csv in {data} (nor in {data / 'dicom' / 'studies'})")


def _expected(row: dict) -> str:
    if row["role"] == "diagnostic":
        return " ".join(v for v in (row["modality"], row["region"], row["plane"]) if v)
    return row["role"]


def _predicted(item) -> str:
    if item is None:
        return "missing"
    if item.role != "diagnostic":
        return item.role
    if item.out_of_distribution:
        return f"{item.modality} out of distribution"
    return " ".join(v for v in (item.modality, item.region, item.plane) if v)


def _right(row: dict, item) -> bool:
    role = row["role"]
    if item is None:
        return False
    if role == "diagnostic":
        return (item.role == "diagnostic" and not item.out_of_distribution
                and item.modality == LABEL_MODALITY.get(row["modality"], row["modality"])
                and item.region == (row["region"] or None)
                and item.plane == (row["plane"] or None))
    if role in ("localizer", "derived"):
        return item.role != "diagnostic" or item.out_of_distribution
    if role == "phantom":
        return item.out_of_distribution and item.region is None and item.plane is None
    return item.role == role


def evaluate_studies(data: Path, log: Callable[[str], None] = print) -> StudiesResult:
    """Score every study folder named in the labels (see the module docstring)."""
    from tqdm import tqdm

    from imaging.pipeline import analyze_and_compose
    from pacs_bridge.ingest import ingest

    path = labels_file(data)
    root = path.parent
    by_study: dict[str, list[dict]] = defaultdict(list)
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            by_study[row["study"]].append(row)
    result = StudiesResult()
    for study in tqdm(sorted(by_study), desc="studies", unit="study"):
        rows = by_study[study]
        start = time.perf_counter()
        items = {}
        differential = ()
        try:
            ingested = ingest([root / study])
            for found in ingested.studies:
                _, note = analyze_and_compose(found)
                items.update({s.series_instance_uid: s for s in note.series})
                differential = differential + note.differential
        except Exception as exc:  # noqa: BLE001 - a crash is counted, the run goes on
            result.crashes.append(f"{study}: {type(exc).__name__}: {exc}")
            log(f"crash in {study}: {type(exc).__name__}: {exc}")
        result.seconds[study] = time.perf_counter() - start
        for row in rows:
            item = items.get(row["series_instance_uid"])
            result.rows.append(SeriesScore(
                study=study, folder=row["folder"], series_instance_uid=row["series_instance_uid"],
                role=row["role"], expected=_expected(row), predicted=_predicted(item),
                right=_right(row, item),
                detail="" if item is None else "; ".join(
                    w.split(":", 1)[0] for w in item.warnings)))
        if not any(r["role"] == "diagnostic" for r in rows) and differential:
            result.ddx_without_diagnostic.append(study)
    return result


def studies_table(result: StudiesResult) -> str:
    """The per-series table, then the totals, as Markdown."""
    lines = ["| study | series | role | expected | predicted | right |",
             "|---|---|---|---|---|---|"]
    for r in result.rows:
        lines.append(f"| {r.study} | {r.folder} | {r.role} | {r.expected} | {r.predicted} | "
                     f"{'yes' if r.right else '**no**'} |")
    lines += ["", "| total | measured |", "|---|---|"]
    for name, (right, of) in result.totals().items():
        lines.append(f"| {name} | {right}/{of} |")
    n_no_diag = len({r.study for r in result.rows} - {r.study for r in result.rows
                                                      if r.role == "diagnostic"})
    lines.append(f"| studies with no diagnostic series given a differential | "
                 f"{len(result.ddx_without_diagnostic)} of {n_no_diag} |")
    lines.append(f"| crashes | {len(result.crashes)} |")
    seconds = sorted(result.seconds.values())
    if seconds:
        median = seconds[len(seconds) // 2]
        lines.append(f"| seconds per study (median, max) | {median:.1f}, {seconds[-1]:.1f} |")
    return "\n".join(lines)


def as_json(result: StudiesResult) -> dict:
    return {
        "series": [r.__dict__ for r in result.rows],
        "totals": {k: {"right": v[0], "of": v[1]} for k, v in result.totals().items()},
        "ddx_without_diagnostic": result.ddx_without_diagnostic,
        "crashes": result.crashes,
        "seconds_per_study": result.seconds,
    }
