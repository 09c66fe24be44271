"""`monai.bundle` loads the weights bundle from its folder, offline, and its network gives
`imaging.model.get_model()`'s predictions (both through `monai.bundle.load` and through a
`ConfigParser` reading configs/inference.json)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from fixtures_model import require_weights


@pytest.fixture(scope="module")
def image(data_dir):
    from imaging.model.preprocess import load_jpeg, to_input

    path = sorted((data_dir / "nih_cxr14" / "images").glob("*.jpg"))[0]
    return to_input(load_jpeg(path))[None]


def _probabilities(net, x) -> dict[str, np.ndarray]:
    with torch.no_grad():
        logits = net.visual.heads(net.visual.features(x))
    return {"modality": torch.softmax(logits["modality"], -1).numpy(),
            "region": torch.softmax(logits["region"], -1).numpy(),
            "plane": torch.softmax(logits["plane"], -1).numpy(),
            "findings": torch.sigmoid(logits["findings"]).numpy()}


def _expected(weights, x) -> dict[str, np.ndarray]:
    from imaging.model import get_model

    pred = get_model(weights).predict(x)
    return {head: getattr(pred, head) for head in ("modality", "region", "plane", "findings")}


def test_monai_bundle_load_gives_get_models_predictions(image):
    import monai.bundle

    weights = require_weights()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI's 'only trusted configs' notice
        net = monai.bundle.load(name=weights.name, bundle_dir=str(weights.parent),
                                workflow_type="inference", key_in_ckpt="state_dict",
                                device="cpu", progress=False)
    got, want = _probabilities(net.eval(), image), _expected(weights, image)
    for head in want:
        assert np.array_equal(got[head], want[head]), head


def test_config_parser_instantiates_network_and_weights(image):
    from monai.bundle import ConfigParser

    weights = require_weights()
    parser = ConfigParser()
    parser.read_config(str(weights / "configs/inference.json"))
    parser.read_meta(str(weights / "configs/metadata.json"))
    parser["bundle_root"] = str(weights)
    assert parser.get_parsed_content("input_size") == 224
    net = parser.get_parsed_content("network")
    got, want = _probabilities(net, image), _expected(weights, image)
    for head in want:
        assert np.array_equal(got[head], want[head]), head
