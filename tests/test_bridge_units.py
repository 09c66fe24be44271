"""Bridge building blocks without a network: config validation, journal, spool, routing."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from fixtures_bridge import make_study, write_files

from pacs_bridge.ingest import ingest
from pacs_bridge.service.completion import CompletionDetector
from pacs_bridge.service.config import BridgeConfigError, load_config, parse_config
from pacs_bridge.service.journal import (
    ANALYSING,
    QUEUED,
    RECEIVING,
    SENDING,
    Journal,
)
from pacs_bridge.service.routing import Router
from pacs_bridge.service.spool import Spool, safe_name

REPO = Path(__file__).resolve().parent.parent


def test_example_config_loads_and_paths_resolve_next_to_it():
    cfg = load_config(REPO / "bridge.example.toml")
    assert cfg.scp.ae_title == "RADASSIST"
    assert cfg.analysis.analyzer == "imaging.pipeline:report_objects"
    assert cfg.analysis.screen_decoder == "imaging.pixels:decode_frames"
    assert cfg.storage.spool_directory.is_absolute()
    assert cfg.storage.spool_directory.is_relative_to(REPO)
    assert cfg.destination is not None and cfg.destination.kind == "dimse"
    assert cfg.routing.rules and cfg.status_http.host == "127.0.0.1"


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"scp": {"port": 70000}}, "scp.port"),
        ({"scp": {"ae_title": "A" * 17}}, "AE title"),
        ({"analysis": {"analyzer": "no_colon"}}, "analysis.analyzer"),
        ({"analysis": {"screen_decoder": "no_colon"}}, "analysis.screen_decoder"),
        ({"destination": {"kind": "ftp"}}, "destination.kind"),
        ({"destination": {"kind": "dimse", "port": 104}}, "destination.ae_title"),
        ({"completion": {"inactivity_seconds": 0}}, "completion.inactivity_seconds"),
        ({"routing": {"rules": [{"action": "maybe"}]}}, "routing.rules[0].action"),
        ({"status_http": {"host": "0.0.0.0"}}, "loopback"),
        ({"scpp": {}}, "unknown section"),
    ],
)
def test_config_errors_name_the_key(raw, needle, tmp_path):
    with pytest.raises(BridgeConfigError) as err:
        parse_config(raw, base=tmp_path, source="bridge.toml")
    assert needle in str(err.value) and "bridge.toml" in str(err.value)


def test_missing_and_broken_config_files(tmp_path):
    with pytest.raises(BridgeConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[scp\nport = 1")
    with pytest.raises(BridgeConfigError, match="invalid TOML"):
        load_config(bad)


def test_journal_transitions_are_conditional_and_logged(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    assert j.note_instance("1.2.3", "1.2.3.1", now=100.0) == RECEIVING
    assert j.note_instance("1.2.3", "1.2.3.1", now=101.0) == RECEIVING  # duplicate: not counted
    assert j.get("1.2.3").instance_count == 1
    assert j.transition("1.2.3", QUEUED, expect=(RECEIVING,))
    assert not j.transition("1.2.3", QUEUED, expect=(RECEIVING,))  # repeat: no-op
    # a new instance before analysis reopens the study and restarts its clock
    assert j.note_instance("1.2.3", "1.2.3.2", now=200.0) == RECEIVING
    assert j.get("1.2.3").last_instance_at == 200.0
    assert j.transition("1.2.3", QUEUED, expect=(RECEIVING,))
    assert j.transition("1.2.3", ANALYSING, expect=(QUEUED,), attempts=1)
    # a crash during analysis: restart puts it back in the queue
    assert j.recover_after_restart(now=300.0)["requeued"] == 1
    assert j.get("1.2.3").state == QUEUED
    states = [t.to_state for t in j.transitions("1.2.3")]
    assert states == [RECEIVING, QUEUED, RECEIVING, QUEUED, ANALYSING, QUEUED]
    assert j.transition("1.2.3", ANALYSING, expect=(QUEUED,), attempts=2)
    assert j.transition("1.2.3", SENDING, expect=(ANALYSING,), result_uids=["9.9"])
    assert j.get("1.2.3").result_uids == ("9.9",)
    # an instance after analysis began is kept and counted as late, state unchanged
    assert j.note_instance("1.2.3", "1.2.3.3") == SENDING
    assert j.get("1.2.3").late_instances == 1


def test_completion_waits_for_inactivity(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    det = CompletionDetector(j, inactivity_seconds=5)
    j.note_instance("1.2.3", "1.2.3.1", now=100.0)
    j.note_instance("1.2.3", "1.2.3.2", now=103.0)  # every instance resets the clock
    assert det.check(now=107.0) == []
    assert det.check(now=108.5) == ["1.2.3"]
    assert j.get("1.2.3").state == QUEUED
    assert det.check(now=200.0) == []


def test_spool_is_atomic_and_recovers_partial_writes(tmp_path):
    spool = Spool(tmp_path / "spool")
    p = spool.store_instance("1.2.3", "1.2.3.4", b"DICM-bytes")  # no slots: tmp + rename
    assert p.read_bytes() == b"DICM-bytes" and p.parent.name == "1.2.3"
    leftover = p.parent / ".tmp-1.2.3.5.dcm.123"
    leftover.write_bytes(b"half")
    assert spool.instance_files("1.2.3") == [p]
    # slots: written ones are validated and filed, partial ones dropped, empty ones removed
    (spool.slots / "1.slot").write_bytes(b"complete")
    (spool.slots / "2.slot").write_bytes(b"compl")
    (spool.slots / "3.slot").write_bytes(b"")

    def validate(data: bytes):
        return ("1.2.3", "1.2.3.9") if data == b"complete" else None

    counts = spool.recover(validate)
    assert counts == {"partial_files_removed": 1, "slots_recovered": 1, "partial_slots_removed": 1}
    assert not leftover.exists() and not list(spool.slots.iterdir())
    assert (p.parent / "1.2.3.9.dcm").read_bytes() == b"complete"
    # with the background threads: written into a slot, acknowledged, then filed
    spool.start()
    try:
        deadline = time.monotonic() + 5
        while spool._free.qsize() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        q = spool.store_instance("1.2.4", "1.2.4.1", b"DICM-slot")
        spool.flush()
        assert q.read_bytes() == b"DICM-slot" and spool.instance_files("1.2.4") == [q]
    finally:
        spool.stop()
    # UIDs are not trusted as path components
    assert "/" not in safe_name("../../etc/passwd") and safe_name("1.2.3") == "1.2.3"


def test_routing_rules(tmp_path):
    cfg = parse_config(
        {"routing": {"default": "skip", "rules": [
            {"action": "skip", "modality": ["CT"], "body_part": ["HEAD"]},
            {"action": "analyse", "modality": ["CT", "CR"]},
        ]}},
        base=tmp_path,
    )
    router = Router(cfg.routing)
    datasets = make_study(2, seed="routing")
    study = ingest(write_files(datasets, tmp_path / "s")).studies[0]
    assert router.decide(study).analyse  # CT chest: rule 2
    for ds in datasets:
        ds.BodyPartExamined = "HEAD"
    head = ingest(write_files(datasets, tmp_path / "h")).studies[0]
    decision = router.decide(head)
    assert not decision.analyse and "rule 1" in decision.reason
    for ds in datasets:
        ds.Modality = "MR"
    mr = ingest(write_files(datasets, tmp_path / "m")).studies[0]
    assert not router.decide(mr).analyse and "default" in router.decide(mr).reason


def test_logs_scrub_uids_inside_spool_paths():
    """A typed error names its spool file, `<SOP Instance UID>.dcm`: the UID is a tag there too."""
    from pacs_bridge.service.log_privacy import scrub_uids

    sop = "1.2.826.0.1.3680043.8.498.29103878517107328248228050231695478959"
    text = scrub_uids(f"unreadable: /spool/studies/x/{sop}.dcm: frame 1's codestream, 1.2.3.4.")
    assert sop not in text and ".dcm: frame 1" in text and "1.2.3.4" not in text
    assert scrub_uids("v1.2.3.4 and 1.2.3.4.5x") == "v1.2.3.4 and 1.2.3.4.5x"


def test_set_aside_instances_leave_the_study_and_become_its_warning(tmp_path):
    """An instance the bridge set aside (its decoding killed the analysis) is kept in the
    spool, is no longer read, and the study the analyzer gets says so."""
    from pacs_bridge.service.analysis import load_study

    spool = Spool(tmp_path / "spool", use_slots=False)
    datasets = make_study(3, seed="set-aside")
    uid = str(datasets[0].StudyInstanceUID)
    for ds in datasets:
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        spool.store_instance(uid, str(ds.SOPInstanceUID), buf.getvalue())
    study, _ = load_study(spool, uid)
    assert study.warnings == () and sum(len(s.instances) for s in study.series) == 3
    kept = spool.set_aside(uid, f"{datasets[1].SOPInstanceUID}.dcm")
    assert kept.is_file() and kept.parent.name == "set_aside"
    study, _ = load_study(spool, uid)
    assert sum(len(s.instances) for s in study.series) == 2
    assert [(w.code, w.message.split(" ")[0]) for w in study.warnings] == [
        ("instances_set_aside", "1")]
    assert spool.size_bytes() > 0 and spool.remove_study(uid) > 0
    assert not kept.exists()
