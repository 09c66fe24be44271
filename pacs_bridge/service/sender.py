"""Sending result objects to the destination PACS, by C-STORE or STOW-RS.

`send(datasets, on_sent)` reports each object as soon as the peer confirmed it, so the
worker can journal it at once; after a crash only unconfirmed objects are sent again.
Any refusal or connection problem raises `NetworkError`, which the worker retries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.presentation import build_context

from common.errors import NetworkError
from pacs_bridge.service.config import DestinationConfig
from pacs_bridge.service.scp import set_nodelay

log = logging.getLogger("radassist.bridge.sender")

OnSent = Callable[[str], None]


def _ok_store_status(status: Dataset | None) -> tuple[bool, int | None]:
    if status is None or "Status" not in status:
        return False, None
    code = int(status.Status)
    # 0x0000 success; 0xB000, 0xB006, 0xB007 warnings (stored, possibly coerced)
    return code == 0x0000 or code in (0xB000, 0xB006, 0xB007), code


class DimseSender:
    def __init__(self, cfg: DestinationConfig, *, timeout: float = 30.0) -> None:
        self.cfg = cfg
        self.timeout = timeout
        self.name = f"dimse:{cfg.ae_title}@{cfg.host}:{cfg.port}"

    def send(self, datasets: Sequence[Dataset], on_sent: OnSent) -> None:
        if not datasets:
            return
        ae = AE(ae_title=self.cfg.calling_ae_title)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout
        contexts = {}
        for ds in datasets:
            ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
            syntaxes = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
            if ts and ts not in syntaxes:
                syntaxes.insert(0, ts)
            contexts.setdefault(str(ds.SOPClassUID), syntaxes)
        ae.requested_contexts = [build_context(sop, ts) for sop, ts in contexts.items()]
        assoc = ae.associate(
            self.cfg.host,
            self.cfg.port,
            ae_title=self.cfg.ae_title,
            evt_handlers=[(evt.EVT_CONN_OPEN, set_nodelay)],
        )
        if not assoc.is_established:
            raise NetworkError(self.name, "association refused or peer unreachable")
        try:
            for ds in datasets:
                try:
                    status = assoc.send_c_store(ds)
                except (ValueError, AttributeError, RuntimeError) as exc:
                    raise NetworkError(self.name, f"C-STORE not possible: {exc}") from exc
                ok, code = _ok_store_status(status)
                if not ok:
                    what = "no response" if code is None else f"status 0x{code:04X}"
                    raise NetworkError(self.name, f"C-STORE refused ({what})")
                on_sent(str(ds.SOPInstanceUID))
        finally:
            if assoc.is_established:
                assoc.release()


    def echo(self, timeout: float = 5.0) -> None:
        """C-ECHO the destination (a reachability check for /health); `NetworkError` if not."""
        from pynetdicom.sop_class import Verification

        ae = AE(ae_title=self.cfg.calling_ae_title)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
        ae.connection_timeout = timeout
        ae.add_requested_context(Verification)
        assoc = ae.associate(self.cfg.host, self.cfg.port, ae_title=self.cfg.ae_title)
        if not assoc.is_established:
            raise NetworkError(self.name, "C-ECHO: association refused or peer unreachable")
        try:
            status = assoc.send_c_echo()
        finally:
            if assoc.is_established:
                assoc.release()
        if status is None or int(getattr(status, "Status", -1)) != 0x0000:
            raise NetworkError(self.name, "C-ECHO not answered with success")


class StowSender:
    def __init__(self, cfg: DestinationConfig, *, timeout: float = 30.0) -> None:
        self.cfg = cfg
        self.timeout = timeout
        self.name = f"stow:{cfg.url}"

    def send(self, datasets: Sequence[Dataset], on_sent: OnSent) -> None:
        if not datasets:
            return
        from dicomweb_client.api import DICOMwebClient

        client = DICOMwebClient(url=self.cfg.url)
        for ds in datasets:  # one object per request: a partial failure is attributable
            try:
                response = client.store_instances([ds])
            except Exception as exc:  # requests.HTTPError, ConnectionError, ...
                raise NetworkError(self.name, f"STOW-RS failed: {exc}") from exc
            failed = getattr(response, "FailedSOPSequence", None)
            if failed:
                raise NetworkError(self.name, "STOW-RS refused the object (FailedSOPSequence)")
            on_sent(str(ds.SOPInstanceUID))


    def echo(self, timeout: float = 5.0) -> None:
        """An HTTP request to the DICOMweb root: any answer but a 5xx counts as reachable."""
        import requests

        try:
            response = requests.get(self.cfg.url, timeout=timeout)
        except requests.RequestException as exc:
            raise NetworkError(self.name, f"unreachable ({type(exc).__name__})") from exc
        if response.status_code >= 500:
            raise NetworkError(self.name, f"answers HTTP {response.status_code}")


def make_sender(cfg: DestinationConfig) -> DimseSender | StowSender:
    return DimseSender(cfg) if cfg.kind == "dimse" else StowSender(cfg)
