"""`radassist analyze PATH`: ingest, analyse, print the draft note; optionally write SR/SC.

The study is read and analysed in a child process (`common.isolation`). If that child dies
— a native decoder's abort or segfault, the OOM killer — the images are decoded one by one
in another child that notes each file before decoding it, so the file that killed it is
known; such files are reported as skipped ("decoder_crashed", with the signal) and the
study is analysed again without them. A second death is one readable error, never exit 134.
"""

from __future__ import annotations

import argparse
import io
import sys
from dataclasses import dataclass
from pathlib import Path

from common.catalog import languages
from common.errors import IngestError, RadAssistError, WorkerCrashError

MAX_CRASHING_FILES = 20  # a study whose every file kills a decoder is not worth more tries


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


@dataclass(frozen=True)
class Output:
    """What the child hands back: text to print, the SR/SC as file bytes, what was skipped."""

    text: str
    objects: tuple[bytes, ...]
    skipped: tuple[tuple[str, str, str], ...]  # (source, message, reason)
    notes: tuple[str, ...]


def _study(path: str, exclude: frozenset[str]):
    """(first study without the excluded files, ingest's rejections, how many studies)."""
    from pacs_bridge.ingest import group, ingest

    result = ingest([Path(path)])
    if not result.studies:
        why = ""
        if result.rejections:
            first = result.rejections[0]
            why = (f" ({len(result.rejections)} file(s) skipped; {first.source}: "
                   f"{first.message} [{first.reason}])")
        raise IngestError(path, f"no readable study found{why}", reason="no_study")
    studies = result.studies
    if exclude:
        kept = [i for st in studies for s in st.series for i in s.instances
                if i.source not in exclude]
        studies = tuple(group(kept))
        if not studies:
            raise IngestError(path, "no readable study left once the files that crashed the "
                              "decoder are set aside", reason="no_study")
    return studies[0], result.rejections, len(studies)


def analyse_path(path: str, context, fmt: str, lang: str, want_objects: bool,
                 exclude: frozenset[str]) -> Output:
    """In the child: ingest, analyse, compose, render; SR/SC as bytes."""
    from imaging.notes import to_json, to_markdown
    from imaging.pipeline import analyze_and_compose, dicom_objects

    study, rejections, n = _study(path, exclude)
    notes = ()
    if n > 1:
        notes = (f"note: {n} studies found; analysing the first ({study.study_instance_uid})",)
    analysis, note = analyze_and_compose(study, context)
    text = to_json(note) if fmt == "json" else to_markdown(note, lang)
    objects: tuple[bytes, ...] = ()
    if want_objects:
        out = []
        for ds in dicom_objects(study, analysis, note):
            buf = io.BytesIO()
            ds.save_as(buf, enforce_file_format=True)
            out.append(buf.getvalue())
        objects = tuple(out)
    return Output(text, objects, tuple((r.source, r.message, r.reason) for r in rejections),
                  notes)


def decode_each(path: str, exclude: frozenset[str], marker: str) -> None:
    """In the screening child: decode every image, writing its source to `marker` first."""
    from imaging.pixels import decode_frames
    from pacs_bridge.transfer_syntaxes import has_pixel_data

    study, _, _ = _study(path, exclude)
    for series in study.series:
        for inst in series.instances:
            if inst.dataset is None or not has_pixel_data(inst.dataset):
                continue
            with open(marker, "w") as fh:
                fh.write(inst.source)
            try:
                decode_frames(inst)
            except RadAssistError:
                pass  # refused with a reason: the analysis reports it
    Path(marker).write_text("")


def run_isolated(path: str, context, fmt: str, lang: str, want_objects: bool, *,
                 analyse=analyse_path, screen=decode_each) -> Output:
    """`analyse` in a child; if it dies, `screen` finds the files that kill a decoder and
    `analyse` runs once more without them (both module-level: the children import them)."""
    from common.isolation import Isolated, crashing_items

    crashed: dict[str, str] = {}
    for attempt in (1, 2):
        child = Isolated("analysis")
        try:
            out = child.call(analyse, path, context, fmt, lang, want_objects,
                             frozenset(crashed), source=path)
            skipped = tuple((source, f"decoding it killed the process ({why})",
                             "decoder_crashed") for source, why in crashed.items())
            return Output(out.text, out.objects, out.skipped + skipped, out.notes)
        except WorkerCrashError as exc:
            if attempt == 2 or exc.reason == "start_failed":
                raise
            crashed, failure = crashing_items(screen, path, limit=MAX_CRASHING_FILES)
            if not crashed:  # not a file's fault (e.g. out of memory): say what happened
                raise (failure or exc) from None
        finally:
            child.close()
    raise AssertionError("unreachable")


def handle(args: argparse.Namespace) -> int:
    from pydicom import dcmread

    from imaging.types import ClinicalContext

    if args.age is not None and not 0 <= args.age <= 130:
        raise RadAssistError(None, f"--age {args.age} is not a plausible age", reason="usage")
    if not args.path.exists():
        raise IngestError(str(args.path), "no such file or folder", reason="not_found")
    context = ClinicalContext(age=args.age, sex=args.sex, history=args.history, lang=args.lang)
    out = run_isolated(str(args.path), context, args.format, args.lang,
                       bool(args.sr or args.sc))
    for source, message, reason in out.skipped:
        print(f"skipped {source}: {message} [{reason}]", file=sys.stderr)
    for line in out.notes:
        print(line, file=sys.stderr)
    sys.stdout.write(out.text)
    if args.sr or args.sc:
        objects = [dcmread(io.BytesIO(data)) for data in out.objects]
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
