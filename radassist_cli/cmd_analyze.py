"""`radassist analyze PATH`: ingest, analyse, print the draft note; optionally write SR/SC."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.catalog import languages
from common.errors import IngestError, RadAssistError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "analyze", help="analyse a study (file, folder, zip, DICOMDIR, PNG/JPEG) and print a note",
        description="Analyse one study and print the AI draft note (not reviewed by a physician).")
    p.add_argument("path", type=Path, help="any ingestable input")
    p.add_argument("--age", type=int, default=None)
    p.add_argument("--sex", choices=("F", "M"), default=None)
    p.add_argument("--history", default="", help="clinical history or indication text")
    p.add_argument("--lang", choices=languages(), default="en",
                   help="note language: English, or any with a catalogue (common/locale)")
    p.add_argument("--format", choices=("md", "json"), default="md")
    p.add_argument("--sr", type=Path, default=None, help="write the DICOM SR here")
    p.add_argument("--sc", type=Path, default=None, help="write the secondary capture here")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from imaging.notes import to_json, to_markdown
    from imaging.pipeline import analyze_and_compose, dicom_objects
    from imaging.types import ClinicalContext
    from pacs_bridge.ingest import ingest

    if args.age is not None and not 0 <= args.age <= 130:
        raise RadAssistError(None, f"--age {args.age} is not a plausible age", reason="usage")
    if not args.path.exists():
        raise IngestError(str(args.path), "no such file or folder", reason="not_found")
    result = ingest([args.path])
    for rejection in result.rejections:
        print(f"skipped {rejection.source}: {rejection.message} [{rejection.reason}]",
              file=sys.stderr)
    if not result.studies:
        raise IngestError(str(args.path), "no readable study found", reason="no_study")
    if len(result.studies) > 1:
        print(f"note: {len(result.studies)} studies found; analysing the first "
              f"({result.studies[0].study_instance_uid})", file=sys.stderr)
    study = result.studies[0]
    context = ClinicalContext(age=args.age, sex=args.sex, history=args.history, lang=args.lang)
    analysis, note = analyze_and_compose(study, context)
    sys.stdout.write(to_json(note) if args.format == "json" else to_markdown(note, args.lang))
    if args.sr or args.sc:
        objects = dicom_objects(study, analysis, note)
        if args.sr:
            objects[0].save_as(args.sr, enforce_file_format=True)
            print(f"wrote SR {args.sr}", file=sys.stderr)
        if args.sc:
            if len(objects) < 2:
                print("no key image: secondary capture not written", file=sys.stderr)
            else:
                objects[1].save_as(args.sc, enforce_file_format=True)
                print(f"wrote SC {args.sc}", file=sys.stderr)
    return 0
