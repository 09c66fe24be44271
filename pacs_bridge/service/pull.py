"""Query/retrieve one study from a PACS: C-FIND + C-MOVE / C-GET, or QIDO-RS + WADO-RS.

C-MOVE asks the PACS to send the study to an AE title (normally this bridge's listener,
which must be running and known to the PACS). C-GET and WADO-RS bring the instances back
on the same connection; they go through the same `Receiver` as C-STORE (validated,
fsynced to the spool, journalled), so the running service analyses them like any study.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from common.errors import NetworkError
from pacs_bridge.service.config import SourceConfig
from pacs_bridge.service.receive import Receiver, short_uid
from pacs_bridge.service.scp import IMAGE_STORAGE_CLASSES, set_nodelay

log = logging.getLogger("radassist.bridge.pull")


@dataclass(frozen=True)
class PullResult:
    study_uid: str
    via: str
    expected: int | None  # instances the PACS reports for the study
    received: int  # retrieved (C-MOVE: sub-operations the PACS completed)
    refused: int  # refused by the bridge or failed at the PACS


def _study_query(study_uid: str) -> Dataset:
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.StudyInstanceUID = study_uid
    return q


def _associate(ae: AE, src: SourceConfig, **kwargs) -> object:
    if not src.port or not src.ae_title:
        raise NetworkError("config", "[source] needs ae_title and port for DIMSE")
    assoc = ae.associate(
        src.host,
        src.port,
        ae_title=src.ae_title,
        evt_handlers=[(evt.EVT_CONN_OPEN, set_nodelay), *kwargs.pop("handlers", [])],
        **kwargs,
    )
    if not assoc.is_established:
        raise NetworkError(
            f"{src.ae_title}@{src.host}:{src.port}", "association refused or PACS unreachable"
        )
    return assoc


def find_study(src: SourceConfig, study_uid: str, calling_aet: str) -> int | None:
    """C-FIND at study level; returns the instance count, or raises if the study is absent."""
    ae = AE(ae_title=calling_aet)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = _associate(ae, src)
    q = _study_query(study_uid)
    q.NumberOfStudyRelatedInstances = ""
    found: list[Dataset] = []
    try:
        for status, ident in assoc.send_c_find(q, StudyRootQueryRetrieveInformationModelFind):
            if status is None or "Status" not in status:
                raise NetworkError(src.ae_title, "C-FIND: no response from the PACS")
            if status.Status in (0xFF00, 0xFF01) and ident is not None:
                found.append(ident)
            elif status.Status != 0x0000:
                raise NetworkError(src.ae_title, f"C-FIND failed (0x{status.Status:04X})")
    finally:
        assoc.release()
    if not found:
        raise NetworkError(src.ae_title, f"study {short_uid(study_uid)} not found on the PACS")
    n = found[0].get("NumberOfStudyRelatedInstances")
    return int(n) if n not in (None, "") else None


def pull_move(src: SourceConfig, study_uid: str, calling_aet: str) -> PullResult:
    """C-FIND, then C-MOVE to `src.move_destination` (the running bridge receives)."""
    expected = find_study(src, study_uid, calling_aet)
    ae = AE(ae_title=calling_aet)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = _associate(ae, src)
    completed = failed = 0
    final = None
    try:
        for status, _ident in assoc.send_c_move(
            _study_query(study_uid),
            src.move_destination,
            StudyRootQueryRetrieveInformationModelMove,
        ):
            if status is None or "Status" not in status:
                raise NetworkError(src.ae_title, "C-MOVE: no response from the PACS")
            final = status
    finally:
        assoc.release()
    if final is not None:
        completed = int(final.get("NumberOfCompletedSuboperations", 0) or 0)
        failed = int(final.get("NumberOfFailedSuboperations", 0) or 0)
        if final.Status not in (0x0000, 0xB000):
            raise NetworkError(
                src.ae_title,
                f"C-MOVE to {src.move_destination} ended with 0x{final.Status:04X} "
                f"({completed} sent, {failed} failed)",
            )
    return PullResult(study_uid, "c-move", expected, completed, failed)


def pull_get(src: SourceConfig, study_uid: str, calling_aet: str, receiver: Receiver) -> PullResult:
    """C-FIND, then C-GET: instances come back on this association into the spool."""
    expected = find_study(src, study_uid, calling_aet)
    ae = AE(ae_title=calling_aet)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    roles = []
    for sop in IMAGE_STORAGE_CLASSES:
        ae.add_requested_context(sop, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        roles.append(build_role(sop, scp_role=True))
    results = {"ok": 0, "refused": 0}

    def on_store(event: evt.Event) -> int:
        res = receiver.accept_bytes(
            event.encoded_dataset(),
            f"c-get:{src.ae_title}",
            sop_class_uid=str(event.context.abstract_syntax),
        )
        results["ok" if res.ok else "refused"] += 1
        return res.status

    assoc = _associate(ae, src, ext_neg=roles, handlers=[(evt.EVT_C_STORE, on_store)])
    final = None
    try:
        for status, _ident in assoc.send_c_get(
            _study_query(study_uid), StudyRootQueryRetrieveInformationModelGet
        ):
            if status is None or "Status" not in status:
                raise NetworkError(src.ae_title, "C-GET: no response from the PACS")
            final = status
    finally:
        assoc.release()
    if final is not None and final.Status not in (0x0000, 0xB000):
        raise NetworkError(src.ae_title, f"C-GET ended with 0x{final.Status:04X}")
    return PullResult(study_uid, "c-get", expected, results["ok"], results["refused"])


def dicomweb_client(url: str):
    from dicomweb_client.api import DICOMwebClient

    if not url:
        raise NetworkError("config", "[source] needs url for DICOMweb")
    return DICOMwebClient(url=url)


def pull_dicomweb(src: SourceConfig, study_uid: str, receiver: Receiver) -> PullResult:
    """QIDO-RS (by UID: this Orthanc does not decode percent-encoded wildcards), WADO-RS."""
    client = dicomweb_client(src.url)
    try:
        listed = client.search_for_instances(study_instance_uid=study_uid)
        if not listed:
            raise NetworkError(src.url, f"study {short_uid(study_uid)} not found (QIDO-RS)")
        datasets = client.retrieve_study(study_uid)
    except NetworkError:
        raise
    except Exception as exc:  # requests errors, HTTP status errors
        raise NetworkError(src.url, f"DICOMweb request failed: {exc}") from exc
    ok = refused = 0
    for ds in datasets:
        res = receiver.accept_dataset(ds, "wado-rs")
        ok, refused = ok + res.ok, refused + (not res.ok)
    log.info("pulled study %s by WADO-RS: %d ok, %d refused", short_uid(study_uid), ok, refused)
    return PullResult(study_uid, "dicomweb", len(listed), ok, refused)
