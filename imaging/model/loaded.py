"""The loaded, ready-to-run model: weights bundle -> encode images / text, heads, OOD.

Inference is deterministic: deterministic torch algorithms, a fixed thread count, eval
mode, no randomness; the same batch gives the same numbers bit for bit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.errors import ModelError
from imaging.model.bundle import BundleSpec, default_weights_dir
from imaging.model.network import build_clip, load_state

BUNDLE_FILES = ("configs/metadata.json", "configs/inference.json", "models/model.pt")


def configure_torch(strict_determinism: bool = True) -> None:
    """Fixed threads and deterministic kernels, so repeated analyses agree bit for bit.

    `strict_determinism=False` skips `torch.use_deterministic_algorithms`, which imports
    torch's compiler configuration (1.4 s of a cold start) and only changes kernels this
    CPU-only inference never calls; tests check runs agree bit for bit either way.
    """
    if strict_determinism:
        torch.use_deterministic_algorithms(True, warn_only=True)
    threads = int(os.environ.get("RADASSIST_THREADS", "2"))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class Prediction:
    """Per image: calibrated probabilities of every head and the joint-space embedding."""

    # columns in the bundle's label order (`BundleModel.spec.labels(head)`)
    modality: np.ndarray  # (N, len(spec.modalities))
    region: np.ndarray  # (N, len(spec.regions))
    plane: np.ndarray  # (N, len(spec.planes))
    findings: np.ndarray  # (N, len(spec.findings)) independent sigmoids
    embedding: np.ndarray  # (N, D) L2-normalised
    features: np.ndarray  # (N, FEATURE_DIM) standardised trunk features


class BundleModel:
    """What both model flavours share: reading the bundle, the OOD reference, `quality`.

    `spec` (`bundle.BundleSpec`) is the bundle's own description, read and checked once:
    labels of every head in output order, thresholds, input size; the head sizes of
    `models/model.pt` are checked against its labels before anything runs.

    `RadAssistModel` (eager MONAI / open_clip network) and `runtime.RuntimeModel` (its
    TorchScript export) add `predict`, `encode_text` and `gradcam`.
    """

    strict_determinism = True

    def __init__(self, weights_dir: Path) -> None:
        weights_dir = Path(weights_dir)
        missing = [f for f in BUNDLE_FILES if not (weights_dir / f).is_file()]
        if missing:
            raise ModelError(str(weights_dir), f"weights bundle incomplete, missing {missing}; "
                             "run `radassist train --out weights/`", reason="weights_missing")
        self.spec = BundleSpec.from_dir(weights_dir)
        configure_torch(self.strict_determinism)
        self.weights_dir = weights_dir
        self.metadata = self.spec.metadata
        self.version = self.spec.version
        self.text_tower = self.spec.text_tower
        try:
            payload = torch.load(weights_dir / "models/model.pt", map_location="cpu",
                                 weights_only=True)
        except Exception as exc:  # corrupt / incompatible file
            raise ModelError(str(weights_dir / "models/model.pt"), f"cannot load weights: {exc}",
                             reason="weights_unreadable") from exc
        self._state_dict = payload["state_dict"]  # the eager network loads it; others drop it
        self.spec.check_weights(self._state_dict)
        # OOD reference: embeddings of the training images, and the validation distribution
        # of nearest-neighbour similarity used to turn a similarity into a quality score.
        self.ood_bank = payload["ood_bank"].float().numpy()
        self.ood_reference = np.sort(payload["ood_reference"].float().numpy())
        if self.ood_bank.shape[1] != self.spec.embedding_dim:
            raise ModelError(str(weights_dir / "models/model.pt"), f"the OOD bank has "
                             f"{self.ood_bank.shape[1]}-d embeddings, the metadata states "
                             f"{self.spec.embedding_dim}", reason="bundle_invalid")

    def predict(self, batch: torch.Tensor | np.ndarray) -> Prediction:
        raise NotImplementedError

    def encode_images(self, batch: torch.Tensor | np.ndarray) -> np.ndarray:
        """(N,1,224,224) or (N,224,224) [0,1] images -> (N, D) L2-normalised embeddings."""
        return self.predict(batch).embedding

    @property
    def embed_dim(self) -> int:
        return int(self.ood_bank.shape[1])

    def quality(self, embedding: np.ndarray) -> float:
        """Share of validation images less typical than this one (1 = typical, 0 = alien)."""
        sim = float(np.max(self.ood_bank @ embedding.astype(np.float32)))
        ref = self.ood_reference
        return float(np.searchsorted(ref, sim, side="right") / max(len(ref), 1))


def scale_unit(arr: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] (a constant map becomes zeros), finite, float32."""
    arr = np.nan_to_num(np.asarray(arr, dtype=np.float32))
    lo, hi = float(arr.min()), float(arr.max())
    if hi - lo <= 0:
        return np.zeros_like(arr, dtype=np.float32)
    return np.clip((arr - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def as_batch(batch: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(N,224,224) or (N,1,224,224) -> (N,1,224,224) float32 tensor."""
    x = torch.as_tensor(np.asarray(batch), dtype=torch.float32)
    return x[:, None] if x.ndim == 3 else x


def prediction(modality, region, plane, findings, emb, feats) -> Prediction:
    """Calibrated logits and the embedding -> probabilities, as numpy."""
    return Prediction(
        modality=torch.softmax(modality, -1).numpy(),
        region=torch.softmax(region, -1).numpy(),
        plane=torch.softmax(plane, -1).numpy(),
        findings=torch.sigmoid(findings).numpy(),
        embedding=emb.numpy().astype(np.float32),
        features=feats.numpy(),
    )


class RadAssistModel(BundleModel):
    """The eager MONAI / open_clip network of a bundle (training, export, reference)."""

    def __init__(self, weights_dir: Path) -> None:
        super().__init__(weights_dir)
        self.clip, self.tokenizer = build_clip(self.text_tower, pretrained_trunk=False,
                                               head_sizes=self.spec.head_sizes)
        load_state(self.clip, self._state_dict, self.text_tower, str(self.weights_dir))
        self._state_dict = None
        self.visual = self.clip.visual

    # -- images ---------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, batch: torch.Tensor | np.ndarray) -> Prediction:
        feats = self.visual.features(as_batch(batch))
        logits = self.visual.heads(feats)
        emb = torch.nn.functional.normalize(self.visual.embed(feats), dim=-1)
        return prediction(logits["modality"], logits["region"], logits["plane"],
                          logits["findings"], emb, feats)

    # -- text -----------------------------------------------------------------------------
    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> np.ndarray:
        """Sentences -> (N, D) float32 L2-normalised embeddings in the joint space."""
        if not texts:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        out = []
        for start in range(0, len(texts), 64):
            tokens = self.tokenizer(list(texts[start:start + 64]))
            out.append(self.clip.encode_text(tokens, normalize=True))
        return torch.cat(out).numpy().astype(np.float32)

    def gradcam(self, x: torch.Tensor, finding_index: int) -> np.ndarray:
        """MONAI GradCAM of one finding logit at the last conv stage -> (224, 224) in [0, 1].

        One GradCAM per model (its hooks stay registered); the wrapper is in eval mode because
        GradCAM restores the wrapper's own train/eval state after each call. MONAI's default
        post-processing flips the map (maximum -> 0); ours keeps the maximum at 1.
        """
        from monai.visualize import GradCAM


        cam = getattr(self, "_finding_gradcam", None)
        if cam is None:
            net = _FindingLogits(self.visual).eval()
            cam = GradCAM(nn_module=net, target_layers="visual.encoder.net.features.0.head",
                          postprocessing=lambda t: t)
            self._finding_gradcam = cam
        with torch.enable_grad():
            out = cam(x=x[:1].clone().requires_grad_(True), class_idx=finding_index)
        self.visual.eval()
        return scale_unit(out.detach().numpy()[0, 0])


class _FindingLogits(torch.nn.Module):
    def __init__(self, visual) -> None:
        super().__init__()
        self.visual = visual

    def forward(self, x):
        return self.visual.heads(self.visual.features(x))["findings"]

__all__ = ["BUNDLE_FILES", "BundleModel", "Prediction", "RadAssistModel", "as_batch",
           "configure_torch", "default_weights_dir", "prediction", "scale_unit"]
