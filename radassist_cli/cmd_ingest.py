"""`radassist ingest PATH...`: what is in these files, as a readable tree or JSON.

The output goes to the user who owns the files, so it shows the patient ID; nothing here is
logged. `--deidentify` shows what the de-identified objects would contain instead.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from typing import Any

from pacs_bridge.ingest import ingest
from pacs_bridge.series_role import Role, SeriesRole, series_role
from pacs_bridge.study import IngestResult, IngestWarning, InstanceKind, Series, Study

MAX_DETAIL_LINES = 25  # of an SR's text in the tree view


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="read DICOM files, folders, zips, DICOMDIRs or PNG/JPEG and list the studies",
        description="Read DICOM files, folders (recursive), .zip archives, DICOMDIRs and plain "
        "PNG/JPEG images, group them into Study > Series > Instance, and list what was "
        "found, with warnings and the reason for every file that could not be read.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="file, folder, .zip or DICOMDIR")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a tree")
    parser.add_argument(
        "--deidentify",
        action="store_true",
        help="apply the DICOM PS3.15 Basic Confidentiality Profile before listing",
    )
    parser.add_argument(
        "--keep-duplicates",
        action="store_true",
        help="keep every copy of a repeated SOP Instance UID",
    )
    parser.add_argument(
        "--file-seconds",
        type=float,
        metavar="S",
        help="time budget of one file; a file over it is rejected with reason time_budget "
        "(default: RADASSIST_FILE_SECONDS, else 60; 0 turns it off)",
    )
    parser.set_defaults(func=run)


def _warning(w: IngestWarning) -> dict[str, Any]:
    return {"code": w.code, "message": w.message, "source": w.source}


def _role_and_geometry(series: Series) -> tuple[SeriesRole, tuple[str, ...]]:
    """The series' role and its geometry warnings, from headers only (nothing decoded)."""
    from imaging.pixels.stacks import series_geometry

    role = series_role(series)
    return role, (series_geometry(series) if role.role is Role.DIAGNOSTIC else ())


def _series_json(series: Series) -> dict[str, Any]:
    kinds = Counter(i.kind.value for i in series.instances)
    role, geometry = _role_and_geometry(series)
    return {
        "series_instance_uid": series.series_instance_uid,
        "series_number": series.series_number,
        "modality": series.modality,
        "description": series.description,
        "role": role.role.value,
        "role_reason": role.reason,
        "geometry_warnings": list(geometry),
        "instances": len(series.instances),
        "kinds": dict(sorted(kinds.items())),
        "non_image_objects": [
            {
                "source": i.source,
                "kind": i.kind.value,
                "sop_class_uid": i.sop_class_uid,
                "description": i.description,
            }
            for i in series.instances
            if i.kind is not InstanceKind.IMAGE
        ],
        "warnings": [_warning(w) for w in series.warnings]
        + [_warning(w) for i in series.instances for w in i.warnings],
    }


def _study_json(study: Study) -> dict[str, Any]:
    return {
        "study_instance_uid": study.study_instance_uid,
        "patient_id": study.patient_id,
        "description": study.description,
        "series": [_series_json(s) for s in study.series],
        "warnings": [_warning(w) for w in study.warnings],
    }


def result_json(result: IngestResult) -> dict[str, Any]:
    instances = sum(len(s.instances) for st in result.studies for s in st.series)
    return {
        "summary": {
            "studies": len(result.studies),
            "series": sum(len(st.series) for st in result.studies),
            "instances": instances,
            "rejected": len(result.rejections),
            "rejected_by_reason": dict(
                sorted(Counter(r.reason for r in result.rejections).items())
            ),
        },
        "studies": [_study_json(st) for st in result.studies],
        "rejections": [
            {"source": r.source, "reason": r.reason, "message": r.message}
            for r in result.rejections
        ],
        "warnings": [_warning(w) for w in result.warnings],
    }


