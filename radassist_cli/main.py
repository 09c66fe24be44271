"""Entry point of the `radassist` console script.

Each verb lives in its own module `radassist_cli/cmd_<verb>.py` exposing
`register(subparsers)`, which adds its parser and sets `func=handler` (handler takes the
parsed args and returns an exit code). Discovering them here keeps this file stable while
features are added, and one bad import never hides the other commands.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import traceback

import radassist_cli
from common.errors import RadAssistError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="radassist",
        description=(
            "Offline radiology second read. Research and teaching aid, not a medical device."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(radassist_cli.__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            module = importlib.import_module(f"radassist_cli.{info.name}")
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except RadAssistError as exc:  # typed errors: one readable line, never a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug of ours: one line for the user, details on request
        if os.environ.get("RADASSIST_DEBUG"):
            traceback.print_exc()
        print(
            f"internal error: {type(exc).__name__}: {exc} "
            "(set RADASSIST_DEBUG=1 for details; please report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
