"""A small 2D / 3D U-Net for EM segmentation.

This file is copied into every model package as the architecture source of
the ``pytorch_state_dict`` weights, so it imports nothing but torch. It uses
only operators that old consumers execute (conv, batch norm, ReLU, max-pool,
transposed conv, concatenation, sigmoid): deepImageJ's PyTorch 1.13 engine
and ONNX opset 17 run it unchanged.
"""

from typing import List, Sequence, Union

import torch
from torch import nn

IntOrSeq = Union[int, Sequence[int]]


def _conv(ndim: int):
    return nn.Conv2d if ndim == 2 else nn.Conv3d


def _norm(ndim: int):
    return nn.BatchNorm2d if ndim == 2 else nn.BatchNorm3d


def _pool(ndim: int):
    return nn.MaxPool2d if ndim == 2 else nn.MaxPool3d


def _up(ndim: int):
    return nn.ConvTranspose2d if ndim == 2 else nn.ConvTranspose3d


class _DoubleConv(nn.Module):
    def __init__(self, ndim: int, c_in: int, c_out: int, kernel: Sequence[int]):
        super().__init__()
        pad = [k // 2 for k in kernel]
        self.block = nn.Sequential(
            _conv(ndim)(c_in, c_out, kernel, padding=pad, bias=False),
            _norm(ndim)(c_out),
            nn.ReLU(inplace=True),
            _conv(ndim)(c_out, c_out, kernel, padding=pad, bias=False),
            _norm(ndim)(c_out),
            nn.ReLU(inplace=True),
        )

    def forward(self, x):
        return self.block(x)


class UNet(nn.Module):
    """U-Net with 'same' padding, for 2D (b, c, y, x) or 3D (b, c, z, y, x) input.

    Parameters
    ----------
    ndim : {2, 3}
        Number of spatial dimensions.
    in_channels, out_channels : int
        Channels of the input image and of the output maps.
    base_channels : int
        Feature maps at the first level; doubled at every level below.
    depth : int
        Number of resolution levels (``depth - 1`` poolings).
    pool_factors : list of int or list of tuple
        Pooling factor per level transition, e.g. ``[(1, 2, 2), (1, 2, 2), (2, 2, 2)]``
        for anisotropic ssTEM where z is ~10x coarser than y, x. Defaults to 2
        along every axis.
    kernel_sizes : list of int or list of tuple
        Convolution kernel per level, e.g. ``(1, 3, 3)`` at the finest
        anisotropic levels. Defaults to 3.
    final_activation : {"sigmoid", "none"}
        Sigmoid gives per-channel probabilities in [0, 1].

    Notes
    -----
    Each spatial size must be divisible by the product of the pooling factors
    along that axis; `divisibility` reports it per axis.
    """

    def __init__(
        self,
        ndim: int = 2,
        in_channels: int = 1,
        out_channels: int = 2,
        base_channels: int = 16,
        depth: int = 4,
        pool_factors: Union[List[IntOrSeq], None] = None,
        kernel_sizes: Union[List[IntOrSeq], None] = None,
        final_activation: str = "sigmoid",
    ):
        super().__init__()
        self.init_kwargs = dict(
            ndim=ndim, in_channels=in_channels, out_channels=out_channels,
            base_channels=base_channels, depth=depth,
            pool_factors=[list(p) if not isinstance(p, int) else p for p in (pool_factors or [])] or None,
            kernel_sizes=[list(k) if not isinstance(k, int) else k for k in (kernel_sizes or [])] or None,
            final_activation=final_activation,
        )
        if ndim not in (2, 3):
            raise ValueError(f"ndim must be 2 or 3, got {ndim}")
        self.ndim = ndim
        pool_factors = pool_factors or [2] * (depth - 1)
        kernel_sizes = kernel_sizes or [3] * depth
        if len(pool_factors) != depth - 1 or len(kernel_sizes) != depth:
            raise ValueError("need depth - 1 pool factors and depth kernel sizes")
        self.pool_factors = [self._tuple(p) for p in pool_factors]
        kernels = [self._tuple(k) for k in kernel_sizes]
        chans = [base_channels * 2**i for i in range(depth)]

        self.encoders = nn.ModuleList()
        self.pools = nn.ModuleList()
        c_prev = in_channels
        for level in range(depth):
            self.encoders.append(_DoubleConv(ndim, c_prev, chans[level], kernels[level]))
            c_prev = chans[level]
            if level < depth - 1:
                pf = self.pool_factors[level]
                self.pools.append(_pool(ndim)(pf, stride=pf))
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level in reversed(range(depth - 1)):
            pf = self.pool_factors[level]
            self.ups.append(_up(ndim)(chans[level + 1], chans[level], pf, stride=pf))
            self.decoders.append(_DoubleConv(ndim, 2 * chans[level], chans[level], kernels[level]))
        self.head = _conv(ndim)(chans[0], out_channels, 1)
        self.final = nn.Sigmoid() if final_activation == "sigmoid" else nn.Identity()

    def _tuple(self, v: IntOrSeq):
        return tuple([int(v)] * self.ndim) if isinstance(v, int) else tuple(int(x) for x in v)

    @property
    def divisibility(self) -> List[int]:
        """Required divisor of each spatial size, in axis order (z, y, x) or (y, x)."""
        out = [1] * self.ndim
        for pf in self.pool_factors:
            out = [o * p for o, p in zip(out, pf)]
        return out

    def forward(self, x):
        skips = []
        for i, enc in enumerate(self.encoders):
            x = enc(x)
            if i < len(self.pools):
                skips.append(x)
                x = self.pools[i](x)
        for up, dec in zip(self.ups, self.decoders):
            x = up(x)
            x = dec(torch.cat([skips.pop(), x], dim=1))
        return self.final(self.head(x))
