"""A tiny end-to-end training run (a few images, 1 epoch) produces a loadable bundle."""

from __future__ import annotations

import json

import numpy as np
import torch


def test_train_tiny_bundle_loads_and_predicts(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("RADASSIST_CACHE", str(tmp_path / "cache"))
    from imaging.model.loaded import RadAssistModel
    from imaging.training.train import train

    out = tmp_path / "weights"
    logs: list[str] = []
    info = train(data_dir, out, seed=0, epochs=1, views=1, text_towers=("minilm",), limit=2,
                 log=logs.append)
    assert info["text_tower"] == "minilm"
    assert len(info["data_manifest_sha1"]) == 40
    assert any("epoch 1/1" in line for line in logs), logs
    meta = json.loads((out / "configs/metadata.json").read_text())
    assert meta["training"]["seed"] == 0
    model = RadAssistModel(out)
    pred = model.predict(torch.zeros(1, 1, 224, 224) + 0.5)
    assert pred.modality.shape == (1, 3)
    assert np.isclose(pred.modality.sum(), 1.0, atol=1e-5)
    assert model.encode_text(["a caption"]).shape == (1, pred.embedding.shape[1])


def test_missing_bundle_is_a_typed_error(tmp_path):
    import pytest

    from imaging.model.loaded import RadAssistModel
    from pacs_bridge.errors import ModelError

    with pytest.raises(ModelError, match="weights bundle incomplete"):
        RadAssistModel(tmp_path)
