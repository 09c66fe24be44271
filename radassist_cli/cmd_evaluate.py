"""`radassist evaluate --data DIR --split val|test [--train-data DIR] --out metrics.json`:
the model and its baselines (fitted on --train-data's train split) on one split."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common.errors import RadAssistError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="metrics with 95%% bootstrap CIs for the model and baselines")
    p.add_argument("--data", type=Path, required=True, help="folder laid out like the dev data")
    p.add_argument("--split", default="val", help="split to evaluate (val, test, ...)")
    p.add_argument("--library", type=Path, default=None,
                   help="case library data folder for the ddx task (default: --data)")
    p.add_argument("--train-data", type=Path, default=None,
                   help="folder whose train split the baselines are fitted on, scored on --split "
                        "(default: --library, then --data); needed for a test-only folder")
    p.add_argument("--out", type=Path, default=Path("metrics.json"),
                   help="metrics JSON to write (default metrics.json; a .md table beside it)")
    p.add_argument("--predictions", type=Path, default=None,
                   help="JSON lines: one per image (classify), one per case and history "
                        "setting (ddx); format in the README")
    p.add_argument("--task", choices=("classify", "ddx", "all", "studies"), default="all",
                   help="studies: DIR holds real study folders and a labels.csv "
                        "(as dicom/studies in the dev data); scored series by series")
    p.add_argument("--weights", type=Path, default=None, help="weights bundle (default weights/)")
    p.add_argument("--no-baselines", action="store_true")
    p.add_argument("--limit", type=int, default=None,
                   help="only N images per dataset and modality (quick checks)")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    if args.task == "studies":
        return _studies(args)
    from imaging.evaluation.run import evaluate, markdown_table

    for folder in (args.data, args.train_data, args.library):
        if folder is not None and not folder.is_dir():
            raise RadAssistError(str(folder), "data folder not found", reason="no_data")
    model = None
    if args.task in ("classify", "ddx", "all"):
        from imaging.model import get_model

        model = get_model(args.weights)
    fh = args.predictions.open("w") if args.predictions else None
    try:
        result = evaluate(args.data, args.split, model=model, task=args.task,
                          library_dir=args.library, train_dir=args.train_data, predictions_fh=fh,
                          baselines=not args.no_baselines, limit=args.limit,
                          log=lambda m: print(m, file=sys.stderr))
    except ValueError as exc:
        raise RadAssistError(str(args.data), str(exc), reason="evaluation") from exc
    finally:
        if fh is not None:
            fh.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    table = markdown_table(result)
    args.out.with_suffix(".md").write_text(table + "\n")
    print(table)
    print(f"metrics written to {args.out} (table: {args.out.with_suffix('.md')})")
    return 0


def _studies(args: argparse.Namespace) -> int:
    from imaging.evaluation.studies import as_json, evaluate_studies, studies_table

    if not args.data.is_dir():
        raise RadAssistError(str(args.data), "data folder not found", reason="no_data")
    try:
        result = evaluate_studies(args.data, log=lambda m: print(m, file=sys.stderr))
    except ValueError as exc:
        raise RadAssistError(str(args.data), str(exc), reason="evaluation") from exc
    table = studies_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(as_json(result), indent=2) + "\n")
    args.out.with_suffix(".md").write_text(table + "\n")
    print(table)
    print(f"metrics written to {args.out} (table: {args.out.with_suffix('.md')})")
    return 0 if not result.crashes else 1
