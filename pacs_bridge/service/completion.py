"""Study-complete detection: a study is complete once no instance arrived for a while.

DICOM has no "end of study" message, so an inactivity timeout per study is the usual
rule. The clock lives in the journal (`last_instance_at`, reset by every instance and
by a restart), so a large series still arriving is never analysed half-way, and a
restarted bridge gives an interrupted study a full new window.
"""

from __future__ import annotations

import logging
import time

from pacs_bridge.service.journal import QUEUED, RECEIVING, Journal
from pacs_bridge.service.receive import short_uid

log = logging.getLogger("radassist.bridge.completion")


class CompletionDetector:
    def __init__(self, journal: Journal, inactivity_seconds: float) -> None:
        self.journal = journal
        self.inactivity_seconds = inactivity_seconds

    def check(self, now: float | None = None) -> list[str]:
        """Queue every study idle for the timeout; returns the UIDs queued now."""
        now = time.time() if now is None else now
        queued = []
        for uid in self.journal.due_for_completion(now - self.inactivity_seconds):
            note = f"no new instance for {self.inactivity_seconds:g} s"
            if self.journal.transition(uid, QUEUED, expect=(RECEIVING,), note=note, now=now):
                log.info("study %s complete (%s)", short_uid(uid), note)
                queued.append(uid)
        return queued
