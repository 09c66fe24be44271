"""Logs without patient data: library warnings withheld, UIDs replaced by short tags.

Libraries word their warnings with the values they were handed: highdicom's person-name
format warning quoted a patient name into the bridge's log. Rather than auditing every
library's messages, the bridge captures Python warnings into logging and keeps only their
category and origin, and rewrites anything shaped like a DICOM UID (the DICOMweb client logs
request URLs with Study UIDs) into the same non-reversible tag `short_uid` gives.
"""

from __future__ import annotations

import logging
import re

from pacs_bridge.service.receive import short_uid

_UID = re.compile(r"(?<![\w.])(?:[0-2])(?:\.(?:0|[1-9]\d*)){3,}(?!\w|\.\d)")


def scrub_uids(text: str) -> str:
    return _UID.sub(lambda m: f"uid:{short_uid(m.group(0))}", text)


class PrivacyFilter(logging.Filter):
    """Attach to a handler: every record it emits is scrubbed first (see module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "py.warnings":
            try:
                text = record.getMessage()
            except Exception:  # noqa: BLE001
                text = ""
            category = "warning"
            match = re.search(r"(\w+Warning)", text)
            if match:
                category = match.group(1)
            origin = re.search(r"site-packages/([\w]+)", text)
            where = origin.group(1) if origin else "a library"
            record.msg = f"{category} from {where} (text withheld: it may quote patient data)"
            record.args = ()
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is dropped, not raised
            return False
        record.msg, record.args = scrub_uids(message), ()
        if record.exc_text:
            record.exc_text = scrub_uids(record.exc_text)
        return True


def install(handler: logging.Handler | None = None) -> None:
    """Capture warnings into logging and scrub every handler of the root logger."""
    logging.captureWarnings(True)
    handlers = [handler] if handler is not None else logging.getLogger().handlers
    for h in handlers:
        if not any(isinstance(f, PrivacyFilter) for f in h.filters):
            h.addFilter(PrivacyFilter())
    # these log full request URLs and dataset values at INFO/DEBUG
    for name in ("dicomweb_client", "highdicom", "pynetdicom"):
        logging.getLogger(name).setLevel(max(logging.getLogger(name).level, logging.WARNING))
