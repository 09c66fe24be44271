"""C-STORE throughput of the bridge vs Orthanc vs dcmtk's storescp, and result latency.

One run, all on loopback, TCP_NODELAY on every side: a 200-instance CT study (pydicom's
CT_small with new UIDs and small pixel data) is sent on one association by two senders
(dcmtk storescu and a pynetdicom SCU) into each receiver, `--repeats` times with fresh
UIDs; the table shows the median instances/s and the bridge/Orthanc ratio. The bridge
runs as a real subprocess (`radassist bridge serve`) and fsyncs every instance (file and
folder) before its ack; storescp writes without fsync; Orthanc stores file + SQLite index.
Then: the time from the last acknowledged instance to the SR being queryable in Orthanc
(includes the configured inactivity timeout, shown separately).

    .venv/bin/python bench/bridge.py [--instances 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from fixtures_bridge import BridgeProcess, make_study, store, write_config, write_files  # noqa: E402
from fixtures_orthanc import free_port, run_orthanc  # noqa: E402

INACTIVITY = 1.0


def real_pipeline_available() -> tuple[bool, str]:
    if importlib.util.find_spec("imaging.pipeline") is None:
        return False, "imaging.pipeline missing"
    weights = Path(os.environ.get("RADASSIST_WEIGHTS", REPO / "weights")) / "models" / "model.pt"
    if not weights.exists():
        return False, f"{weights} missing"
    try:
        import imaging

        if not hasattr(imaging, "analyze"):
            return False, "imaging.analyze missing"
    except Exception as exc:  # noqa: BLE001
        return False, f"imaging import failed ({type(exc).__name__})"
    return True, "imaging.pipeline:report_objects"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def storescu(port: int, aec: str, files: list[Path]) -> float:
    env = {**os.environ, "TCP_NODELAY": "1"}
    t = time.perf_counter()
    subprocess.run(
        ["storescu", "-aet", "BENCHSCU", "-aec", aec, "127.0.0.1", str(port), *map(str, files)],
        check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    return len(files) / (time.perf_counter() - t)


def pynetdicom_scu(port: int, aec: str, files: list[Path]) -> float:
    t = time.perf_counter()
    statuses = store(port, files, called=aec, calling="BENCHSCU")
    rate = len(files) / (time.perf_counter() - t)
    assert statuses == [0] * len(files), "a store failed"
    return rate


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if not shutil.which("storescp") or not shutil.which("storescu"):
        print("dcmtk (storescp/storescu) not installed", file=sys.stderr)
        return 2
    use_real, why = real_pipeline_available()
    analyzer = "imaging.pipeline:report_objects" if use_real else (
        "fixtures_bridge:transport_report_objects"
    )
    work = Path(tempfile.mkdtemp(prefix="bench-bridge-"))
    procs: list = []
    try:
        with run_orthanc(work / "orthanc") as orthanc:
            cfg = write_config(
                work / "bridge", dicom_port=free_port(), inactivity=INACTIVITY,
                analyzer=analyzer,
                destination={"kind": "dimse", "ae_title": orthanc.aet,
                             "port": orthanc.dicom_port},
            )
            bridge = BridgeProcess(cfg).start()
            procs.append(bridge)
            scp_port = free_port()
            (work / "storescp").mkdir()
            storescp = subprocess.Popen(
                ["storescp", "-aet", "STORESCP", "-od", str(work / "storescp"), str(scp_port)],
                env={**os.environ, "TCP_NODELAY": "1"},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            time.sleep(0.5)
            receivers = {
                "bridge": (bridge.dicom_port, "BRIDGE", bridge.proc.pid),
                "Orthanc": (orthanc.dicom_port, orthanc.aet, orthanc.process.pid),
                "storescp": (scp_port, "STORESCP", storescp.pid),
            }
            senders = {"storescu": storescu, "pynetdicom": pynetdicom_scu}
            rates: dict[tuple[str, str], list[float]] = {}
            cpu: dict[tuple[str, str], list[float]] = {}
            latencies, studies = [], []
            for rep in range(args.repeats):
                for sname, send in senders.items():
                    for rname, (port, aec, pid) in receivers.items():
                        seed = f"bench-{rep}-{sname}-{rname}-{time.time()}"
                        datasets = make_study(args.instances, seed=seed)
                        files = write_files(datasets, work / "src" / seed)
                        c0 = cpu_seconds(pid)
                        rates.setdefault((sname, rname), []).append(send(port, aec, files))
                        cpu.setdefault((sname, rname), []).append(
                            (cpu_seconds(pid) - c0) / len(files) * 1000
                        )
                        if rname == "bridge":
                            studies.append(datasets[0].StudyInstanceUID)
                            latencies.append(wait_for_sr(orthanc, studies[-1], time.perf_counter()))
            storescp.terminate()
            storescp.wait()
            print_table(args, rates, cpu, latencies, use_real, why)
            bridge.stop()
    finally:
        for p in procs:
            p.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def wait_for_sr(orthanc, study_uid: str, t_last: float, timeout: float = 300.0) -> float:
    """Seconds from the last ack to the SR being found in Orthanc (REST /tools/find)."""
    while time.perf_counter() - t_last < timeout:
        found = orthanc.request("POST", "/tools/find", {
            "Level": "Instance", "Query": {"StudyInstanceUID": study_uid, "Modality": "SR"},
        })
        if found:
            return time.perf_counter() - t_last
        time.sleep(0.02)
    raise TimeoutError("SR never arrived in Orthanc")


def print_table(args, rates, cpu, latencies, use_real: bool, why: str) -> None:
    n = args.instances
    recv = ("bridge", "Orthanc", "storescp")
    print(f"\nC-STORE of a {n}-instance CT study, one association, loopback, TCP_NODELAY; "
          f"median of {args.repeats} runs (instances/s; receiver CPU ms per instance)\n")
    print("| sender     | bridge | Orthanc | storescp | bridge/Orthanc (paired runs) "
          "| CPU ms/inst bridge | Orthanc | storescp |")
    print("|------------|-------:|--------:|---------:|-----------------------------:"
          "|-------------------:|--------:|---------:|")
    for sname in ("storescu", "pynetdicom"):
        med = {r: statistics.median(rates[(sname, r)]) for r in recv}
        ratios = [b / o for b, o in zip(rates[(sname, "bridge")], rates[(sname, "Orthanc")],
                                        strict=True)]
        c = {r: statistics.median(cpu[(sname, r)]) for r in recv}
        spread = f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
        print(f"| {sname:<10} | {med['bridge']:6.0f} | {med['Orthanc']:7.0f} | "
              f"{med['storescp']:8.0f} | {spread:>28} | {c['bridge']:18.2f} | "
              f"{c['Orthanc']:7.2f} | {c['storescp']:8.2f} |")
    analyzer = "real pipeline (imaging.pipeline:report_objects)" if use_real else (
        f"transport test analyzer (highdicom SR + SC; real pipeline not used: {why})"
    )
    lat = statistics.median(latencies)
    print(f"\nlast instance -> SR in Orthanc: median {lat:.2f} s "
          f"(min {min(latencies):.2f}, max {max(latencies):.2f}, n={len(latencies)}); "
          f"includes the {INACTIVITY:g} s inactivity timeout -> {lat - INACTIVITY:.2f} s of work")
    print(f"analyzer: {analyzer}")
    print(f"cpu: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    sys.exit(main())
