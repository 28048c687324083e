"""A deliberately small 3D network for engine benchmarks: three 3-tap convolutions
(z, y, x) and a sigmoid. Its receptive field is 3 voxels per axis (measured halo 2,
on the pooling-free grid), so tiling must still be exact, while the engine (IO, scheduling), not the
network, dominates the time. Imports only torch (shipped as architecture)."""

import torch
from torch import nn


class SeparableNet(nn.Module):
    def __init__(self, seed: int = 0):
        super().__init__()
        self.init_kwargs = {"seed": seed}
        g = torch.Generator().manual_seed(seed)
        self.z = nn.Conv3d(1, 1, (3, 1, 1), padding=(1, 0, 0))
        self.y = nn.Conv3d(1, 1, (1, 3, 1), padding=(0, 1, 0))
        self.x = nn.Conv3d(1, 1, (1, 1, 3), padding=(0, 0, 1))
        with torch.no_grad():
            for conv in (self.z, self.y, self.x):
                conv.weight.copy_(torch.rand(conv.weight.shape, generator=g) / 2 + 0.1)
                conv.bias.zero_()

    def forward(self, x):
        return torch.sigmoid(self.x(self.y(self.z(x))))
