"""VGG3D feature extractor (SynapseClusterEM): 3D crops in, one feature vector per crop out.

Imports only torch: this file is shipped inside the bioimage.io package as
the architecture source.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

#: Convolutions per block and channels per block (SynapseClusterEM's VGG3D).
BLOCK_CONVS = (4, 2, 2, 2)
BLOCK_CHANNELS = (24, 48, 96, 192)
POOLINGS = ("avg", "max", "concat_avg_max", "spp")
EXTRACTIONS = ("standard", "stage_specific")
SPP_LEVELS = (1, 2, 4)


def _features(in_channels: int, convs: Sequence[int], channels: Sequence[int]) -> nn.Sequential:
    layers = []
    c_in = in_channels
    for n, c_out in zip(convs, channels):
        for _ in range(n):
            layers += [nn.Conv3d(c_in, c_out, 3, padding=1), nn.BatchNorm3d(c_out), nn.ReLU(inplace=True)]
            c_in = c_out
        layers.append(nn.MaxPool3d(2))
    return nn.Sequential(*layers)


def layer_channels(features: nn.Sequential, layer_num: int) -> int:
    """Channels of the output of ``features[layer_num]``."""
    for layer in reversed(list(features)[: layer_num + 1]):
        if isinstance(layer, (nn.Conv3d, nn.BatchNorm3d)):
            return layer.num_features if isinstance(layer, nn.BatchNorm3d) else layer.out_channels
    raise ValueError(f"layer_num {layer_num} precedes the first convolution")


class VGG3D(nn.Module):
    """VGG-style 3D CNN whose output is a pooled feature vector per input crop.

    Four blocks of 4, 2, 2, 2 3x3x3 convolutions (each with batch norm and
    ReLU; 24, 48, 96, 192 channels), each block ending in 2x2x2 max-pooling,
    so an 80^3 crop ends at 5^3. ``features`` is one ``nn.Sequential``, so
    layers are numbered as in SynapseClusterEM (``features.20`` is the first
    convolution of the third block).

    Parameters
    ----------
    in_channels : int
    extraction : {'standard', 'stage_specific'}
        ``standard``: the last block's output; ``stage_specific``: the output
        of ``features[layer_num]``.
    layer_num : int
        Layer for ``stage_specific`` (SynapseClusterEM's default 20).
    pooling : {'avg', 'max', 'concat_avg_max', 'spp'}
        Global average, global maximum, both concatenated, or a spatial
        pyramid (average over 1, 2 and 4 cells per axis, concatenated).
    n_classes : int
        Size of the training head (a linear layer on the pooled features);
        not part of ``forward``, which returns the features.

    Shapes
    ------
    input (B, in_channels, Z, Y, X), Z, Y, X multiples of 16 (>= 64 for ``spp``);
    output (B, F): F = C for avg/max, 2C for concat_avg_max, 73C for spp,
    C the channels of the chosen layer (192 for ``standard``).
    """

    def __init__(self, in_channels: int = 1, extraction: str = "standard", layer_num: int = 20,
                 pooling: str = "avg", n_classes: int = 0):
        super().__init__()
        if extraction not in EXTRACTIONS:
            raise ValueError(f"`extraction` must be one of {EXTRACTIONS}, got {extraction!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"`pooling` must be one of {POOLINGS}, got {pooling!r}")
        self.init_kwargs = dict(in_channels=in_channels, extraction=extraction, layer_num=layer_num,
                                pooling=pooling, n_classes=n_classes)
        self.features = _features(in_channels, BLOCK_CONVS, BLOCK_CHANNELS)
        n_layers = len(self.features)
        if extraction == "stage_specific" and not 0 <= layer_num < n_layers:
            raise ValueError(f"`layer_num` must be in 0..{n_layers - 1}, got {layer_num}")
        self.extraction, self.pooling = extraction, pooling
        self.stop = n_layers if extraction == "standard" else layer_num + 1
        channels = layer_channels(self.features, self.stop - 1)
        self.n_features = channels * {"avg": 1, "max": 1, "concat_avg_max": 2,
                                      "spp": sum(k**3 for k in SPP_LEVELS)}[pooling]
        # the head trains the features; consumers of the package never call it
        self.head = nn.Linear(self.n_features, n_classes) if n_classes else None

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """Output of the chosen layer, (B, C, z, y, x)."""
        for layer in list(self.features)[: self.stop]:
            x = layer(x)
        return x

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        """Pooled feature vector (B, F) of a feature map."""
        if self.pooling == "avg":
            return fmap.mean(dim=(2, 3, 4))
        if self.pooling == "max":
            return fmap.amax(dim=(2, 3, 4))
        if self.pooling == "concat_avg_max":
            return torch.cat([fmap.mean(dim=(2, 3, 4)), fmap.amax(dim=(2, 3, 4))], dim=1)
        return torch.cat([nn.functional.adaptive_avg_pool3d(fmap, k).flatten(1) for k in SPP_LEVELS], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.feature_map(x))
