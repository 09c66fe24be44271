"""The weights bundle loads and runs with the network blocked (nothing is downloaded)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import numpy as np
import pytest
from fixtures_model import require_weights


@pytest.fixture(scope="module")
def weights_dir():
    return require_weights()

OFFLINE_SCRIPT = r"""
import socket, sys
def refuse(*a, **k):
    raise OSError("network blocked by test")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
import numpy as np, torch
from imaging.model import get_model
m = get_model(sys.argv[1])
p = m.predict(torch.rand(2, 1, 224, 224, generator=torch.Generator().manual_seed(0)))
t = m.encode_text(["Axial CT of the head showing an infarct.", "Chest radiograph: pneumonia."])
assert p.embedding.shape == (2, t.shape[1]) and np.allclose(np.linalg.norm(t, axis=1), 1, atol=1e-4)
assert np.allclose(p.region.sum(1), 1, atol=1e-4)
print("OK", m.version)
"""


def test_bundle_layout_and_metadata(weights_dir):
    size = (weights_dir / "models/model.pt").stat().st_size
    assert size <= 60 * 1024 * 1024, f"model.pt is {size / 1e6:.1f} MB"
    meta = json.loads((weights_dir / "configs/metadata.json").read_text())
    for key in ("version", "data_licences", "intended_use", "training", "metrics"):
        assert key in meta, key
    assert "not a medical device" in meta["intended_use"].lower()
    assert meta["training"]["data_manifest_sha1"]
    json.loads((weights_dir / "configs/inference.json").read_text())
    card = (weights_dir / "MODEL_CARD.md").read_text()
    assert "not a medical device" in card.lower()


def test_loads_and_runs_with_network_blocked(weights_dir, tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HOME": str(tmp_path),
           "PATH": "/usr/bin:/bin", "RADASSIST_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", OFFLINE_SCRIPT, str(weights_dir)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK" in out.stdout


def test_encode_text_matches_images_in_joint_space(weights_dir):
    from imaging.model import get_model

    m = get_model(weights_dir)
    t = m.encode_text(["chest radiograph", "axial MR of the brain"])
    assert t.dtype == np.float32 and t.shape == (2, m.embed_dim)
    assert not np.allclose(t[0], t[1])
    assert socket  # the subprocess test above is the offline guard
