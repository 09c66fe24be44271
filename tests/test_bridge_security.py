"""The bridge under outages and hostile peers: delivery after a destination outage, access
control (called AE, AE allow-list, IP allow-list, mutual TLS against dcmtk), audit records,
retention, operator commands, metrics, and no patient data in logs or spool metadata.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from fixtures_bridge import (  # noqa: F401 (the `bridges` fixture)
    BridgeProcess,
    bridges_fixture,
    make_study,
    store,
    write_config,
    write_files,
)
from fixtures_orthanc import ORTHANC_BIN, free_port, run_orthanc

from pacs_bridge.service.audit import read_records
from pacs_bridge.service.config import load_config
from pacs_bridge.service.service import BridgeService
from radassist_cli.main import main as cli

pytestmark = pytest.mark.orthanc




def _events(svc: BridgeService) -> list[str]:
    return [r["EventIdentification"]["radassist_event"]
            for r in read_records(svc.cfg.storage.audit_path)]


def _health(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def _wait(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached in {timeout} s")


# -- access control and audit -------------------------------------------------------------------

def test_called_ae_and_ip_allow_list_refuse_and_audit(bridges):
    svc, _ = bridges(allowed=["TESTSCU"])
    datasets = make_study(2, seed="acl")
    with pytest.raises(ConnectionError, match="refused"):
        store(svc.scp.port, datasets, called="WHATEVER")
    with pytest.raises(ConnectionError, match="refused"):
        store(svc.scp.port, datasets, calling="STORESCU")
    assert store(svc.scp.port, datasets) == [0, 0]
    events = _events(svc)
    assert events.count("association_refused") == 2
    assert "association" in events
    receipt = _wait(lambda: [r for r in read_records(svc.cfg.storage.audit_path)
                             if r["EventIdentification"]["radassist_event"] == "receipt"],
                    what="receipt audit record")
    (obj,) = receipt[0]["ParticipantObjectIdentification"]
    assert obj["ParticipantObjectDetail"]["instances"] == 2
    assert datasets[0].StudyInstanceUID not in json.dumps(receipt)  # a tag, not the UID
    requestor = receipt[0]["ActiveParticipant"][0]
    assert requestor["UserID"] == "TESTSCU" and requestor["NetworkAccessPointID"] == "127.0.0.1"


def test_peer_address_not_on_the_allow_list_is_refused(bridges):
    from dataclasses import replace

    from pacs_bridge.service.scp import StorageScp

    svc, _ = bridges()
    assert svc.scp.refusal_reason("TESTSCU", "BRIDGE", "127.0.0.1") is None
    # a second listener whose IP allow-list does not hold loopback
    scp = StorageScp(replace(svc.cfg.scp, allowed_hosts=("10.0.0.0/8",), port=0),
                     svc.receiver, svc.audit)
    scp.start()
    try:
        with pytest.raises(ConnectionError, match="refused"):
            store(scp.port, make_study(1, seed="ip"))
    finally:
        scp.stop()
    refused = [r for r in read_records(svc.cfg.storage.audit_path)
               if r["EventIdentification"]["radassist_event"] == "association_refused"]
    assert refused and "not on the allow-list" in (
        refused[-1]["EventIdentification"]["EventOutcomeDescription"])


@pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk storescu not installed")
def test_dcmtk_storescu_with_a_wrong_called_ae_is_refused(bridges, tmp_path):
    svc, _ = bridges()
    files = write_files(make_study(1, seed="dcmtk-aec"), tmp_path / "f")
    bad = subprocess.run(["storescu", "-aet", "STORESCU", "-aec", "WHATEVER", "127.0.0.1",
                          str(svc.scp.port), str(files[0])], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode != 0 and "Called AE Title Not Recognized" in (bad.stdout + bad.stderr)
    good = subprocess.run(["storescu", "-aet", "STORESCU", "-aec", "BRIDGE", "127.0.0.1",
                           str(svc.scp.port), str(files[0])], capture_output=True, text=True,
                          timeout=60)
    assert good.returncode == 0, good.stderr


def _certificates(folder: Path) -> dict[str, Path]:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write(stem: str, key, cert) -> None:
        (folder / f"{stem}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        (folder / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("radassist test CA"))
          .issuer_name(name("radassist test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now)
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False,
                                       False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    write("ca", ca_key, ca)
    for stem, san in (("server", x509.IPAddress(ipaddress.ip_address("127.0.0.1"))),
                      ("client", x509.DNSName("storescu.test"))):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(name(f"radassist {stem}"))
                .issuer_name(ca.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now)
                .not_valid_after(now + dt.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([san]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        write(stem, key, cert)
    return {p.stem + p.suffix: p for p in folder.iterdir()}


@pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk storescu not installed")
def test_mutual_tls_against_dcmtk_storescu(bridges, tmp_path):
    certs = _certificates(tmp_path / "tls")
    tls = f"""
