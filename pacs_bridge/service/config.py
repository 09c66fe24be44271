"""The bridge's TOML configuration, parsed once into frozen dataclasses.

Validation happens here, at start-up, so that a typo in a port or a path is one clear
line naming the key, instead of a failure the first time a study arrives.
Relative paths are resolved against the folder holding the config file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import RadAssistError


class BridgeConfigError(RadAssistError):
    """The bridge configuration file is missing, unreadable or invalid."""

    reason = "config"


@dataclass(frozen=True)
class TlsConfig:
    certificate: Path
    private_key: Path
    ca_certificates: Path | None = None
    require_client_certificate: bool = False


@dataclass(frozen=True)
class ScpConfig:
    ae_title: str = "RADASSIST"
    host: str = "127.0.0.1"
    port: int = 11112
    allowed_calling_aets: tuple[str, ...] = ()  # empty: any calling AE title
    # peers allowed to associate: IP addresses or networks ("10.1.2.0/24"); empty: any
    allowed_hosts: tuple[str, ...] = ()
    require_called_aet: bool = True  # refuse associations addressed to another AE title
    tcp_nodelay: bool = True
    tls: TlsConfig | None = None
    enabled: bool = True


@dataclass(frozen=True)
class StorageConfig:
    spool_directory: Path
    journal_path: Path
    # finished studies' instances and results are purged this long after they finished
    retention_hours: float = 168.0
    max_bytes: int = 0  # 0: no size cap; else the oldest finished studies go first
    audit_path: Path | None = None  # default: <spool>/audit.jsonl
    key_file: Path | None = None  # a Fernet key: instances and results encrypted at rest


@dataclass(frozen=True)
class CompletionConfig:
    inactivity_seconds: float = 30.0


@dataclass(frozen=True)
class RoutingRule:
    """An instance matches when every non-empty list contains its value."""

    action: str  # "analyse" or "skip"
    modality: tuple[str, ...] = ()
    body_part: tuple[str, ...] = ()
    sop_class: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoutingConfig:
    default: str = "analyse"
    rules: tuple[RoutingRule, ...] = ()


@dataclass(frozen=True)
class AnalysisConfig:
    analyzer: str = "imaging.pipeline:report_objects"
    max_attempts: int = 5  # analysis attempts (an analysis that fails 5 times will not heal)
    # sending is retried until the study's results are this old (a PACS outage of hours)
    delivery_max_age_hours: float = 24.0
    requeue_failed_on_restart: bool = False
    backoff_seconds: float = 2.0
    backoff_max_seconds: float = 300.0
    # each study is analysed in a child process (the model loaded once per child), so a
    # decoder that aborts, a segfault or the OOM killer fails that study, not the bridge;
    # false runs the analyzer in the bridge's own process (tests of the bridge's plumbing)
    isolate: bool = True
    study_seconds: float = 1800.0  # a child analysing one study longer than this is killed
    tasks_per_child: int = 50  # studies per child before a fresh one (bounds slow leaks)
    # after a child died on a study: the decoder a screening child runs on each spooled image
    # to find the instance(s) that kill it; they are set aside and the rest analysed ("":
    # no screening, the study fails whole)
    screen_decoder: str = "imaging.pixels:decode_frames"


@dataclass(frozen=True)
class DestinationConfig:
    kind: str  # "dimse" or "dicomweb"
    ae_title: str = ""
    host: str = "127.0.0.1"
    port: int = 0
    url: str = ""
    calling_ae_title: str = "RADASSIST"


@dataclass(frozen=True)
class SourceConfig:
    """The PACS that `pull` and `watch` query (DIMSE and/or DICOMweb)."""

    ae_title: str = ""
    host: str = "127.0.0.1"
    port: int = 0
    url: str = ""
    move_destination: str = ""  # AE title the PACS sends to on C-MOVE (usually the bridge)


@dataclass(frozen=True)
class StatusHttpConfig:
    host: str = "127.0.0.1"
    port: int = 8765  # 0: pick a free port (logged at start-up)
    enabled: bool = True


@dataclass(frozen=True)
class WatchConfig:
    interval_seconds: float = 60.0


@dataclass(frozen=True)
class QueueConfig:
    """Where analysis jobs wait for worker processes (`radassist bridge worker`)."""

    url: str = ""  # "postgresql://..." for PostgreSQL; empty: the SQLite journal
    # a worker on another host that holds a study this long is taken to be gone
    lease_seconds: float = 3600.0
    analyse_in_listener: bool = True  # false: `bridge serve` only receives, workers analyse


@dataclass(frozen=True)
class BridgeConfig:
    scp: ScpConfig
    storage: StorageConfig
    completion: CompletionConfig
    routing: RoutingConfig
    analysis: AnalysisConfig
    destination: DestinationConfig | None
    source: SourceConfig | None
    status_http: StatusHttpConfig
    watch: WatchConfig = field(default_factory=WatchConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    path: Path | None = None


_SECTIONS = {
    "scp", "spool", "completion", "routing", "analysis", "destination", "source",
    "status_http", "watch", "queue",
}


def load_config(path: str | Path) -> BridgeConfig:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BridgeConfigError(str(path), "config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BridgeConfigError(str(path), f"cannot read config: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise BridgeConfigError(str(path), f"invalid TOML: {exc}") from None
    return parse_config(raw, base=path.resolve().parent, source=str(path))


def parse_config(raw: dict[str, Any], *, base: Path, source: str = "config") -> BridgeConfig:
    r = _Reader(source)
    unknown = set(raw) - _SECTIONS
    if unknown:
        raise BridgeConfigError(source, f"unknown section(s): {', '.join(sorted(unknown))}")

    scp_raw = r.table(raw, "scp")
    tls_raw = r.table(scp_raw, "tls", "scp.tls") if "tls" in scp_raw else None
    tls = None
    if tls_raw is not None:
        tls = TlsConfig(
            certificate=_path(base, r.str_(tls_raw, "certificate", "scp.tls", None)),
            private_key=_path(base, r.str_(tls_raw, "private_key", "scp.tls", None)),
            ca_certificates=_opt_path(base, r.str_(tls_raw, "ca_certificates", "scp.tls", "")),
            require_client_certificate=r.bool_(
                tls_raw, "require_client_certificate", "scp.tls", False
            ),
        )
    scp = ScpConfig(
        ae_title=r.aet(scp_raw, "ae_title", "scp", "RADASSIST"),
        host=r.str_(scp_raw, "host", "scp", "127.0.0.1"),
        port=r.port(scp_raw, "port", "scp", 11112, allow_zero=True),
        allowed_calling_aets=tuple(
            r.aet_value(v, "scp.allowed_calling_aets")
            for v in r.list_(scp_raw, "allowed_calling_aets", "scp")
        ),
        allowed_hosts=tuple(
            _network(source, v) for v in r.list_(scp_raw, "allowed_hosts", "scp")
        ),
        require_called_aet=r.bool_(scp_raw, "require_called_aet", "scp", True),
        tcp_nodelay=r.bool_(scp_raw, "tcp_nodelay", "scp", True),
        tls=tls,
        enabled=r.bool_(scp_raw, "enabled", "scp", True),
    )

    spool_raw = r.table(raw, "spool")
    spool_dir = _path(base, r.str_(spool_raw, "directory", "spool", "var/bridge/spool"))
    journal = r.str_(spool_raw, "journal", "spool", "")
    audit = r.str_(spool_raw, "audit_log", "spool", "")
    storage = StorageConfig(
        spool_directory=spool_dir,
        journal_path=_path(base, journal) if journal else spool_dir / "journal.sqlite",
        retention_hours=r.positive(spool_raw, "retention_hours", "spool", 168.0),
        max_bytes=int(r.positive(spool_raw, "max_bytes", "spool", 0.0))
        if spool_raw.get("max_bytes") else 0,
        audit_path=_path(base, audit) if audit else spool_dir / "audit.jsonl",
        key_file=_opt_path(base, r.str_(spool_raw, "encryption_key_file", "spool", "")),
    )

    comp_raw = r.table(raw, "completion")
    completion = CompletionConfig(
        inactivity_seconds=r.positive(comp_raw, "inactivity_seconds", "completion", 30.0)
    )

    routing_raw = r.table(raw, "routing")
    rules = []
    for i, rule in enumerate(r.list_(routing_raw, "rules", "routing")):
        where = f"routing.rules[{i}]"
        if not isinstance(rule, dict):
            raise BridgeConfigError(source, f"{where} must be a table")
        rules.append(
            RoutingRule(
                action=r.choice(rule, "action", where, ("analyse", "skip"), None),
                modality=tuple(str(v).upper() for v in r.list_(rule, "modality", where)),
                body_part=tuple(str(v).upper() for v in r.list_(rule, "body_part", where)),
                sop_class=tuple(str(v) for v in r.list_(rule, "sop_class", where)),
            )
        )
    routing = RoutingConfig(
        default=r.choice(routing_raw, "default", "routing", ("analyse", "skip"), "analyse"),
        rules=tuple(rules),
    )

    an_raw = r.table(raw, "analysis")
    analyzer = r.str_(an_raw, "analyzer", "analysis", "imaging.pipeline:report_objects")
    if ":" not in analyzer:
        raise BridgeConfigError(
            source, f"analysis.analyzer must look like 'package.module:function', got {analyzer!r}"
        )
    screen_decoder = r.str_(an_raw, "screen_decoder", "analysis", "imaging.pixels:decode_frames")
    if screen_decoder and ":" not in screen_decoder:
        raise BridgeConfigError(source, "analysis.screen_decoder must look like "
                                f"'package.module:function' or be empty, got {screen_decoder!r}")
    analysis = AnalysisConfig(
        analyzer=analyzer,
        max_attempts=int(r.positive(an_raw, "max_attempts", "analysis", 5)),
        delivery_max_age_hours=r.positive(
            an_raw, "delivery_max_age_hours", "analysis", 24.0),
        requeue_failed_on_restart=r.bool_(
            an_raw, "requeue_failed_on_restart", "analysis", False),
        backoff_seconds=r.positive(an_raw, "backoff_seconds", "analysis", 2.0),
        backoff_max_seconds=r.positive(an_raw, "backoff_max_seconds", "analysis", 300.0),
        isolate=r.bool_(an_raw, "isolate", "analysis", True),
        study_seconds=r.positive(an_raw, "study_seconds", "analysis", 1800.0),
        screen_decoder=screen_decoder,
        tasks_per_child=int(r.positive(an_raw, "tasks_per_child", "analysis", 50)),
    )

    destination = None
    if "destination" in raw:
        d = r.table(raw, "destination")
        kind = r.choice(d, "kind", "destination", ("dimse", "dicomweb"), None)
        destination = DestinationConfig(
            kind=kind,
            ae_title=r.aet(d, "ae_title", "destination", None if kind == "dimse" else ""),
            host=r.str_(d, "host", "destination", "127.0.0.1"),
            port=r.port(
                d, "port", "destination", None if kind == "dimse" else 0,
                allow_zero=kind != "dimse",
            ),
            url=r.str_(d, "url", "destination", None if kind == "dicomweb" else ""),
            calling_ae_title=r.aet(d, "calling_ae_title", "destination", scp.ae_title),
        )

    source_cfg = None
    if "source" in raw:
        s = r.table(raw, "source")
        source_cfg = SourceConfig(
            ae_title=r.aet(s, "ae_title", "source", ""),
            host=r.str_(s, "host", "source", "127.0.0.1"),
            port=r.port(s, "port", "source", 0, allow_zero=True),
            url=r.str_(s, "url", "source", ""),
            move_destination=r.aet(s, "move_destination", "source", scp.ae_title),
        )

    http_raw = r.table(raw, "status_http")
    status_http = StatusHttpConfig(
        host=r.str_(http_raw, "host", "status_http", "127.0.0.1"),
        port=r.port(http_raw, "port", "status_http", 8765, allow_zero=True),
        enabled=r.bool_(http_raw, "enabled", "status_http", True),
    )
    if status_http.host not in ("127.0.0.1", "localhost", "::1"):
        raise BridgeConfigError(source, "status_http.host must be a loopback address")

    watch_raw = r.table(raw, "watch")
    watch = WatchConfig(
        interval_seconds=r.positive(watch_raw, "interval_seconds", "watch", 60.0)
    )
    queue_raw = r.table(raw, "queue")
    queue_url = r.str_(queue_raw, "url", "queue", "")
    if queue_url and not queue_url.startswith(("postgresql://", "postgres://")):
        raise BridgeConfigError(source, "queue.url must be a postgresql:// URL (or absent: "
                                        "the SQLite journal is the queue)")
    queue = QueueConfig(
        url=queue_url,
        lease_seconds=r.positive(queue_raw, "lease_seconds", "queue", 3600.0),
        analyse_in_listener=r.bool_(queue_raw, "analyse_in_listener", "queue", True),
    )
    return BridgeConfig(
        scp=scp, storage=storage, completion=completion, routing=routing, analysis=analysis,
        destination=destination, source=source_cfg, status_http=status_http, watch=watch,
        queue=queue, path=None if source == "config" else Path(source),
    )


def _network(source: str, value: Any) -> str:
    """An IP address or network in canonical form; a typo is a config error, not an open door."""
    import ipaddress

    try:
        return str(ipaddress.ip_network(str(value), strict=False))
    except ValueError:
        raise BridgeConfigError(
            source, f"scp.allowed_hosts: {value!r} is not an IP address or network"
        ) from None


def _path(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p)


def _opt_path(base: Path, value: str) -> Path | None:
    return _path(base, value) if value else None


_MISSING = object()


class _Reader:
    """Typed getters that raise one clear error naming the offending key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def _fail(self, where: str, key: str, msg: str) -> BridgeConfigError:
        return BridgeConfigError(self.source, f"{where}.{key}: {msg}")

    def _get(self, table: dict, key: str, where: str, default: Any) -> Any:
        if key in table:
            return table[key]
        if default is None:
            raise self._fail(where, key, "is required")
        return default

    def table(self, raw: dict, key: str, where: str | None = None) -> dict:
        value = raw.get(key, {})
        if not isinstance(value, dict):
            raise BridgeConfigError(self.source, f"[{where or key}] must be a table")
        return value

    def str_(self, table: dict, key: str, where: str, default: str | None) -> str:
        value = self._get(table, key, where, default)
        if not isinstance(value, str):
            raise self._fail(where, key, f"must be a string, got {type(value).__name__}")
        return value

    def bool_(self, table: dict, key: str, where: str, default: bool) -> bool:
        value = self._get(table, key, where, default)
        if not isinstance(value, bool):
            raise self._fail(where, key, "must be true or false")
        return value

    def positive(self, table: dict, key: str, where: str, default: float) -> float:
        value = self._get(table, key, where, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise self._fail(where, key, f"must be a positive number, got {value!r}")
        return float(value)

    def port(
        self, table: dict, key: str, where: str, default: int | None, allow_zero: bool = False
    ) -> int:
        value = self._get(table, key, where, default)
        low = 0 if allow_zero else 1
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 65535:
            raise self._fail(where, key, f"must be a port number {low}-65535, got {value!r}")
        return value

    def list_(self, table: dict, key: str, where: str) -> list:
        value = table.get(key, [])
        if not isinstance(value, list):
            raise self._fail(where, key, "must be a list")
        return value

    def choice(
        self, table: dict, key: str, where: str, options: tuple[str, ...], default: str | None
    ) -> str:
        value = self.str_(table, key, where, default)
        if value not in options:
            raise self._fail(where, key, f"must be one of {', '.join(options)}, got {value!r}")
        return value

    def aet(self, table: dict, key: str, where: str, default: str | None) -> str:
        value = self.str_(table, key, where, default)
        return self.aet_value(value, f"{where}.{key}") if value else value

    def aet_value(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not 0 < len(value.strip()) <= 16 or "\\" in value:
            raise BridgeConfigError(
                self.source, f"{where}: AE title must be 1-16 characters, got {value!r}"
            )
        return value.strip()
