"""The fast runtime (TorchScript + torch-only preprocessing) gives the MONAI / open_clip
network's numbers bit for bit, and a cold analysis never imports MONAI or open_clip."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from fixtures_model import require_weights

from imaging.model.preprocess import (
    load_jpeg,
    monai_to_input,
    monai_window,
    to_input,
    window,
)

SHAPES = [(224, 224), (100, 80), (512, 512), (2048, 1700), (300, 1024), (7, 3), (225, 224),
          (1, 500), (223, 224)]


@pytest.mark.parametrize("shape", SHAPES)
def test_preprocessing_equals_monai_transforms(shape):
    gray = np.random.default_rng(sum(shape)).random(shape, dtype=np.float32)
    assert torch.equal(to_input(gray), monai_to_input(gray))


def test_preprocessing_equals_monai_on_real_images(data_dir):
    images = sorted((data_dir / "medpix" / "images").glob("*.jpg"))[:12]
    assert images
    for path in images:
        gray = load_jpeg(path)
        assert torch.equal(to_input(gray), monai_to_input(gray)), path.name


@pytest.mark.parametrize("center, width", [(40, 400), (-600.5, 1500.25), (0.5, 1.0)])
def test_window_equals_monai_scale_intensity_range(center, width):
    hu = (np.random.default_rng(1).standard_normal((64, 48)) * 900).astype(np.float32)
    assert np.array_equal(window(hu, center, width), monai_window(hu, center, width))


@pytest.fixture(scope="module")
def runtime_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("runtime-cache")


@pytest.fixture(scope="module")
def models(runtime_cache):
    from imaging.model.loaded import RadAssistModel
    from imaging.model.runtime import RuntimeModel

    weights = require_weights()
    cache = runtime_cache
    mp = pytest.MonkeyPatch()
    mp.setenv("RADASSIST_CACHE", str(cache))
    said = []
    try:
        runtime = RuntimeModel(weights, progress=said.append)
    finally:
        mp.undo()
    assert said, "the first load exports and says so"
    return RadAssistModel(weights), runtime


def _real_batch(data_dir, n):
    paths = sorted((data_dir / "medpix" / "images").glob("*.jpg"))[:n]
    return torch.stack([to_input(load_jpeg(p)) for p in paths])


@pytest.mark.parametrize("n", [1, 5])
def test_runtime_predictions_are_the_eager_networks_bit_for_bit(models, data_dir, n):
    eager, runtime = models
    batch = _real_batch(data_dir, n)
    a, b = eager.predict(batch), runtime.predict(batch)
    for field in ("modality", "region", "plane", "findings", "embedding", "features"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert runtime.quality(b.embedding[0]) == eager.quality(a.embedding[0])


def test_runtime_text_embeddings_and_tokens_match_open_clip(models):
    eager, runtime = models
    texts = [
        "Chest radiograph: right lower lobe pneumonia.",
        "  axial   CT\tof the head &amp; neck &lt;contrast&gt; ",
        "T2 hyperintense lesion, Ã©dema",  # mojibake ftfy repairs
        "胸部X线片：右下肺炎",
        "word " * 200,  # longer than the context: cut the same way
        "x",
    ]
    assert torch.equal(runtime.tokenize(texts), eager.tokenizer(texts))
    assert np.array_equal(runtime.encode_text(texts), eager.encode_text(texts))


def test_runtime_gradcam_is_monai_gradcam_with_the_maximum_at_one(models, data_dir):
    eager, runtime = models
    x = _real_batch(data_dir, 1)
    for k in (0, 3):
        ours, monai = runtime.gradcam(x, k), eager.gradcam(x, k)
        assert ours.shape == (224, 224) and ours.max() == pytest.approx(1.0)
        assert np.allclose(ours, monai, atol=1e-5), float(np.abs(ours - monai).max())
    # against MONAI's raw map (before any scaling): the hot spot stays the hot spot
    from monai.visualize import GradCAM

    from imaging.model.loaded import _FindingLogits

    raw = GradCAM(nn_module=_FindingLogits(eager.visual).eval(),
                  target_layers="visual.encoder.net.features.0.head",
                  postprocessing=lambda t: t)
    with torch.enable_grad():
        r = raw(x=x.clone().requires_grad_(True), class_idx=0).detach().numpy()[0, 0]
    assert np.unravel_index(np.argmax(r), r.shape) == np.unravel_index(
        np.argmax(runtime.gradcam(x, 0)), r.shape)


def test_export_is_keyed_by_the_weights_file(tmp_path):
    from imaging.model.runtime import bundle_key

    weights = require_weights()
    copy = tmp_path / "bundle"
    shutil.copytree(weights, copy)
    assert bundle_key(copy) == bundle_key(weights)
    with open(copy / "models" / "model.pt", "ab") as fh:
        fh.write(b"\0")
    assert bundle_key(copy) != bundle_key(weights)


COLD = r"""
import sys
from pacs_bridge.ingest import ingest
from imaging.analyze import analyze
from imaging.notes import compose
from imaging.types import ClinicalContext
study = ingest([sys.argv[1]]).studies[0]
ctx = ClinicalContext(age=67, history="cough and fever")
note = compose(analyze(study, ctx), ctx)
heavy = sorted(m for m in ("monai", "open_clip", "transformers", "torchvision")
               if m in sys.modules)
print("HEAVY", heavy)
"""


def test_cold_analysis_imports_neither_monai_nor_open_clip(models, dicom_dir, runtime_cache):
    """What keeps `radassist analyze` inside its 5 s budget (8-9 s for `import monai` alone).

    The module's runtime cache already holds the export (the `models` fixture wrote it)."""
    import os

    dicom = dicom_dir / "conformance" / "fo-dicom" / "CR-MONO1-10-chest"
    env = {**os.environ, "RADASSIST_CACHE": str(runtime_cache)}
    again = subprocess.run([sys.executable, "-c", COLD, str(dicom)], env=env,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "HEAVY []" in again.stdout, again.stdout
