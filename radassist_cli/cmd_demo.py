"""`radassist demo`: the Gradio viewer and teaching mode on 127.0.0.1."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pacs_bridge.errors import RadAssistError


class DemoArgumentError(RadAssistError):
    reason = "usage"


def _default_library() -> str | None:
    env = os.environ.get("RADASSIST_DATA")
    if env:
        return env
    candidate = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "dev"
    return str(candidate) if (candidate / "medpix").is_dir() else None


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="start the viewer and teaching mode (Gradio, 127.0.0.1)",
        description="Start the radiologist viewer and the teaching tab in a local web page.",
    )
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; the viewer holds patient data)")
    p.add_argument("--auth", metavar="USER:PASS", help="require this login")
    p.add_argument("--library", metavar="DIR",
                   help="data folder holding medpix/ (default RADASSIST_DATA or "
                        "../shared/data/dev when present)")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    auth = None
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not sep or not user or not password:
            raise DemoArgumentError("--auth", "expected USER:PASS")
        auth = (user, password)
    library = args.library or _default_library()
    if library and not (Path(library) / "medpix").is_dir():
        print(f"note: no teaching library at {library} (no medpix/ folder); quiz disabled")
    from demo.app import launch

    print(f"RadAssist viewer on http://{args.host}:{args.port}  (Ctrl-C to stop)")
    launch(port=args.port, auth=auth, library_dir=library, host=args.host)
    return 0
