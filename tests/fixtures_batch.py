"""A stand-in batch analyzer: the transport test's real SR/SC, a small note, no model.

Every call appends "<study uid> <pid>" to $BATCH_TEST_LOG (to count analyses and find the
worker to kill) and sleeps $BATCH_TEST_DELAY seconds (to be killed mid-task).
"""

from __future__ import annotations

import json
import os
import time

from fixtures_bridge import transport_report_objects

from imaging.pipeline import ReportOutputs


def transport_report_outputs(study, context=None) -> ReportOutputs:
    log_path = os.environ.get("BATCH_TEST_LOG")
    if log_path:
        with open(log_path, "a") as f:
            f.write(f"{study.study_instance_uid} {os.getpid()}\n")
    time.sleep(float(os.environ.get("BATCH_TEST_DELAY", "0") or 0))
    objects = transport_report_objects(study)
    note = {"study": study.study_instance_uid, "stand_in": True}
    return ReportOutputs(json.dumps(note, sort_keys=True), objects, "test-1")


def model_version() -> str:
    return "test-1"
