"""The bundle's network as TorchScript, for processes that must answer in seconds.

Why: the network is built from MONAI and open_clip, and `import monai` alone imports every
MONAI submodule with transformers, torchvision and triton (8-9 s on these two cores; open_clip
another few seconds). A cold `radassist analyze` has a 5 s budget. So the first process that
needs the model traces the bundle's eager network (`RadAssistModel`, from `models/model.pt`)
into two TorchScript files — the MONAI bundle convention for a deployable network — and later
processes load those with nothing but torch (~0.1 s):

- `visual.ts`: image batch -> calibrated head logits, joint-space embedding, standardised
  features, and the activations of GradCAM's target layer (for saliency without hooks);
- `text.ts`: token ids -> joint-space embedding (locked MiniLM + our projection); tokens come
  from the MiniLM package's own `tokenizer.json` through the `tokenizers` library, cleaned the
  way open_clip's `HFTokenizer` cleans them.

The files live in the cache (`RADASSIST_CACHE`, default ~/.cache/radassist), never in git,
under a key made of the weights file's sha1, the torch version and this module's format
number, so a retrained bundle or a new torch never reuses a stale export. Outputs are the
eager network's, bit for bit (tested), so a note does not depend on which process wrote it.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from imaging.cache import cache_root
from imaging.model.loaded import BundleModel, Prediction, as_batch, prediction, scale_unit

EXPORT_FORMAT = 1  # bump when the traced modules' inputs or outputs change
TRACE_BATCH = 2


def runtime_cache_dir() -> Path:
    return cache_root() / "runtime"


def bundle_key(weights_dir: Path) -> str:
    """sha1 of the weights file + torch version + export format: what the export depends on."""
    digest = hashlib.sha1()
    with open(weights_dir / "models" / "model.pt", "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    digest.update(f"|torch {torch.__version__}|format {EXPORT_FORMAT}".encode())
    return digest.hexdigest()[:20]


# -- export (runs the eager MONAI / open_clip network once) --------------------------------------
class _VisualExport(torch.nn.Module):
    def __init__(self, visual) -> None:
        super().__init__()
        self.visual = visual

    def forward(self, x: torch.Tensor):
        feats = self.visual.features(x)
        logits = self.visual.heads(feats)
        emb = torch.nn.functional.normalize(self.visual.embed(feats), dim=-1)
        gradcam_map = self.visual.encoder.trunk.last_map
        return (logits["modality"], logits["region"], logits["plane"], logits["findings"], emb,
                feats, gradcam_map)


class _TextExport(torch.nn.Module):
    def __init__(self, clip) -> None:
        super().__init__()
        self.text = clip.text

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(self.text(ids), dim=-1)


def export(weights_dir: Path, out_dir: Path) -> None:
    """Trace the eager network of `weights_dir` into `out_dir` (visual.ts, text.ts, meta)."""
    from imaging.model.loaded import RadAssistModel

    eager = RadAssistModel(weights_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(out_dir.name + f".{os.getpid()}.tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    size = eager.spec.input_size
    example = torch.linspace(0, 1, TRACE_BATCH * size * size).reshape(TRACE_BATCH, 1, size, size)
    tokens = eager.tokenizer(["a chest radiograph", "axial CT of the head"])
    from imaging.model.network import _quiet_loaders

    with torch.no_grad(), warnings.catch_warnings(), _quiet_loaders():
        warnings.simplefilter("ignore")  # TracerWarnings about fixed shapes: inputs are fixed
        visual = torch.jit.trace(_VisualExport(eager.visual).eval(), example, check_trace=False)
        text = torch.jit.trace(_TextExport(eager.clip).eval(), tokens, check_trace=False,
                               strict=False)
        torch.jit.save(visual, str(tmp / "visual.ts"))
        torch.jit.save(text, str(tmp / "text.ts"))
    meta = {"version": eager.version, "text_tower": eager.text_tower,
            "context_length": int(tokens.shape[1]), "pad_id": _pad_id(eager),
            "tokenizer_dir": _tokenizer_dir(eager.text_tower), "format": EXPORT_FORMAT}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    for name in ("visual.ts", "text.ts", "meta.json"):
        os.replace(tmp / name, out_dir / name)
    tmp.rmdir()


def _pad_id(eager) -> int:
    tok = getattr(eager.tokenizer, "tokenizer", None)
    return int(getattr(tok, "pad_token_id", 0) or 0)


def _tokenizer_dir(text_tower: str) -> str | None:
    if text_tower != "minilm":
        return None
    from imaging.model.network import minilm_dir

    return minilm_dir()


# -- the runtime model ------------------------------------------------------------------------
class RuntimeModel(BundleModel):
    """`get_model()`'s model: the same interface and numbers as `RadAssistModel`, no MONAI.

    `predict`, `encode_images`, `encode_text`, `quality`, `gradcam`, `version`, `metadata`.
    """

    strict_determinism = False  # see `configure_torch`: its import costs 1.4 s of a cold start

    def __init__(self, weights_dir: Path, *, progress=None) -> None:
        super().__init__(weights_dir)
        self._state_dict = None  # the traced files carry the weights
        self.export_dir = runtime_cache_dir() / bundle_key(self.weights_dir)
        if not (self.export_dir / "meta.json").is_file():
            (progress or _say)("radassist: preparing the model for fast start "
                               "(once per weights bundle, ~20 s)")
            export(self.weights_dir, self.export_dir)
        self.export_meta = json.loads((self.export_dir / "meta.json").read_text())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in 2.14
            self._visual = torch.jit.load(str(self.export_dir / "visual.ts"))
        self._text = None
        self._tokenizer = None
        self._eager = None  # only for a bundle whose text tower is not MiniLM

    # -- images ---------------------------------------------------------------------------
    def _run_visual(self, x: torch.Tensor):
        # the non-optimising executor: same kernels, no multi-second profiling warm-up
        with torch.jit.optimized_execution(False):
            return self._visual(x)

    @torch.no_grad()
    def predict(self, batch: torch.Tensor | np.ndarray) -> Prediction:
        modality, region, plane, findings, emb, feats, _ = self._run_visual(as_batch(batch))
        return prediction(modality, region, plane, findings, emb, feats)

    def gradcam(self, x: torch.Tensor, finding_index: int) -> np.ndarray:
        """GradCAM of one finding logit at the last conv stage -> (224, 224) in [0, 1].

        The traced network returns the target layer's activations, so the gradient is taken
        with autograd instead of MONAI's hooks; the arithmetic is MONAI `GradCAM`'s (tested
        equal), with the map scaled so that 1 marks what drives the finding most.
        """
        with torch.enable_grad():
            out = self._run_visual(x[:1])
            logit, acts = out[3][:, finding_index], out[6]
            (grad,) = torch.autograd.grad(logit.sum(), acts)
        return gradcam_map(acts.detach(), grad, tuple(x.shape[-2:]))

    # -- text -----------------------------------------------------------------------------
    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> np.ndarray:
        """Sentences -> (N, D) float32 L2-normalised embeddings in the joint space."""
        if not texts:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        if not self.export_meta.get("tokenizer_dir"):  # open_clip's own text transformer
            if self._eager is None:
                from imaging.model.loaded import RadAssistModel

                self._eager = RadAssistModel(self.weights_dir)
            return self._eager.encode_text(texts)
        if self._text is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                self._text = torch.jit.load(str(self.export_dir / "text.ts"))
        out = []
        for start in range(0, len(texts), 64):
            ids = self.tokenize(list(texts[start:start + 64]))
            with torch.jit.optimized_execution(False):
                out.append(self._text(ids))
        return torch.cat(out).numpy().astype(np.float32)

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        """open_clip `HFTokenizer` ids (whitespace-cleaned, padded and cut to the context)."""
        if self._tokenizer is None:
            self._tokenizer = _load_tokenizer(self.export_meta)
        ids = [enc.ids for enc in self._tokenizer.encode_batch([_clean(t) for t in texts])]
        return torch.tensor(ids, dtype=torch.long)


def _say(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


def gradcam_map(acts: torch.Tensor, grad: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """MONAI GradCAM's map from (activations, gradients), upsampled and scaled to [0, 1].

    Channel weights are the spatially averaged gradients; the map is ReLU(sum of weighted
    activations), bilinearly upsampled to the input size, then min-max scaled with the
    maximum at 1 (MONAI's default post-processing flips it: its maximum lands at 0).
    """
    b, c = grad.shape[:2]
    weights = grad.view(b, c, -1).mean(2).view(b, c, 1, 1)
    cam = torch.nn.functional.relu((weights * acts).sum(1, keepdim=True))
    cam = torch.nn.functional.interpolate(cam, size=size, mode="bilinear", align_corners=False)
    return scale_unit(cam.detach().numpy()[0, 0])


def _clean(text: str) -> str:
    """open_clip's 'whitespace' cleaning: ftfy, unescape HTML twice, collapse whitespace."""
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).strip()


def _load_tokenizer(meta: dict):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(meta["tokenizer_dir"]) / "tokenizer.json"))
    length = int(meta["context_length"])
    tok.enable_truncation(max_length=length)
    tok.enable_padding(length=length, pad_id=int(meta["pad_id"]), pad_token="[PAD]")
    return tok


__all__ = ["RuntimeModel", "export", "gradcam_map", "scale_unit"]
