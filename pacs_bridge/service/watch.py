"""Polling a DICOMweb PACS for studies the bridge has not seen, and pulling them.

QIDO-RS has no "added since" filter (StudyDate is the exam date, not the arrival date),
so each poll lists the studies (paged) and pulls those unknown to the journal and not
seen by an earlier poll. Results the bridge wrote back share their study's UID, so they
never look like a new study.
"""

from __future__ import annotations

import logging
import time

from common.errors import NetworkError
from pacs_bridge.service.audit import AuditLog, peer
from pacs_bridge.service.config import SourceConfig
from pacs_bridge.service.journal import Journal
from pacs_bridge.service.pull import PullResult, dicomweb_client, pull_dicomweb
from pacs_bridge.service.receive import Receiver, short_uid

log = logging.getLogger("radassist.bridge.watch")

_PAGE = 100
_STUDY_UID_TAG = "0020000D"


class Watcher:
    def __init__(self, src: SourceConfig, journal: Journal, receiver: Receiver,
                 audit: AuditLog | None = None) -> None:
        self.src = src
        self.journal = journal
        self.receiver = receiver
        self.audit = audit or AuditLog(None)

    def list_study_uids(self) -> list[str]:
        client = dicomweb_client(self.src.url)
        self.audit.record("query", participants=[peer(self.src.url, self.src.host,
                                                      requestor=False)],
                          detail="QIDO-RS study search")
        uids: list[str] = []
        offset = 0
        while True:
            try:
                page = client.search_for_studies(
                    fields=["StudyInstanceUID"], limit=_PAGE, offset=offset
                )
            except Exception as exc:
                raise NetworkError(self.src.url, f"QIDO-RS study search failed: {exc}") from exc
            for item in page:
                value = item.get(_STUDY_UID_TAG, {}).get("Value") or []
                if value:
                    uids.append(str(value[0]))
            if len(page) < _PAGE:
                return uids
            offset += len(page)

    def _seen_key(self, uid: str) -> str:
        return f"watch.seen.{uid}"

    def poll_once(self) -> list[PullResult]:
        """Pull every new study once; returns what was pulled (errors are logged, retried)."""
        pulled = []
        for uid in self.list_study_uids():
            if self.journal.get(uid) is not None or self.journal.get_value(self._seen_key(uid)):
                continue
            try:
                result = pull_dicomweb(self.src, uid, self.receiver)
            except NetworkError as exc:
                log.warning("watch: study %s not pulled (%s); next poll retries", short_uid(uid),
                            exc.message)
                continue
            self.journal.set_value(self._seen_key(uid), str(time.time()))
            pulled.append(result)
        self.journal.set_value("watch.last_check", str(time.time()))
        if pulled:
            log.info("watch: pulled %d new stud(ies)", len(pulled))
        return pulled
