"""`radassist batch SOURCE --out DIR | --send`: every study of a source, on Dask."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "batch", help="analyse every study of a folder tree, DICOMDIR or QIDO query on Dask",
        description="Analyse every study of SOURCE on Dask distributed (a LocalCluster by "
                    "default), resumably: a re-run skips what is done and retries what failed.")
    p.add_argument("source", help="folder tree, DICOMDIR file, or a QIDO-RS URL "
                                  "(http://pacs/dicom-web/studies?ModalitiesInStudy=CT)")
    p.add_argument("--out", type=Path, default=None,
                   help="results folder (notes, SR/SC, manifest.sqlite)")
    p.add_argument("--send", action="store_true",
                   help="also send each study's SR/SC to the [destination] of --config")
    p.add_argument("--config", default="bridge.toml", help="bridge TOML, for --send")
    p.add_argument("--scheduler", default="",
                   help="tcp://HOST:PORT of a running `dask scheduler` (default: LocalCluster)")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    p.add_argument("--threads", type=int, default=1,
                   help="threads per LocalCluster worker (= torch threads)")
    p.add_argument("--analyzer", default=None, help=argparse.SUPPRESS)  # tests: a stand-in
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from common.errors import RadAssistError
    from pacs_bridge.batch.engine import ClusterSpec, run_batch
    from pacs_bridge.batch.work import DEFAULT_ANALYZER

    if args.out is None and not args.send:
        raise RadAssistError(None, "give --out DIR, --send, or both", reason="usage")
    if args.workers < 1 or args.threads < 1:
        raise RadAssistError(None, "--workers and --threads must be at least 1", reason="usage")
    destination = None
    if args.send:
        from pacs_bridge.service.config import load_config

        destination = load_config(args.config).destination
        if destination is None:
            raise RadAssistError(args.config, "--send needs a [destination]", reason="usage")
    out = args.out or Path("radassist-batch")

    def on_start(n: int, dashboard: str) -> None:
        if dashboard:
            print(f"Dask dashboard: {dashboard}", file=sys.stderr, flush=True)
        print(f"{n} stud(ies) to analyse", file=sys.stderr, flush=True)

    def progress(total: int):
        from tqdm import tqdm

        return tqdm(total=total, unit="study", file=sys.stderr, disable=args.no_progress)

    summary = run_batch(
        args.source, out,
        cluster=ClusterSpec(args.scheduler, args.workers, args.threads),
        analyzer=args.analyzer or DEFAULT_ANALYZER, destination=destination,
        progress=progress, on_start=on_start)
    if args.json:
        print(json.dumps(summary.as_json(), indent=1))
    else:
        print(f"{summary.studies} stud(ies) in {args.source} ({summary.source_kind}): "
              f"{summary.skipped} already done, {summary.done} done now"
              + (f" ({summary.reused} found on disk)" if summary.reused else "")
              + f", {summary.failed} failed")
        if summary.done + summary.failed:
            print(f"{summary.studies_per_second:.2f} studies/s on {summary.workers} worker(s) "
                  f"({summary.wall_seconds:.1f} s; start-up {summary.setup_seconds:.1f} s)")
        for reason, n in sorted(summary.failures.items(), key=lambda kv: -kv[1]):
            print(f"  failed: {n} × {reason}")
        print(f"manifest: {out / 'manifest.sqlite'}")
    return 0 if summary.failed == 0 else 1
