"""What the weights bundle says about its model, read once and checked before anything runs.

The bundle (`configs/metadata.json`, `configs/inference.json`, `models/model.pt`) is the one
source of the model's description: the label of every output channel of every head in the
head's own order (`network_data_format.outputs.<head>.channel_def`), the input size and its
single grey channel, the embedding size, and the operating points chosen with the weights
(`inference.json`: out-of-distribution typicality, finding report threshold, slices per
stack, header modalities the model was trained for). `imaging.datasets` keeps its label lists
for reading training data; inference reads these. A bundle whose heads are ordered otherwise
is read in its own order; one whose labels disagree with its weights (a head of 6 rows
labelled with 5 names) or lacks a label the analysis names itself is refused with a
`ModelError` naming the file and what is wrong, never silently mislabelled.

`BundleSpec.from_dir(weights_dir)` reads and checks the configs; `check_weights(state_dict)`
checks the head sizes of `models/model.pt` against the labels. `missing_metadata(meta)` lists
the keys and tensor fields the MONAI bundle specification makes mandatory (its JSON schema is
a download, so this is the offline check).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import ModelError

HEADS = ("modality", "region", "plane", "findings")
# Labels the analysis code names itself (header priors, the chest-radiograph region): a
# bundle without them cannot be read correctly, so it is refused rather than half-read.
REQUIRED_LABELS = {"modality": ("CT", "MR", "XR"), "region": ("chest_radiograph",),
                   "plane": ("axial", "coronal", "sagittal"), "findings": ()}
# MONAI Bundle Specification (docs.monai.io mb_specification): mandatory metadata keys and
# the fields every tensor format specifier carries.
SPEC_METADATA_KEYS = ("version", "monai_version", "pytorch_version", "numpy_version",
                      "optional_packages_version", "task", "description", "authors",
                      "copyright", "network_data_format")
SPEC_TENSOR_KEYS = ("type", "format", "num_channels", "spatial_shape", "dtype", "value_range",
                    "is_patch_data", "channel_def")
INFERENCE_KEYS = ("text_tower", "input_size", "max_slices_per_stack",
                  "supported_header_modalities", "ood_quality_threshold",
                  "finding_report_threshold")
METADATA = "configs/metadata.json"
INFERENCE = "configs/inference.json"


@dataclass(frozen=True)
class BundleSpec:
    """The model as its bundle describes it; every field checked on construction."""

    source: str  # the bundle folder, for error messages
    version: str
    text_tower: str
    input_size: int
    modalities: tuple[str, ...]  # each head's labels, in the head's output order
    regions: tuple[str, ...]
    planes: tuple[str, ...]
    findings: tuple[str, ...]
    embedding_dim: int
    ood_quality_threshold: float  # typicality below which a series is out of distribution
    finding_report_threshold: float  # a radiograph finding at or above it is reported
    max_slices_per_stack: int
    supported_header_modalities: tuple[str, ...]
    metadata: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = str(Path(self.source) / METADATA)
        for head in HEADS:
            labels = self.labels(head)
            if not labels or not all(isinstance(x, str) and x for x in labels):
                raise ModelError(where, f"head {head!r} needs non-empty string labels, got "
                                 f"{list(labels)}", reason="bundle_invalid")
            if len(set(labels)) != len(labels):
                raise ModelError(where, f"head {head!r} repeats a label: {list(labels)}",
                                 reason="bundle_invalid")
            lacking = [x for x in REQUIRED_LABELS[head] if x not in labels]
            if lacking:
                raise ModelError(where, f"head {head!r} lacks the label(s) {lacking} that the "
                                 f"analysis relies on (has {list(labels)})",
                                 reason="bundle_invalid")
        where = str(Path(self.source) / INFERENCE)
        for name in ("ood_quality_threshold", "finding_report_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ModelError(where, f"{name} must be a probability in [0, 1], got {value}",
                                 reason="bundle_invalid")
        for name in ("input_size", "max_slices_per_stack", "embedding_dim"):
            if getattr(self, name) < 1:
                raise ModelError(where, f"{name} must be a positive integer, got "
                                 f"{getattr(self, name)}", reason="bundle_invalid")
        if not self.supported_header_modalities:
            raise ModelError(where, "supported_header_modalities is empty",
                             reason="bundle_invalid")

    def labels(self, head: str) -> tuple[str, ...]:
        """A head's labels in its output order ("modality", "region", "plane", "findings")."""
        return {"modality": self.modalities, "region": self.regions, "plane": self.planes,
                "findings": self.findings}[head]

    @property
    def head_sizes(self) -> dict[str, int]:
        return {head: len(self.labels(head)) for head in HEADS}

    # -- reading ----------------------------------------------------------------------------
    @classmethod
    def from_dir(cls, weights_dir: str | Path) -> BundleSpec:
        """Read and check `configs/metadata.json` and `configs/inference.json`."""
        root = Path(weights_dir)
        meta = _read_json(root / METADATA)
        infer = _read_json(root / INFERENCE)
        where_meta, where_infer = str(root / METADATA), str(root / INFERENCE)
        missing = [k for k in INFERENCE_KEYS if k not in infer]
        if missing:
            raise ModelError(where_infer, f"missing key(s) {missing}", reason="bundle_invalid")
        fmt = _get(meta, ("network_data_format",), where_meta)
        image = _get(fmt, ("inputs", "image"), where_meta, "network_data_format")
        input_size = _int(infer["input_size"], "input_size", where_infer)
        _check_image_input(image, input_size, where_meta)
        outputs = _get(fmt, ("outputs",), where_meta, "network_data_format")
        labels = {head: channel_labels(_get(outputs, (head,), where_meta,
                                            "network_data_format.outputs"),
                                       f"network_data_format.outputs.{head}", where_meta)
                  for head in HEADS}
        embedding = _get(outputs, ("embedding",), where_meta, "network_data_format.outputs")
        return cls(
            source=str(root),
            version=str(_get(meta, ("version",), where_meta)),
            text_tower=str(infer["text_tower"]),
            input_size=input_size,
            modalities=labels["modality"], regions=labels["region"], planes=labels["plane"],
            findings=labels["findings"],
            embedding_dim=_int(_get(embedding, ("num_channels",), where_meta,
                                    "network_data_format.outputs.embedding"),
                               "outputs.embedding.num_channels", where_meta),
            ood_quality_threshold=_float(infer["ood_quality_threshold"],
                                         "ood_quality_threshold", where_infer),
            finding_report_threshold=_float(infer["finding_report_threshold"],
                                            "finding_report_threshold", where_infer),
            max_slices_per_stack=_int(infer["max_slices_per_stack"], "max_slices_per_stack",
                                      where_infer),
            supported_header_modalities=tuple(
                str(m).upper() for m in _list(infer["supported_header_modalities"],
                                              "supported_header_modalities", where_infer)),
            metadata=meta,
        )

    # -- the weights against the labels ----------------------------------------------------------
    def check_weights(self, state_dict: Mapping[str, Any], source: str | None = None) -> None:
        """Every head of `models/model.pt` has one output row per label, and the embedding
        the size the metadata states; otherwise the labels would name the wrong outputs."""
        where = source or str(Path(self.source) / "models/model.pt")
        for head, size in self.head_sizes.items():
            weight = state_dict.get(f"visual.head.{head}.weight")
            if weight is None:
                raise ModelError(where, f"no {head} head in the weights", reason="bundle_invalid")
            if int(weight.shape[0]) != size:
                raise ModelError(where, f"the {head} head has {int(weight.shape[0])} outputs but "
                                 f"{METADATA} labels {size}: {list(self.labels(head))}",
                                 reason="bundle_invalid")
        proj = state_dict.get("visual.proj.2.weight")
        if proj is not None and int(proj.shape[0]) != self.embedding_dim:
            raise ModelError(where, f"the embedding has {int(proj.shape[0])} dimensions, "
                             f"{METADATA} states {self.embedding_dim}", reason="bundle_invalid")


