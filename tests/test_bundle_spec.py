"""The weights bundle is the source of truth: labels, thresholds and input size are read from
its configs and checked, a bundle whose heads are ordered otherwise is read in its own order,
and one whose labels disagree with its weights is refused (never silently mislabelled)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_model import require_weights

from imaging.model.bundle import BundleSpec, missing_metadata
from pacs_bridge.errors import ModelError


@pytest.fixture(scope="module")
def weights_dir() -> Path:
    return require_weights()


def _copy_configs(weights_dir: Path, tmp: Path, edit_meta=None, edit_infer=None) -> Path:
    (tmp / "configs").mkdir(parents=True)
    for name, edit in (("metadata.json", edit_meta), ("inference.json", edit_infer)):
        data = json.loads((weights_dir / "configs" / name).read_text())
        if edit is not None:
            edit(data)
        (tmp / "configs" / name).write_text(json.dumps(data))
    return tmp


def test_committed_bundle_is_read_and_complete(weights_dir):
    from imaging.datasets import FINDINGS, MODALITIES, PLANES, REGIONS

    spec = BundleSpec.from_dir(weights_dir)
    # the shipped heads were trained in the training lists' order
    assert (spec.modalities, spec.regions, spec.planes, spec.findings) == (
        MODALITIES, REGIONS, PLANES, FINDINGS)
    assert spec.input_size == 224 and spec.embedding_dim == 256
    assert spec.ood_quality_threshold == 0.01 and spec.finding_report_threshold == 0.5
    assert spec.max_slices_per_stack == 24
    assert "CT" in spec.supported_header_modalities
    # MONAI bundle specification: mandatory keys and tensor fields, LICENSE, docs
    assert missing_metadata(spec.metadata) == []
    licence = (weights_dir / "LICENSE").read_text()
    assert "Apache License" in licence and "non-commercial" in licence
    assert (weights_dir / "docs" / "README.md").is_file()
    assert "covid" in (weights_dir / "docs" / "data_license.txt").read_text().lower()


def _set_channels(head, labels):
    def edit(meta):
        out = meta["network_data_format"]["outputs"][head]
        out["channel_def"] = {str(i): x for i, x in enumerate(labels)}
        out["num_channels"] = len(labels)
    return edit


@pytest.mark.parametrize("edit_meta, edit_infer, message", [
    (_set_channels("findings", ["pneumonia", "covid19", "pneumonia"]), None, "repeats"),
    (_set_channels("modality", ["CT", "MR", "US"]), None, "lacks the label"),
    (lambda m: m["network_data_format"]["inputs"]["image"].update(
        num_channels=3, channel_def={"0": "R", "1": "G", "2": "B"}), None, "single grey"),
    (lambda m: m["network_data_format"]["outputs"]["plane"].update(
        channel_def={"0": "axial", "2": "coronal", "3": "sagittal"}), None, "channels 0..2"),
    (lambda m: m["network_data_format"]["outputs"]["region"].update(num_channels=5), None,
     "num_channels 5"),
    (lambda m: m["network_data_format"]["outputs"].pop("findings"), None,
     "missing key network_data_format.outputs.findings"),
    (None, lambda i: i.pop("finding_report_threshold"), "finding_report_threshold"),
    (None, lambda i: i.update(ood_quality_threshold=3), "probability"),
    (None, lambda i: i.update(input_size=256), "spatial_shape"),
])
def test_invalid_configs_are_refused_naming_file_and_problem(weights_dir, tmp_path, edit_meta,
                                                             edit_infer, message):
    root = _copy_configs(weights_dir, tmp_path, edit_meta, edit_infer)
    with pytest.raises(ModelError) as err:
        BundleSpec.from_dir(root)
    assert message in str(err.value)
    assert "configs/" in (err.value.source or "") and err.value.reason == "bundle_invalid"


def test_labels_that_disagree_with_the_weights_are_refused(weights_dir, tmp_path):
    five = ["pneumonia", "covid19", "infiltration", "atelectasis", "edema"]
    root = _copy_configs(weights_dir, tmp_path, _set_channels("findings", five))
    spec = BundleSpec.from_dir(root)  # the configs alone are consistent
    state = torch.load(weights_dir / "models/model.pt", map_location="cpu",
                       weights_only=True)["state_dict"]
    with pytest.raises(ModelError, match="findings head has 6 outputs"):
        spec.check_weights(state)
    (root / "models").mkdir()
    shutil.copyfile(weights_dir / "models/model.pt", root / "models/model.pt")
    from imaging.model.loaded import BundleModel

    with pytest.raises(ModelError, match="findings head has 6 outputs"):
        BundleModel(root)


class _Pred:
    """Per-slice outputs of one radiograph slice, with the findings columns given."""

    def __init__(self, findings: np.ndarray, dim: int) -> None:
        self.modality = np.array([[0.01, 0.01, 0.98]])
        self.region = np.full((1, 6), 1 / 6)
        self.plane = np.full((1, 3), 1 / 3)
        self.findings = findings[None]
        self.embedding = np.ones((1, dim), np.float32) / np.sqrt(dim)
        self.features = None


class _Model:
    def __init__(self, spec: BundleSpec) -> None:
        self.spec = spec
        self.version = "test"

    def quality(self, embedding) -> float:
        return 0.5


def test_analysis_names_findings_in_the_bundles_order(weights_dir, monkeypatch):
    """Two bundles whose findings heads are in opposite orders, with the same probability
    per finding name, give the same observations: the columns are named by the bundle."""
    import importlib

    # by module path: `imaging.analyze` as an attribute of `imaging` is the function
    quality = importlib.import_module("imaging.analyze.quality")
    from imaging.analyze import interpret, prepare_stack
    from imaging.types import ImageStack

    monkeypatch.setattr(quality, "phantom_reason", lambda emb, model: None)
    spec = BundleSpec.from_dir(weights_dir)
    reordered = dataclasses.replace(spec, findings=tuple(reversed(spec.findings)))
    by_name = {name: 0.1 + 0.1 * k for k, name in enumerate(spec.findings)}
    image = np.random.default_rng(0).random((64, 64)).astype(np.float32) * 1000
    stack = ImageStack("1.2.3", "DX", "MONOCHROME2", image[None], sop_instance_uids=("1",))
    results = []
    for s in (spec, reordered):
        pred = _Pred(np.array([by_name[n] for n in s.findings]), s.embedding_dim)
        analysis = interpret(_Model(s), prepare_stack(stack, s), pred)
        assert not analysis.out_of_distribution, analysis.warnings
        results.append({o.code: (o.probability, o.threshold) for o in analysis.observations
                        if o.kind == "finding"})
    assert results[0] == results[1]
    assert results[0]["finding:effusion"] == (pytest.approx(0.6), spec.finding_report_threshold)


def test_reordered_findings_head_gives_the_same_named_probabilities(weights_dir, tmp_path,
                                                                    data_dir):
    """A retrained bundle with another findings order (rows, temperatures and channel_def
    permuted together) is read in its own order: same probability per finding name."""
    from imaging.model import get_model
    from imaging.model.loaded import RadAssistModel
    from imaging.model.preprocess import load_jpeg, to_input

    perm = [5, 3, 0, 4, 1, 2]
    spec = BundleSpec.from_dir(weights_dir)
    names = [spec.findings[i] for i in perm]
    root = _copy_configs(weights_dir, tmp_path, _set_channels("findings", names))
    payload = torch.load(weights_dir / "models/model.pt", map_location="cpu", weights_only=True)
    sd = payload["state_dict"]
    for key in ("visual.head.findings.weight", "visual.head.findings.bias",
                "visual.temperature_findings"):
        sd[key] = sd[key][perm].clone()
    (root / "models").mkdir()
    torch.save(payload, root / "models/model.pt")

    path = sorted((data_dir / "nih_cxr14" / "images").glob("*.jpg"))[0]
    x = to_input(load_jpeg(path))[None]
    reordered = RadAssistModel(root)
    assert reordered.spec.findings == tuple(names)
    got = reordered.predict(x).findings[0]
    want = get_model(weights_dir).predict(x).findings[0]
    # permuted rows of one matrix product: equal up to float rounding, while a mislabelled
    # column would be off by the difference between two findings' probabilities
    np.testing.assert_allclose(got, want[perm], rtol=0, atol=1e-6)
    assert np.abs(want[perm] - want).max() > 1e-3  # the permutation moves something
