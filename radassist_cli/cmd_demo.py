"""`radassist demo`: the Gradio viewer and teaching mode on 127.0.0.1."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from common.errors import RadAssistError


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
    p.add_argument("--audit-log", metavar="FILE", type=Path, default=None,
                   help="DICOM audit records of viewer logins (default: the cache folder's "
                        "viewer-audit.jsonl)")
    p.add_argument("--library", metavar="DIR",
                   help="data folder holding medpix/ (default RADASSIST_DATA or "
                        "../shared/data/dev when present)")
    p.set_defaults(func=handler)


def default_audit_path() -> Path:
    from imaging.cache import cache_root

    return cache_root() / "viewer-audit.jsonl"


def audited_login(user: str, password: str, audit_path: Path):
    """Gradio's auth callable: a constant-time check, and an audit record of every attempt
    (user and outcome; never the password typed)."""
    import hmac

    from pacs_bridge.service.audit import MINOR_FAILURE, SUCCESS, AuditLog, peer

    audit = AuditLog(audit_path, source_id="RADASSIST-VIEWER")

    def check(username: str, typed: str) -> bool:
        ok = hmac.compare_digest(username.encode(), user.encode()) and hmac.compare_digest(
            typed.encode(), password.encode())
        audit.record("user_login", outcome=SUCCESS if ok else MINOR_FAILURE,
                     participants=[peer(username[:64], None, requestor=True)],
                     detail="viewer login" if ok else "viewer login refused")
        return ok

    return check


def handler(args: argparse.Namespace) -> int:
    auth = None
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not sep or not user or not password:
            raise DemoArgumentError("--auth", "expected USER:PASS")
        auth = audited_login(user, password, args.audit_log or default_audit_path())
    library = args.library or _default_library()
    if library and not (Path(library) / "medpix").is_dir():
        print(f"note: no teaching library at {library} (no medpix/ folder); quiz disabled")
    from demo.app import launch

    print(f"RadAssist viewer on http://{args.host}:{args.port}  (Ctrl-C to stop)")
    launch(port=args.port, auth=auth, library_dir=library, host=args.host)
    return 0