def _indent(text: str, pad: str) -> str:
    return "\n".join(pad + line for line in text.splitlines())


def print_tree(result: IngestResult, out=None) -> None:
    # resolve stdout at call time: a default bound at import time goes stale when it is swapped
    out = out if out is not None else sys.stdout

    def p(text: str = "") -> None:
        print(text, file=out)

    for study in result.studies:
        n = sum(len(s.instances) for s in study.series)
        p(
            f"Study {study.study_instance_uid}  patient {study.patient_id or '-'}  "
            f"{study.description or '(no description)'}  [{len(study.series)} series, {n} objects]"
        )
        for w in study.warnings:
            p(f"  ! {w.code}: {w.message}")
        for series in study.series:
            kinds = Counter(i.kind.value for i in series.instances)
            kind_text = ", ".join(f"{c} {k}" for k, c in sorted(kinds.items()))
            number = series.series_number if series.series_number is not None else "-"
            role, geometry = _role_and_geometry(series)
            p(
                f"  ▸ Series {number} {series.modality or '??'}  "
                f"{series.description or '(no description)'}  [{kind_text}]  "
                f"{role.role.value}" + ("" if role.role is Role.DIAGNOSTIC else f" ({role.reason})")
            )
            for w in geometry:
                p(f"      ! {w}")
            for w in series.warnings:
                p(f"      ! {w.code}: {w.message} ({w.source})")
            codes = Counter(w.code for i in series.instances for w in i.warnings)
            for code, count in sorted(codes.items()):
                example = next(w for i in series.instances for w in i.warnings if w.code == code)
                p(f"      ! {code} ×{count}: {example.message}")
            for inst in series.instances:
                if inst.kind is InstanceKind.IMAGE:
                    continue
                first, _, rest = inst.description.partition("\n")
                p(f"      • {inst.kind.value}: {first}")
                if rest:
                    lines = rest.splitlines()
                    p(_indent("\n".join(lines[:MAX_DETAIL_LINES]), "          "))
                    if len(lines) > MAX_DETAIL_LINES:
                        more = len(lines) - MAX_DETAIL_LINES
                        p(f"          … {more} more line(s); --json shows all")
    if result.rejections:
        p(f"Rejected ({len(result.rejections)}):")
        for r in result.rejections:
            p(f"  ✗ {r.source}: {r.message} [{r.reason}]")
    by_code = Counter(w.code for w in result.warnings)
    for code, count in sorted(by_code.items()):
        if code == "duplicate_instance":  # already listed under its series
            p(f"! {count} duplicate instance(s) skipped (--keep-duplicates keeps them)")
            continue
        for w in [w for w in result.warnings if w.code == code][:MAX_DETAIL_LINES]:
            p(f"! {w.code}: {w.message}" + (f" ({w.source})" if w.source else ""))
        if count > MAX_DETAIL_LINES:
            p(f"! … {count - MAX_DETAIL_LINES} more {code} warning(s); --json lists all")
    summary = result_json(result)["summary"]
    p(
        f"{summary['studies']} studies, {summary['series']} series, "
        f"{summary['instances']} objects, {summary['rejected']} rejected"
    )


def run(args) -> int:
    if getattr(args, "file_seconds", None) is not None:
        from pacs_bridge.limits import FILE_SECONDS_ENV

        os.environ[FILE_SECONDS_ENV] = str(args.file_seconds)
    result = ingest(
        args.paths,
        deidentify=args.deidentify,
        progress=True,  # tqdm on stderr, only for more than 50 files
        keep_duplicates=args.keep_duplicates,
    )
    try:
        if args.json:
            json.dump(result_json(result), sys.stdout, indent=2, ensure_ascii=False)
            sys.stdout.write("\n")
        else:
            print_tree(result)
        sys.stdout.flush()
    except BrokenPipeError:  # output piped into `head`: not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 0
    if not result.studies and result.rejections:
        return 1
    return 0
