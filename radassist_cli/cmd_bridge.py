"""`radassist bridge serve | worker | status | pull | watch`: the PACS bridge service."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime

DEFAULT_CONFIG = "bridge.toml"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bridge", help="PACS bridge: receive studies, analyse each once, send results back"
    )
    sub = p.add_subparsers(dest="bridge_command", metavar="ACTION", required=True)

    def add(name: str, help_: str, func) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_)
        sp.add_argument(
            "--config", default=DEFAULT_CONFIG, help="bridge TOML (see bridge.example.toml)"
        )
        sp.add_argument("-v", "--verbose", action="store_true", help="debug logging")
        sp.set_defaults(func=func)
        return sp

    add("serve", "run the DICOM listener, the analysis worker and the status endpoint", _serve)
    add("worker", "run one more analysis worker on the bridge's queue (no listener)", _worker)
    st = add("status", "list studies and their states from the journal", _status)
    st.add_argument("--json", action="store_true", help="print JSON")
    pl = add("pull", "retrieve a study from the [source] PACS into the bridge", _pull)
    pl.add_argument("--study", required=True, help="Study Instance UID")
    pl.add_argument("--via", choices=("dimse", "dicomweb"), default="dimse")
    pl.add_argument(
        "--get", action="store_true",
        help="DIMSE: C-GET into the spool instead of C-MOVE to the running bridge",
    )
    kg = sub.add_parser("keygen", help="write a new spool encryption key ([spool] "
                        "encryption_key_file)")
    kg.add_argument("out", help="key file to create (mode 0600; keep it off the spool's disk)")
    kg.set_defaults(func=_keygen)
    add("failed", "list failed studies, with their last error", _failed)
    rt = add("retry", "try a failed study again (re-send its results, or re-analyse)", _retry)
    rt.add_argument("study", help="Study Instance UID (see `bridge failed`)")
    rs = add("resend", "send a delivered study's results again (e.g. the PACS lost them)",
             _resend)
    rs.add_argument("study", help="Study Instance UID")
    wa = add("watch", "serve, and poll the [source] DICOMweb PACS for new studies", _watch)
    wa.add_argument("--once", action="store_true",
                    help="poll once, wait until the new studies are finished, then exit")
    wa.add_argument("--timeout", type=float, default=600.0, help="with --once: give up after")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from pacs_bridge.service import log_privacy

    log_privacy.install()  # library warnings withheld, UIDs as tags (no patient data in logs)


def _load(args):
    from pacs_bridge.service.config import load_config

    return load_config(args.config)


def _run_until_signal(service) -> None:
    def stop(signum, frame):  # noqa: ARG001
        service.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not service.wait(1.0):
        pass


def _serve(args) -> int:
    from pacs_bridge.service.service import BridgeService

    _setup_logging(args.verbose)
    service = BridgeService(_load(args))
    service.start()
    print(
        f"bridge {service.cfg.scp.ae_title} ready: DICOM port "
        f"{service.scp.port if service.scp else '-'}, status "
        f"http://127.0.0.1:{service.http.port if service.http else '-'}/status",
        flush=True,
    )
    try:
        _run_until_signal(service)
    finally:
        service.stop()
    return 0


def _worker(args) -> int:
    from pacs_bridge.service.service import WorkerService

    _setup_logging(args.verbose)
    service = WorkerService(_load(args))
    signal.signal(signal.SIGTERM, lambda signum, frame: service.request_stop())
    signal.signal(signal.SIGINT, lambda signum, frame: service.request_stop())
    print(f"bridge worker ready on the {'PostgreSQL' if service.cfg.queue.url else 'journal'} "
          "queue", flush=True)
    service.run()
    return 0


def _status(args) -> int:
    from common.errors import RadAssistError
    from pacs_bridge.service.journal import Journal
    from pacs_bridge.service.service import read_runtime

    cfg = _load(args)
    if not cfg.storage.journal_path.exists():
        raise RadAssistError(str(cfg.storage.journal_path), "no journal yet (never served)")
    journal = Journal(cfg.storage.journal_path, readonly=True)
    records = journal.studies()
    runtime = read_runtime(cfg.storage.spool_directory)
    health = None
    if runtime and runtime.get("http_port"):
        url = f"http://127.0.0.1:{runtime['http_port']}/health"
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                health = json.load(r)
        except urllib.error.HTTPError as exc:  # 503: degraded, the body says why
            health = json.load(exc)
        except OSError:
            health = None
    if args.json:
        print(json.dumps({"service": health, "studies": [r.as_json() for r in records]},
                         indent=1))
        return 0
    print(f"service: {'running, ' + str(health['uptime_s']) + ' s' if health else 'not running'}"
          + (f" ({health['status']}: {'; '.join(health.get('problems', []))})"
             if health and health.get("status") != "ok" else ""))
    print(f"{'study':<64} {'state':<10} {'inst':>5} {'try':>3} {'updated':<19} error")
    for r in records:
        when = datetime.fromtimestamp(r.updated_at).strftime("%Y-%m-%d %H:%M:%S")
        state = "quarantine" if r.quarantined else r.state
        print(f"{r.study_uid:<64} {state:<10} {r.instance_count:>5} {r.attempts:>3} "
              f"{when:<19} {r.last_error[:80]}")
    counts = journal.counts()
    print("total: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no studies"))
    return 0


def _journal(args):
    from common.errors import RadAssistError
    from pacs_bridge.service.journal import Journal

    cfg = _load(args)
    if not cfg.storage.journal_path.exists():
        raise RadAssistError(str(cfg.storage.journal_path), "no journal yet (never served)")
    return Journal(cfg.storage.journal_path)


def _keygen(args) -> int:
    import os

    from cryptography.fernet import Fernet

    from common.errors import RadAssistError

    try:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise RadAssistError(args.out, "exists; a key is never overwritten",
                             reason="usage") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(Fernet.generate_key() + b"\n")
    print(f"wrote {args.out}; set [spool] encryption_key_file to it")
    return 0


def _failed(args) -> int:
    from pacs_bridge.service.journal import FAILED

    records = _journal(args).in_state(FAILED)
    for r in records:
        when = datetime.fromtimestamp(r.updated_at).strftime("%Y-%m-%d %H:%M:%S")
        what = "quarantined" if r.quarantined else "failed"
        print(f"{r.study_uid}  {what} {when}  after {r.attempts} attempt(s): {r.last_error}")
    quarantined = sum(bool(r.quarantined) for r in records)
    print(f"{len(records)} failed stud(ies)"
          + (f", {quarantined} of them quarantined (never re-run until retried)"
             if quarantined else "")
          + ("; `radassist bridge retry STUDY` tries one again" if records else ""))
    return 0


def _retry(args) -> int:
    from common.errors import RadAssistError

    if not _journal(args).retry(args.study, note="retry requested by an operator"):
        raise RadAssistError(args.study, "not a failed study of this bridge", reason="usage")
    print(f"study {args.study} queued again; the running bridge takes it at once")
    return 0


def _resend(args) -> int:
    from common.errors import RadAssistError

    if not _journal(args).resend(args.study):
        raise RadAssistError(args.study, "no sent or failed study with spooled results",
                             reason="usage")
    print(f"study {args.study}: every result object will be sent again")
    return 0


def _pull(args) -> int:
    from common.errors import RadAssistError
    from pacs_bridge.service import pull
    from pacs_bridge.service.journal import Journal
    from pacs_bridge.service.receive import Receiver
    from pacs_bridge.service.service import read_runtime
    from pacs_bridge.service.spool import Spool

    _setup_logging(args.verbose)
    cfg = _load(args)
    if cfg.source is None:
        raise RadAssistError(args.config, "pull needs a [source] section")
    calling = cfg.scp.ae_title
    from pacs_bridge.service.audit import AuditLog, peer, study_object

    AuditLog(cfg.storage.audit_path, source_id=calling).record(
        "query", participants=[peer(calling, None, requestor=True),
                               peer(cfg.source.ae_title or cfg.source.url, cfg.source.host,
                                    requestor=False)],
        objects=[study_object(args.study)], detail=f"pull via {args.via}")
    if args.via == "dimse" and not args.get:
        result = pull.pull_move(cfg.source, args.study, calling)
    else:
        receiver = Receiver(Spool(cfg.storage.spool_directory), Journal(cfg.storage.journal_path))
        if args.via == "dimse":
            result = pull.pull_get(cfg.source, args.study, calling, receiver)
        else:
            result = pull.pull_dicomweb(cfg.source, args.study, receiver)
    listed = "?" if result.expected is None else result.expected
    print(
        f"pulled by {result.via}: {result.received} instance(s) received, "
        f"{result.refused} refused (PACS lists {listed})"
    )
    if result.via != "c-move" and read_runtime(cfg.storage.spool_directory) is None:
        print("note: the bridge service is not running; `radassist bridge serve` analyses "
              "the pulled study when it starts")
    return 0 if result.refused == 0 else 1


def _watch(args) -> int:
    from pacs_bridge.service.journal import FINISHED, SENT
    from pacs_bridge.service.service import BridgeService

    _setup_logging(args.verbose)
    service = BridgeService(_load(args), watch=not args.once)
    service.start()
    try:
        if not args.once:
            _run_until_signal(service)
            return 0
        from pacs_bridge.service.watch import Watcher

        assert service.cfg.source is not None
        watcher = Watcher(service.cfg.source, service.journal, service.receiver, service.audit)
        pulled = watcher.poll_once()
        print(f"watch: {len(pulled)} new stud(ies) pulled", flush=True)
        deadline = time.monotonic() + args.timeout
        # a study none of whose instances was accepted never enters the journal: report it
        # now instead of waiting the whole timeout for it
        refused = [p for p in pulled if p.received == 0]
        for p in refused:
            print(f"{p.study_uid} refused ({p.refused} instance(s) refused)")
        uids = [p.study_uid for p in pulled if p.received > 0]
        if refused and not uids:
            return 1
        while time.monotonic() < deadline:
            states = {u: (service.journal.get(u).state if service.journal.get(u) else "?")
                      for u in uids}
            if all(s in FINISHED for s in states.values()):
                for u, s in states.items():
                    print(f"{u} {s}")
                return 0 if all(s == SENT for s in states.values()) and not refused else 1
            time.sleep(0.2)
        print("watch: timed out waiting for analysis", file=sys.stderr)
        return 1
    finally:
        service.stop()
