"""`radassist cases build|search`: the de-identified teaching-case library."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common.errors import RadAssistError


def register(subparsers) -> None:
    p = subparsers.add_parser("cases", help="build or search the teaching-case library")
    sub = p.add_subparsers(dest="cases_command", metavar="ACTION")
    b = sub.add_parser("build", help="index a data folder's MedPix cases into SQLite")
    b.add_argument("--data", type=Path, required=True, help="folder laid out like shared/data/dev")
    b.add_argument("--db", "--out", dest="db", type=Path, default=None,
                   help="SQLite file (default: RADASSIST_LIBRARY or ~/.cache/radassist)")
    b.add_argument("--split", action="append", default=None,
                   help="split(s) to index (default: train); 'all' for every split")
    b.add_argument("--no-images", action="store_true", help="text only, without image embeddings")
    b.set_defaults(func=handle_build)
    s = sub.add_parser("search", help="nearest cases by history text and/or an image")
    s.add_argument("--db", type=Path, default=None)
    s.add_argument("--history", default="", help="clinical history text")
    s.add_argument("--image", type=Path, default=None, help="an image file (JPEG/PNG)")
    s.add_argument("-k", type=int, default=5)
    s.set_defaults(func=handle_search)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def handle_build(args: argparse.Namespace) -> int:
    from imaging.cases import build, default_db_path

    if not (args.data / "medpix" / "cases.json").is_file():
        raise RadAssistError(str(args.data), "no medpix/cases.json in this folder",
                             reason="no_cases")
    splits = None if args.split and "all" in args.split else tuple(args.split or ("train",))
    embed, version = None, "none"
    if not args.no_images:
        try:
            from imaging.evaluation.ddx import _predictor
            from imaging.model import get_model

            model = get_model()
            predict = _predictor(model)

            def embed(paths):
                return predict(paths).embedding

            version = str(model.version)
        except RadAssistError as exc:
            print(f"warning: {exc}; building a text-only library", file=sys.stderr)
    db = args.db or default_db_path()
    n = build(args.data, db, splits=splits, embed=embed, model_version=version, progress=True)
    print(f"indexed {n} cases into {db} (image embeddings: {'yes' if embed else 'no'})")
    return 0


def handle_search(args: argparse.Namespace) -> int:
    from imaging.cases import default_db_path, default_library

    db = args.db or default_db_path()
    library = default_library(db)
    if library is None:
        raise RadAssistError(str(db), "no case library; run `radassist cases build --data DIR`",
                             reason="no_library")
    embedding = None
    if args.image is not None:
        from imaging.evaluation.ddx import _predictor
        from imaging.model import get_model

        embedding = _predictor(get_model())([args.image]).embedding[0]
    if embedding is None and not args.history.strip():
        raise RadAssistError(None, "give --history TEXT and/or --image FILE", reason="usage")
    start = time.perf_counter()
    hits = library.search(embedding, args.history or None, k=args.k)
    elapsed = (time.perf_counter() - start) * 1000
    for h in hits:
        print(f"{h.similarity:.3f}  {h.case_id}  {h.region or '-':<22} {h.diagnosis}")
    print(f"{len(hits)} of {len(library)} cases in {elapsed:.1f} ms", file=sys.stderr)
    return 0
