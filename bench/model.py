"""Speed of our encoder vs a MONAI DenseNet121 (2D, 1 channel, 224x224), same run, 2 threads.

Each network runs in its own subprocess (so peak RSS is its own), alternating over
`--rounds` rounds; the table shows medians over rounds. Also: end-to-end milliseconds per
radiograph from DICOM bytes to `Analysis` (ingest_bytes + imaging.analyze), p50.

    .venv/bin/python bench/model.py [--rounds 2] [--weights weights/]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CR = REPO.parent / "shared/data/dev/dicom/conformance/fo-dicom/CR-MONO1-10-chest"


def _measure(kind: str, weights: str | None, dicom: str) -> dict:
    import resource

    import numpy as np
    import torch

    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True, warn_only=True)
    t0 = time.perf_counter()
    if kind == "ours":
        from imaging.model import get_model

        model = get_model(weights)

        def run(x):
            return model.predict(x)
    else:
        from monai.networks.nets import DenseNet121

        net = DenseNet121(spatial_dims=2, in_channels=1, out_channels=15).eval()

        def run(x):
            with torch.no_grad():
                return net(x)
    load_s = time.perf_counter() - t0
    g = torch.Generator().manual_seed(0)
    x1 = torch.rand(1, 1, 224, 224, generator=g)
    x16 = torch.rand(16, 1, 224, 224, generator=g)
    for _ in range(3):
        run(x1)
    lat = []
    for _ in range(30):
        t = time.perf_counter()
        run(x1)
        lat.append((time.perf_counter() - t) * 1000)
    run(x16)
    thr = []
    for _ in range(4):
        t = time.perf_counter()
        run(x16)
        thr.append(16 / (time.perf_counter() - t))
    out = {"load_s": load_s, "p50_ms": float(np.percentile(lat, 50)),
           "p95_ms": float(np.percentile(lat, 95)), "img_per_s": float(np.median(thr))}
    if kind == "ours" and dicom:
        import imaging
        from pacs_bridge.ingest import ingest_bytes

        data = Path(dicom).read_bytes()
        imaging.analyze(ingest_bytes("bench.dcm", data).studies[0])
        e2e = []
        for _ in range(15):
            t = time.perf_counter()
            imaging.analyze(ingest_bytes("bench.dcm", data).studies[0])
            e2e.append((time.perf_counter() - t) * 1000)
        out["e2e_p50_ms"] = float(np.percentile(e2e, 50))
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--dicom", default=str(DEFAULT_CR), help="radiograph for the e2e timing")
    ap.add_argument("--one", choices=("ours", "densenet121"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(_measure(args.one, args.weights, args.dicom)))
        return 0
    env = {**os.environ, "OMP_NUM_THREADS": "2", "RADASSIST_THREADS": "2"}
    results: dict[str, list[dict]] = {"ours": [], "densenet121": []}
    for _ in range(args.rounds):
        for kind in results:
            cmd = [sys.executable, __file__, "--one", kind, "--dicom", args.dicom]
            if args.weights:
                cmd += ["--weights", args.weights]
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            results[kind].append(json.loads(out.stdout.strip().splitlines()[-1]))

    import numpy as np

    def med(kind, key):
        vals = [r[key] for r in results[kind] if key in r]
        return float(np.median(vals)) if vals else float("nan")

    print(f"load average before/after: {os.getloadavg()[0]:.1f} (2 cores, shared)")
    print("| network | load s | p50 ms (batch 1) | p95 ms (batch 1) | img/s (batch 16) "
          "| peak RSS MB | e2e ms/radiograph p50 |")
    print("|---|---|---|---|---|---|---|")
    names = {"ours": "ours: MONAI NetAdapter(Lite0) + heads + projection, "
                     "as the TorchScript runtime",
             "densenet121": "MONAI DenseNet121 (2D, 1 ch, 224²)"}
    for kind in results:
        e2e = med(kind, "e2e_p50_ms")
        print(f"| {names[kind]} | {med(kind, 'load_s'):.2f} | {med(kind, 'p50_ms'):.1f} | "
              f"{med(kind, 'p95_ms'):.1f} | {med(kind, 'img_per_s'):.1f} | "
              f"{med(kind, 'peak_rss_mb'):.0f} | {'-' if e2e != e2e else f'{e2e:.1f}'} |")
    ratio = med("ours", "img_per_s") / med("densenet121", "img_per_s")
    lat_ratio = med("densenet121", "p50_ms") / med("ours", "p50_ms")
    print(f"\nthroughput ratio ours/DenseNet121: {ratio:.2f}x; batch-1 latency ratio "
          f"DenseNet121/ours: {lat_ratio:.2f}x; rounds: {args.rounds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