def channel_labels(spec: Mapping[str, Any], name: str, where: str) -> tuple[str, ...]:
    """A tensor specifier's `channel_def` as labels in channel order.

    The MONAI form is `{"0": label, "1": label, ...}` (indices 0..n-1, each once); a plain list
    (bundles before 0.1.2) is read in its order. `num_channels`, when given, must agree.
    """
    if not isinstance(spec, Mapping) or "channel_def" not in spec:
        raise ModelError(where, f"{name} has no channel_def", reason="bundle_invalid")
    raw = spec["channel_def"]
    if isinstance(raw, list):
        labels = tuple(raw)
    elif isinstance(raw, Mapping):
        try:
            index = {int(k): v for k, v in raw.items()}
        except (TypeError, ValueError):
            raise ModelError(where, f"{name}.channel_def keys must be channel indices, got "
                             f"{list(raw)}", reason="bundle_invalid") from None
        if sorted(index) != list(range(len(index))):
            raise ModelError(where, f"{name}.channel_def must number channels 0..{len(index) - 1}"
                             f" once each, got {sorted(index)}", reason="bundle_invalid")
        labels = tuple(index[i] for i in range(len(index)))
    else:
        raise ModelError(where, f"{name}.channel_def must be a mapping of channel index to "
                         f"label, got {type(raw).__name__}", reason="bundle_invalid")
    declared = spec.get("num_channels")
    if declared is not None and declared != len(labels):
        raise ModelError(where, f"{name} declares num_channels {declared} but channel_def has "
                         f"{len(labels)} labels", reason="bundle_invalid")
    return labels


