"""A U-Net with several output heads: Synful's post-synaptic mask + direction vectors.

This file is copied into the ``synaptic_partners`` package as the
architecture source of the ``pytorch_state_dict`` weights, so it imports
nothing but torch and uses only operators old consumers run (conv, batch
norm, ReLU, max-pool, transposed conv, concatenation, sigmoid):
deepImageJ's PyTorch 1.13 engine and ONNX opset 17 execute it unchanged.

Two variants (Synful's single-task and multi-task networks):

``multi_task``
    One encoder, one decoder per head; the heads share the features of the
    contracting path.
``single_task``
    One complete U-Net (encoder and decoder) per head.

Both have the receptive field and pooling grid of a `UNet` with the same
``depth``, ``pool_factors`` and ``kernel_sizes``, so the halo machinery
(`synapse_bmz.packaging.halo.unet_context`) applies to them unchanged.
"""

from typing import List, Sequence, Union

import torch
from torch import nn

IntOrSeq = Union[int, Sequence[int]]


def _conv(ndim: int):
    return nn.Conv2d if ndim == 2 else nn.Conv3d


class _DoubleConv(nn.Module):
    def __init__(self, ndim: int, c_in: int, c_out: int, kernel: Sequence[int]):
        super().__init__()
        pad = [k // 2 for k in kernel]
        norm = nn.BatchNorm2d if ndim == 2 else nn.BatchNorm3d
        self.block = nn.Sequential(
            _conv(ndim)(c_in, c_out, kernel, padding=pad, bias=False), norm(c_out), nn.ReLU(inplace=True),
            _conv(ndim)(c_out, c_out, kernel, padding=pad, bias=False), norm(c_out), nn.ReLU(inplace=True),
        )

    def forward(self, x):
        return self.block(x)


class _Encoder(nn.Module):
    def __init__(self, ndim, c_in, chans, kernels, pools):
        super().__init__()
        pool = nn.MaxPool2d if ndim == 2 else nn.MaxPool3d
        self.levels = nn.ModuleList()
        self.pools = nn.ModuleList()
        for level, c in enumerate(chans):
            self.levels.append(_DoubleConv(ndim, c_in, c, kernels[level]))
            c_in = c
            if level < len(chans) - 1:
                self.pools.append(pool(pools[level], stride=pools[level]))

    def forward(self, x) -> List[torch.Tensor]:
        feats = []
        for i, enc in enumerate(self.levels):
            x = enc(x)
            feats.append(x)
            if i < len(self.pools):
                x = self.pools[i](x)
        return feats


class _Decoder(nn.Module):
    def __init__(self, ndim, chans, kernels, pools, c_out):
        super().__init__()
        up = nn.ConvTranspose2d if ndim == 2 else nn.ConvTranspose3d
        self.ups = nn.ModuleList()
        self.levels = nn.ModuleList()
        for level in reversed(range(len(chans) - 1)):
            self.ups.append(up(chans[level + 1], chans[level], pools[level], stride=pools[level]))
            self.levels.append(_DoubleConv(ndim, 2 * chans[level], chans[level], kernels[level]))
        self.head = _conv(ndim)(chans[0], c_out, 1)

    def forward(self, feats: List[torch.Tensor]):
        x = feats[-1]
        for i, (up, dec) in enumerate(zip(self.ups, self.levels)):
            x = dec(torch.cat([feats[len(feats) - 2 - i], up(x)], dim=1))
        return self.head(x)


class PartnerUNet(nn.Module):
    """U-Net with one sigmoid mask head and one linear vector head (Synful).

    Input (b, 1, [z,] y, x); output (b, 1 + ndim, [z,] y, x): channel 0 the
    post-synaptic probability (sigmoid), channels 1.. the vector to the
    pre-synaptic site in nm, (z, y, x) order (the linear head times
    ``vector_scale_nm``, a fixed 1x1 convolution, so the network itself
    predicts values of order 1).

    Parameters
    ----------
    ndim : {2, 3}
        Spatial dimensions.
    in_channels : int
        Input channels.
    base_channels : int
        Feature maps at the first level, doubled at every level below.
    depth : int
        Resolution levels (``depth - 1`` poolings).
    pool_factors, kernel_sizes : list of int or list of tuple, optional
        Per level, as in `UNet` (anisotropic ssTEM: ``[(1, 2, 2), ...]``,
        ``(1, 3, 3)`` kernels at the fine levels).
    variant : {'multi_task', 'single_task'}
        Shared encoder with two decoders, or two complete U-Nets.
    vector_scale_nm : float
        nm per unit of the vector head's output.

    Notes
    -----
    Each spatial size must be divisible by the product of the pooling
    factors along that axis (`divisibility`).
    """

    def __init__(
        self,
        ndim: int = 3,
        in_channels: int = 1,
        base_channels: int = 8,
        depth: int = 3,
        pool_factors: Union[List[IntOrSeq], None] = None,
        kernel_sizes: Union[List[IntOrSeq], None] = None,
        variant: str = "multi_task",
        vector_scale_nm: float = 100.0,
    ):
        super().__init__()
        self.init_kwargs = dict(
            ndim=ndim, in_channels=in_channels, base_channels=base_channels, depth=depth,
            pool_factors=[list(p) if not isinstance(p, int) else p for p in (pool_factors or [])] or None,
            kernel_sizes=[list(k) if not isinstance(k, int) else k for k in (kernel_sizes or [])] or None,
            variant=variant, vector_scale_nm=float(vector_scale_nm),
        )
        if ndim not in (2, 3):
            raise ValueError(f"ndim must be 2 or 3, got {ndim}")
        if variant not in ("multi_task", "single_task"):
            raise ValueError(f"variant must be 'multi_task' or 'single_task', got {variant!r}")
        self.ndim = ndim
        self.variant = variant
        self.vector_scale_nm = float(vector_scale_nm)
        pools = [self._tuple(p) for p in (pool_factors or [2] * (depth - 1))]
        kernels = [self._tuple(k) for k in (kernel_sizes or [3] * depth)]
        if len(pools) != depth - 1 or len(kernels) != depth:
            raise ValueError("need depth - 1 pool factors and depth kernel sizes")
        self.pool_factors = pools
        chans = [base_channels * 2 ** i for i in range(depth)]
        self.encoder = _Encoder(ndim, in_channels, chans, kernels, pools)
        # single task: a second encoder of its own for the vectors
        self.vector_encoder = (_Encoder(ndim, in_channels, chans, kernels, pools)
                               if variant == "single_task" else None)
        self.mask_decoder = _Decoder(ndim, chans, kernels, pools, 1)
        self.vector_decoder = _Decoder(ndim, chans, kernels, pools, ndim)
        # nm per unit as a fixed 1x1 convolution: deepImageJ's engine runs convolutions but
        # not aten::mul
        self.vector_scale = _conv(ndim)(ndim, ndim, 1, bias=False)
        with torch.no_grad():
            self.vector_scale.weight.zero_()
            for i in range(ndim):
                self.vector_scale.weight[(i, i) + (0,) * ndim] = float(vector_scale_nm)
        self.vector_scale.weight.requires_grad_(False)
        self.sigmoid = nn.Sigmoid()

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
        feats = self.encoder(x)
        vec_feats = feats if self.vector_encoder is None else self.vector_encoder(x)
        mask = self.sigmoid(self.mask_decoder(feats))
        vectors = self.vector_scale(self.vector_decoder(vec_feats))
        return torch.cat([mask, vectors], dim=1)
