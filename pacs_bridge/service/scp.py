"""The DIMSE listener: C-ECHO and C-STORE for image storage, access control, TLS, audit.

Access control happens before anything is stored: the called AE title must be ours, and the
calling AE title and the peer's IP address must be on their allow-lists when those are set
(an AE title alone is a claim any sender can make; the address is what the network says).
A refused association is rejected (A-ASSOCIATE-RJ, "calling AE title not recognised") and
audited; accepted ones are audited with what they delivered, one record per study.

The store handler never decodes more than `receive.Receiver` needs, and answers only after
the instance is fsynced. Sockets get TCP_NODELAY as each connection opens: with Nagle's
algorithm on, the small DIMSE command PDUs wait for delayed ACKs and a store of small
instances slows to about 10 per second.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
import threading
from collections import Counter

from pynetdicom import AE, evt
from pynetdicom import sop_class as sc
from pynetdicom.sop_class import Verification
from pynetdicom.transport import ThreadedAssociationServer
from pynetdicom.utils import make_target

from pacs_bridge.service.audit import (
    MINOR_FAILURE,
    SERIOUS_FAILURE,
    AuditLog,
    peer,
    study_object,
)
from pacs_bridge.service.config import ScpConfig, TlsConfig
from pacs_bridge.service.metrics import METRICS
from pacs_bridge.service.receive import Receiver
from pacs_bridge.transfer_syntaxes import DECODABLE

log = logging.getLogger("radassist.bridge.scp")

# Image storage SOP classes the pipeline reads (radiography, cross-sectional, SC, US, NM).
IMAGE_STORAGE_CLASSES: tuple[str, ...] = tuple(
    str(getattr(sc, name))
    for name in (
        "ComputedRadiographyImageStorage",
        "DigitalXRayImageStorageForPresentation",
        "DigitalXRayImageStorageForProcessing",
        "DigitalMammographyXRayImageStorageForPresentation",
        "CTImageStorage",
        "EnhancedCTImageStorage",
        "LegacyConvertedEnhancedCTImageStorage",
        "MRImageStorage",
        "EnhancedMRImageStorage",
        "UltrasoundImageStorage",
        "UltrasoundMultiFrameImageStorage",
        "SecondaryCaptureImageStorage",
        "MultiFrameGrayscaleByteSecondaryCaptureImageStorage",
        "MultiFrameGrayscaleWordSecondaryCaptureImageStorage",
        "MultiFrameTrueColorSecondaryCaptureImageStorage",
        "XRayAngiographicImageStorage",
        "XRayRadiofluoroscopicImageStorage",
        "NuclearMedicineImageStorage",
        "PositronEmissionTomographyImageStorage",
    )
)

# Exactly the transfer syntaxes the pipeline decodes: nothing is acknowledged that cannot then
# be read (pacs_bridge.transfer_syntaxes).
TRANSFER_SYNTAXES: tuple[str, ...] = tuple(DECODABLE)


# pynetdicom's DUL thread polls its socket and sleeps 1 ms whenever it finds nothing; on a
# busy machine each of those sleeps becomes a scheduler round trip per PDU. 0.2 ms halved
# the time per C-STORE here (bench/bridge.py) for about 2-3 % of a core per open, idle
# association. `_run_loop_delay` is private: pynetdicom is pinned (3.0.4) in pyproject.
DUL_POLL_SECONDS = 0.0002


def tune_scp_association(event: evt.Event) -> None:
    """EVT_CONN_OPEN handler of the listener: TCP_NODELAY and a shorter DUL poll."""
    set_nodelay(event)
    _tune_poll(event)


def set_nodelay(event: evt.Event) -> None:
    """EVT_CONN_OPEN handler (usable by any pynetdicom AE, SCU or SCP)."""
    sock = getattr(getattr(event.assoc.dul, "socket", None), "socket", None)
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:  # e.g. a socket already closed by the peer
            log.debug("TCP_NODELAY not set: %s", exc)


def _tune_poll(event: evt.Event) -> None:
    """EVT_CONN_OPEN handler: the shorter DUL poll (the one place that sets it)."""
    dul = event.assoc.dul
    if hasattr(dul, "_run_loop_delay"):
        dul._run_loop_delay = DUL_POLL_SECONDS


def server_ssl_context(tls: TlsConfig) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certfile=str(tls.certificate), keyfile=str(tls.private_key))
    if tls.ca_certificates:
        ctx.load_verify_locations(cafile=str(tls.ca_certificates))
    ctx.verify_mode = ssl.CERT_REQUIRED if tls.require_client_certificate else ssl.CERT_NONE
    return ctx


class StorageScp:
    def __init__(self, cfg: ScpConfig, receiver: Receiver, audit: AuditLog | None = None) -> None:
        self.cfg = cfg
        self.receiver = receiver
        self.audit = audit or AuditLog(None)
        self._server = None
        self._thread: threading.Thread | None = None
        self._received: dict[int, Counter] = {}  # per association: instances per study
        self._lock = threading.Lock()
        self._networks = tuple(ipaddress.ip_network(h) for h in cfg.allowed_hosts)
        ae = AE(ae_title=cfg.ae_title)
        ae.maximum_associations = 32
        ae.maximum_pdu_size = 0  # no limit: fewer, larger P-DATA PDUs
        ae.require_called_aet = cfg.require_called_aet
        ae.require_calling_aet = list(cfg.allowed_calling_aets)
        for sop in IMAGE_STORAGE_CLASSES:
            ae.add_supported_context(sop, list(TRANSFER_SYNTAXES))
        ae.add_supported_context(Verification)
        self.ae = ae

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server else 0

    def start(self) -> int:
        handlers = [
            (evt.EVT_CONN_OPEN, tune_scp_association if self.cfg.tcp_nodelay else _tune_poll),
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_ACCEPTED, self._on_accepted),
            (evt.EVT_RELEASED, self._on_closed),
            (evt.EVT_ABORTED, self._on_closed),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
        ]
        ctx = server_ssl_context(self.cfg.tls) if self.cfg.tls else None
        # ae.start_server(block=False) as pynetdicom does it, keeping the accept thread, so
        # that /health can tell whether the listener still accepts associations
        self._server = self.ae.make_server(
            (self.cfg.host, self.cfg.port),
            evt_handlers=[h for h in handlers if h],
            ssl_context=ctx,
            server_class=ThreadedAssociationServer,
        )
        self.ae._servers.append(self._server)  # AssociationServer.shutdown() removes it
        self._thread = threading.Thread(target=make_target(self._server.serve_forever),
                                         name="bridge-dicom-accept", daemon=True)
        self._thread.start()
        log.info(
            "DICOM listener %s on %s:%d%s",
            self.cfg.ae_title,
            self.cfg.host,
            self.port,
            " (TLS)" if ctx else "",
        )
        return self.port

    def is_up(self) -> bool:
        """The listening socket is open and its accept loop running."""
        server, thread = self._server, self._thread
        return (server is not None and thread is not None and thread.is_alive()
                and server.socket.fileno() != -1)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()  # also closes the socket
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @staticmethod
    def _peer(event: evt.Event) -> tuple[str, str, str]:
        """(calling AE, called AE, peer IP) of the association an event belongs to."""
        primitive = event.assoc.requestor.primitive
        calling = str(getattr(primitive, "calling_ae_title", "") or "").strip()
        called = str(getattr(primitive, "called_ae_title", "") or "").strip()
        return calling, called, str(event.assoc.requestor.address or "")

    def refusal_reason(self, calling: str, called: str, address: str) -> str | None:
        """Why an association must be refused, or None when it may proceed."""
        if self.cfg.require_called_aet and called and called != self.cfg.ae_title:
            return f"called AE title {called!r} is not {self.cfg.ae_title!r}"
        if self.cfg.allowed_calling_aets and calling not in self.cfg.allowed_calling_aets:
            return f"calling AE title {calling!r} is not on the allow-list"
        if self._networks:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                return f"peer address {address!r} is not an IP address"
            if not any(ip in net for net in self._networks):
                return f"peer address {address} is not on the allow-list"
        return None

    def _on_requested(self, event: evt.Event) -> None:
        calling, called, address = self._peer(event)
        reason = self.refusal_reason(calling, called, address)
        if reason is None:
            return
        log.warning("association refused: %s", reason)
        METRICS.refused.labels(reason="association").inc()
        self.audit.record("association_refused", outcome=MINOR_FAILURE, detail=reason,
                          participants=[peer(calling, address, requestor=True),
                                        peer(self.cfg.ae_title, self.cfg.host, requestor=False)])
        # rejected-permanent, by the service user: 0x03 calling AE not recognised,
        # 0x07 called AE not recognised
        code = 0x07 if reason.startswith("called") else 0x03
        event.assoc.acse.send_reject(0x01, 0x01, code)
        event.assoc.kill()  # as pynetdicom does after its own rejections: the PDU goes out

    def _on_accepted(self, event: evt.Event) -> None:
        calling, _, address = self._peer(event)
        with self._lock:
            self._received[id(event.assoc)] = Counter()
        self.audit.record("association", participants=[
            peer(calling, address, requestor=True),
            peer(self.cfg.ae_title, self.cfg.host, requestor=False)])

    def _on_closed(self, event: evt.Event) -> None:
        with self._lock:
            studies = self._received.pop(id(event.assoc), None)
        if not studies:
            return
        calling, _, address = self._peer(event)
        for study_uid, n in sorted(studies.items()):
            self.audit.record("receipt", participants=[
                peer(calling, address, requestor=True),
                peer(self.cfg.ae_title, self.cfg.host, requestor=False)],
                objects=[study_object(study_uid, instances=n)])

    def _on_echo(self, event: evt.Event) -> int:
        return 0x0000

    def _on_store(self, event: evt.Event) -> int:
        source = f"c-store:{event.assoc.requestor.ae_title}"
        try:
            data = event.encoded_dataset(include_meta=True)
        except Exception as exc:
            log.warning("refused instance from %s: 0xC210 (%s)", source, type(exc).__name__)
            return 0xC210
        result = self.receiver.accept_bytes(
            data, source, sop_class_uid=str(event.context.abstract_syntax)
        )
        if result.status == 0x0000:
            METRICS.received.inc()
            with self._lock:
                self._received.setdefault(id(event.assoc), Counter())[result.study_uid] += 1
        else:
            METRICS.refused.labels(reason="instance").inc()
            calling, _, address = self._peer(event)
            self.audit.record("refusal", outcome=SERIOUS_FAILURE,
                              detail=f"0x{result.status:04X} {result.reason}",
                              participants=[peer(calling, address, requestor=True)])
        return result.status
