"""`radassist ingest-check DIR...`: does every file of a corpus load, or fail with a reason?

Prints a readable table (to stdout; to stderr with `--json`, so that stdout stays one JSON
document) and exits 1 if anything crashed or a compressed file differs from its
uncompressed twin beyond the stated tolerance.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

from imaging.conformance import check_corpus, format_table


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "ingest-check",
        help="check that every file of a DICOM corpus decodes or is rejected with a reason",
        description="Walk folders recursively (files with or without extension; .zst files "
        "are zstandard-compressed DICOM), ingest and decode every file, compare compressed "
        "files with their uncompressed twins, and summarise.",
    )
    parser.add_argument("paths", nargs="*", metavar="DIR", help="folder or file to check")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--pydicom-testdata",
        action="store_true",
        help="also check the test files bundled with pydicom (pydicom.data)",
    )
    parser.add_argument(
        "--details", action="store_true", help="list every rejected file with its reason"
    )
    parser.set_defaults(func=run)


def _pydicom_test_folder() -> Path:
    import pydicom.data

    return Path(pydicom.data.__file__).parent / "test_files"


@contextlib.contextmanager
def _native_stderr_silenced():
    """Silence what C decoders print straight to file descriptor 2 ("Not a JPEG file", ...).

    Every failure is already reported per file with its reason; the raw lines would only
    interleave with the progress bar, which gets a private copy of the real stderr.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    terminal = os.fdopen(os.dup(saved), "w")
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield terminal
    finally:
        terminal.flush()
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        terminal.close()


def run(args) -> int:
    paths = list(args.paths)
    if args.pydicom_testdata:
        paths.append(_pydicom_test_folder())
    if not paths:
        print("error: give at least one folder, or --pydicom-testdata", file=sys.stderr)
        return 2
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        print(f"error: not found: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2

    with _native_stderr_silenced() as terminal:

        def progress(files):
            from tqdm import tqdm

            return tqdm(
                files, unit="file", desc="ingest-check", leave=False, file=terminal, disable=None
            )

        report = check_corpus(paths, progress=progress)
    summary = report.summary()
    table = format_table(report, details=args.details)
    if args.json:
        print(json.dumps(summary, indent=2))
        print(table, file=sys.stderr)
    else:
        print(table)
    failed = summary["crashes"] or summary["equivalence_failures"]
    return 1 if failed else 0