[scp.tls]
certificate = "{certs['server.crt']}"
private_key = "{certs['server.key']}"
ca_certificates = "{certs['ca.crt']}"
require_client_certificate = true
"""
    cfg_path = write_config(tmp_path / "tls-bridge", dicom_port=0)
    text = cfg_path.read_text().replace("[spool]", tls + "\n[spool]", 1)
    cfg_path.write_text(text)
    svc = BridgeService(load_config(cfg_path))
    svc.start()
    try:
        files = write_files(make_study(1, seed="tls"), tmp_path / "f")
        base = ["storescu", "-aet", "STORESCU", "-aec", "BRIDGE", "-to", "20"]
        target = ["127.0.0.1", str(svc.scp.port), str(files[0])]
        mutual = subprocess.run(
            [*base, "+tls", str(certs["client.key"]), str(certs["client.crt"]), "-pw",
             "+cf", str(certs["ca.crt"]), *target], capture_output=True, text=True, timeout=60)
        assert mutual.returncode == 0, mutual.stdout + mutual.stderr
        anonymous = subprocess.run([*base, "+tla", "+cf", str(certs["ca.crt"]), *target],
                                   capture_output=True, text=True, timeout=60)
        assert anonymous.returncode != 0  # no client certificate: refused in the handshake
        plain = subprocess.run([*base, *target], capture_output=True, text=True, timeout=60)
        assert plain.returncode != 0  # plain TCP to a TLS listener
        _wait(lambda: svc.journal.get(str(make_study(1, seed="tls")[0].StudyInstanceUID)),
              what="the TLS-delivered study in the journal")
    finally:
        svc.stop()


# -- outages, operator commands, health and metrics --------------------------------------------

@pytest.mark.skipif(not Path(ORTHANC_BIN).exists(), reason="Orthanc is not installed")
def test_destination_outage_then_delivery_exactly_once(tmp_path, monkeypatch):
    """The PACS is down when results are ready and for a while after: the bridge keeps
    trying (no attempt limit), /health says degraded, and once the PACS is back the
    results arrive exactly once, analysed once."""
    analyses = tmp_path / "analyses.log"
    monkeypatch.setenv("BRIDGE_TEST_ANALYSIS_LOG", str(analyses))
    with run_orthanc(tmp_path / "pacs") as pacs:
        config = pacs.workdir / "orthanc.json"
        destination = {"kind": "dimse", "ae_title": pacs.aet, "port": pacs.dicom_port}
        cfg = write_config(tmp_path / "b", dicom_port=0, destination=destination,
                           max_attempts=2, backoff=0.2, backoff_max=1.0)
        svc = BridgeService(load_config(cfg))
        svc.start()
        pacs.process.terminate()
        pacs.process.wait(timeout=10)
        restarted = None
        datasets = make_study(3, seed="outage")
        uid = datasets[0].StudyInstanceUID
        try:
            assert store(svc.scp.port, datasets) == [0, 0, 0]
            _wait(lambda: (svc.journal.get(uid) or 0) and svc.journal.get(uid).attempts >= 4,
                  what="several failed delivery attempts")
            code, health = _health(svc.http.port)
            assert code == 503 and health["status"] == "degraded"
            assert any("destination unreachable" in p for p in health["problems"])
            assert svc.journal.get(uid).state == "sending"  # more than max_attempts: not failed
            restarted = subprocess.Popen([ORTHANC_BIN, str(config)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            rec = _wait(lambda: svc.journal.get(uid).state == "sent" and svc.journal.get(uid),
                        what="delivery after the outage")
            assert _health(svc.http.port)[0] == 200
            with urllib.request.urlopen(f"http://127.0.0.1:{svc.http.port}/metrics") as r:
                metrics = r.read().decode()
            stored = sorted(i["MainDicomTags"]["SOPInstanceUID"]
                            for i in pacs.study_instances(uid))
        finally:
            svc.stop()
            if restarted is not None:
                restarted.kill()
                restarted.wait()
        assert analyses.read_text().splitlines() == [uid]
        assert stored == sorted(rec.result_uids)
        # counters are per process (other tests of this run count too)
        received = re.search(r"^radassist_instances_received_total (\S+)$", metrics, re.M)
        assert received and float(received.group(1)) >= 3
        assert "radassist_send_errors_total" in metrics
        assert "export" in _events(svc)


def test_failed_study_listed_retried_and_resent_by_command(bridges, capsys):
    down = {"kind": "dimse", "ae_title": "NOBODY", "port": free_port()}
    svc, cfg = bridges(destination=down, delivery_max_age_hours=0.0003)  # gives up after ~1 s
    datasets = make_study(2, seed="retry-cmd")
    uid = datasets[0].StudyInstanceUID
    assert store(svc.scp.port, datasets) == [0, 0]
    _wait(lambda: svc.journal.get(uid) and svc.journal.get(uid).state == "failed",
          what="failure after the age limit")
    assert cli(["bridge", "failed", "--config", str(cfg)]) == 0
    assert uid in capsys.readouterr().out
    assert cli(["bridge", "retry", "--config", str(cfg), uid]) == 0
    rec = svc.journal.get(uid)
    assert rec.state in ("sending", "failed") and any(
        t.note == "retry requested by an operator" for t in svc.journal.transitions(uid))
    assert cli(["bridge", "retry", "--config", str(cfg), "1.2.3.4"]) == 2  # not failed: refused
    _wait(lambda: svc.journal.get(uid).state == "failed", what="failing again")
    assert cli(["bridge", "resend", "--config", str(cfg), uid]) == 0


def test_failed_studies_requeued_on_restart_when_configured(tmp_path):
    down = {"kind": "dimse", "ae_title": "NOBODY", "port": free_port()}
    extra_cfg = dict(destination=down, delivery_max_age_hours=0.0003)
    cfg = write_config(tmp_path / "b", dicom_port=0, **extra_cfg)
    svc = BridgeService(load_config(cfg))
    svc.start()
    datasets = make_study(2, seed="requeue")
    uid = datasets[0].StudyInstanceUID
    try:
        store(svc.scp.port, datasets)
        _wait(lambda: svc.journal.get(uid) and svc.journal.get(uid).state == "failed",
              what="failure")
    finally:
        svc.stop()
    text = cfg.read_text().replace("[analysis]", "[analysis]\nrequeue_failed_on_restart = true")
    cfg.write_text(text)
    svc = BridgeService(load_config(cfg))
    try:
        counts = svc.recover()
        assert counts["failed_requeued"] == 1
        assert svc.journal.get(uid).state == "sending"
    finally:
        svc.journal.close()


def test_retention_purges_finished_studies_and_keeps_their_record(bridges):
    svc, _ = bridges(destination={"kind": "dimse", "ae_title": "NOBODY", "port": free_port()},
                    delivery_max_age_hours=0.0003)
    datasets = make_study(2, seed="retention")
    uid = datasets[0].StudyInstanceUID
    store(svc.scp.port, datasets)
    _wait(lambda: svc.journal.get(uid) and svc.journal.get(uid).state == "failed",
          what="a finished study")
    assert svc.spool.instance_files(uid)
    assert svc.purge(now=time.time()) == 0  # younger than the retention period
    assert svc.purge(now=time.time() + 169 * 3600) == 1
    assert not svc.spool.study_dir(uid).exists() and not svc.spool.result_dir(uid).exists()
    assert svc.journal.get(uid).purged_at > 0 and svc.journal.get(uid).state == "failed"


# -- no patient data in logs, caches or spool metadata -------------------------------------------

MARKERS = ("SMITHSON MARKERNAME", "MARKERNAME", "MRN-777-MARKER", "19010203")


def test_no_patient_data_in_logs_or_spool_metadata(tmp_path):
    datasets = make_study(3, seed="phi-markers")
    for ds in datasets:
        ds.PatientName = "SMITHSON MARKERNAME"  # one component: highdicom warns, quoting it
        ds.PatientID = "MRN-777-MARKER"
        ds.PatientBirthDate = "19010203"
    uid = datasets[0].StudyInstanceUID
    with run_orthanc(tmp_path / "pacs") as pacs:
        cfg = write_config(tmp_path / "b", dicom_port=0, destination={
            "kind": "dimse", "ae_title": pacs.aet, "port": pacs.dicom_port})
        proc = BridgeProcess(cfg).start()
        try:
            assert store(proc.dicom_port, datasets) == [0, 0, 0]
            proc.wait_state(uid, ["sent"])
        finally:
            proc.stop()
    log = proc.log()
    assert "UserWarning from highdicom (text withheld" in log  # the warning was there
    spool = proc.spool
    metadata = [proc.log_path, spool / "journal.sqlite", spool / "audit.jsonl",
                *spool.glob("journal.sqlite-*")]
    for path in metadata:
        if not path.exists():
            continue
        data = path.read_bytes()
        for marker in MARKERS:
            assert marker.encode() not in data, f"{marker} found in {path.name}"
    assert uid not in log  # UIDs appear as tags in the log


def test_spool_encrypted_at_rest_still_analyses_and_sends(tmp_path, monkeypatch):
    key = tmp_path / "spool.key"
    assert cli(["bridge", "keygen", str(key)]) == 0
    assert cli(["bridge", "keygen", str(key)]) == 2  # never overwritten
    with run_orthanc(tmp_path / "pacs") as pacs:
        cfg = write_config(tmp_path / "b", dicom_port=0, destination={
            "kind": "dimse", "ae_title": pacs.aet, "port": pacs.dicom_port})
        cfg.write_text(cfg.read_text().replace(
            "[spool]", f'[spool]\nencryption_key_file = "{key}"', 1))
        svc = BridgeService(load_config(cfg))
        svc.start()
        datasets = make_study(2, seed="sealed")
        for ds in datasets:
            ds.PatientName = "SEALED^MARKER"
        uid = datasets[0].StudyInstanceUID
        try:
            assert store(svc.scp.port, datasets) == [0, 0]
            _wait(lambda: svc.journal.get(uid) and svc.journal.get(uid).state == "sent",
                  what="delivery from an encrypted spool")
            files = svc.spool.instance_files(uid) + sorted(svc.spool.result_dir(uid).glob("*"))
            assert len(files) == 4
            for path in files:
                raw = path.read_bytes()
                assert b"DICM" not in raw and b"SEALED" not in raw
            assert len(pacs.study_instances(uid)) == 2
        finally:
            svc.stop()


def test_viewer_logins_are_audited_without_the_password(tmp_path):
    from pacs_bridge.service.audit import read_records
    from radassist_cli.cmd_demo import audited_login

    check = audited_login("reader", "s3cret-pass", tmp_path / "viewer.jsonl")
    assert check("reader", "s3cret-pass") is True
    assert check("reader", "guess") is False
    records = read_records(tmp_path / "viewer.jsonl")
    assert [r["EventIdentification"]["EventOutcomeIndicator"] for r in records] == [0, 4]
    assert all(r["EventIdentification"]["radassist_event"] == "user_login" for r in records)
    text = (tmp_path / "viewer.jsonl").read_text()
    assert "s3cret-pass" not in text and "guess" not in text