def missing_metadata(meta: Mapping[str, Any]) -> list[str]:
    """Keys the MONAI bundle specification makes mandatory that `meta` lacks (dotted)."""
    missing = [k for k in SPEC_METADATA_KEYS if k not in meta]
    fmt = meta.get("network_data_format")
    if not isinstance(fmt, Mapping):
        return missing
    for side in ("inputs", "outputs"):
        tensors = fmt.get(side)
        if not isinstance(tensors, Mapping) or not tensors:
            missing.append(f"network_data_format.{side}")
            continue
        for name, spec in tensors.items():
            missing += [f"network_data_format.{side}.{name}.{k}" for k in SPEC_TENSOR_KEYS
                        if not isinstance(spec, Mapping) or k not in spec]
    return missing


def default_weights_dir() -> Path:
    """`RADASSIST_WEIGHTS`, else the repository's weights/ folder."""
    env = os.environ.get("RADASSIST_WEIGHTS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "weights"


@functools.lru_cache(maxsize=8)
def _spec_of(resolved: Path) -> BundleSpec:
    return BundleSpec.from_dir(resolved)


def bundle_spec(weights_dir: str | Path | None = None) -> BundleSpec:
    """The spec of `weights_dir` (default: the weights `get_model()` loads), read once."""
    return _spec_of(Path(weights_dir if weights_dir is not None
                         else default_weights_dir()).resolve())


# -- helpers ------------------------------------------------------------------------------------
def _check_image_input(image: Mapping[str, Any], input_size: int, where: str) -> None:
    """One grey channel of input_size x input_size: what the network and preprocessing give."""
    prefix = "network_data_format.inputs.image"
    labels = channel_labels(image, prefix, where)
    if image.get("num_channels") != 1 or len(labels) != 1:
        raise ModelError(where, f"{prefix} must be a single grey channel (num_channels 1, one "
                         f"channel_def entry), got num_channels {image.get('num_channels')} "
                         f"and channel_def {labels}", reason="bundle_invalid")
    if "gr" not in labels[0].lower():  # "grey" / "grayscale"
        raise ModelError(where, f"{prefix}.channel_def must describe a grey channel, got "
                         f"{labels[0]!r}", reason="bundle_invalid")
    shape = list(image.get("spatial_shape") or [])
    if shape != [input_size, input_size]:
        raise ModelError(where, f"{prefix}.spatial_shape {shape} disagrees with "
                         f"{INFERENCE} input_size {input_size}", reason="bundle_invalid")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(str(path), "missing from the weights bundle",
                         reason="weights_missing") from None
    except (OSError, ValueError) as exc:
        raise ModelError(str(path), f"not readable JSON: {exc}", reason="bundle_invalid") from exc
    if not isinstance(data, dict):
        raise ModelError(str(path), "must hold a JSON object", reason="bundle_invalid")
    return data


def _get(data: Any, keys: tuple[str, ...], where: str, prefix: str = "") -> Any:
    path = prefix
    for key in keys:
        path = f"{path}.{key}" if path else key
        if not isinstance(data, Mapping) or key not in data:
            raise ModelError(where, f"missing key {path}", reason="bundle_invalid")
        data = data[key]
    return data


def _int(value: Any, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelError(where, f"{name} must be an integer, got {value!r}",
                         reason="bundle_invalid")
    return value


def _float(value: Any, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ModelError(where, f"{name} must be a number, got {value!r}",
                         reason="bundle_invalid")
    return float(value)


def _list(value: Any, name: str, where: str) -> list:
    if not isinstance(value, list):
        raise ModelError(where, f"{name} must be a list, got {value!r}", reason="bundle_invalid")
    return value


__all__ = ["HEADS", "BundleSpec", "bundle_spec", "channel_labels", "default_weights_dir",
           "missing_metadata"]
