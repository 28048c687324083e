"""Grad-CAM attention maps of the VGG3D feature extractor, and PNG slices of them.

A feature extractor has no class score, so the scalar explained is the
projection of the crop's pooled features onto a direction: by default the
crop's own feature vector (what makes this crop's features large), or a
cluster centroid / one feature index. Grad-CAM weights each channel of the
chosen layer by its mean gradient, sums, keeps the positive part and
resamples it to the crop (trilinear). Maps are scaled by one maximum per
crop (not per slice), and the PNGs share one grey window per crop, so
brightness compares across depth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import numpy as np
import pandas as pd

__all__ = ["grad_cam", "multi_layer_cam", "write_cam_png", "top_attended_regions", "LAYER_PRESETS"]

#: SynapseClusterEM's early / middle / late layers (``features.3``, ``.20``, ``.27``).
LAYER_PRESETS = {"early": 3, "middle": 20, "late": 27}


def _normalised(crop: np.ndarray) -> np.ndarray:
    c = np.asarray(crop, dtype=np.float64)
    return ((c - c.mean()) / (c.std() + 1e-6)).astype(np.float32)


def grad_cam(model, crop: np.ndarray, layer_num: Union[int, str] = "middle",
             direction: Union[None, int, np.ndarray] = None) -> np.ndarray:
    """Grad-CAM map of one crop for ``model.features[layer_num]``.

    Parameters
    ----------
    model : synapse_bmz.models.vgg3d.VGG3D
        In eval mode (e.g. `synapse_bmz.cluster.features.load_extractor`).
    crop : (Z, Y, X) ndarray
        Raw crop; normalised like the package's RDF (zero mean, unit sd).
    layer_num : int or {'early', 'middle', 'late'}
        Index into ``model.features`` (`LAYER_PRESETS` for the names).
    direction : None, int or (F,) ndarray
        Scalar explained: ``features . direction``; None = the crop's own
        features (detached), an int = that single feature.

    Returns
    -------
    (Z, Y, X) ndarray of float32 in [0, 1]
        Scaled by the map's maximum over the whole crop (all zeros if the
        map has no positive part).
    """
    import torch

    layer = LAYER_PRESETS.get(layer_num, layer_num) if isinstance(layer_num, str) else int(layer_num)
    if isinstance(layer, str) or not 0 <= layer < len(model.features):
        raise ValueError(f"`layer_num` must be 0..{len(model.features) - 1} or one of {sorted(LAYER_PRESETS)}, got {layer_num!r}")
    x = torch.from_numpy(_normalised(crop))[None, None]
    act = None
    for i, mod in enumerate(list(model.features)[: model.stop]):
        x = mod(x)
        if i == layer:
            act = x
            act.retain_grad()
            # an in-place ReLU next must not overwrite the activation whose gradient we read
            x = act.clone()
    if act is None:
        raise ValueError(f"layer {layer} is beyond the extraction layer {model.stop - 1} of this model")
    feats = model.pool(x)[0]
    if direction is None:
        d = feats.detach()
    elif isinstance(direction, (int, np.integer)):
        d = torch.zeros_like(feats)
        d[int(direction)] = 1.0
    else:
        d = torch.as_tensor(np.asarray(direction, np.float32))
        if d.shape != feats.shape:
            raise ValueError(f"`direction` (shape {tuple(d.shape)}) must have the features' shape {tuple(feats.shape)}")
    model.zero_grad(set_to_none=True)
    (feats * d).sum().backward()
    weights = act.grad.mean(dim=(2, 3, 4), keepdim=True)
    cam = torch.relu((weights * act).sum(dim=1, keepdim=True))
    cam = torch.nn.functional.interpolate(cam, size=tuple(crop.shape), mode="trilinear", align_corners=False)[0, 0]
    cam = cam.detach().numpy()
    peak = cam.max()
    return (cam / peak if peak > 0 else cam).astype(np.float32)


def multi_layer_cam(model, crop: np.ndarray, layers: Sequence[Union[int, str]] = ("early", "middle", "late"),
                    direction=None) -> Dict[str, np.ndarray]:
    """`grad_cam` for several layers of the same crop: ``{"features.N": map}``."""
    out = {}
    for layer in layers:
        n = LAYER_PRESETS.get(layer, layer) if isinstance(layer, str) else int(layer)
        out[f"features.{n}"] = grad_cam(model, crop, n, direction)
    return out


def _jet(v: np.ndarray) -> np.ndarray:
    """A blue-cyan-yellow-red colour map (float [0, 1] -> uint8 RGB) without matplotlib."""
    v = np.clip(v, 0, 1)[..., None]
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return (np.concatenate([r, g, b], -1) * 255).astype(np.uint8)


def write_cam_png(path, crop: np.ndarray, cams: Dict[str, np.ndarray], n_slices: int = 3,
                  alpha: float = 0.45) -> Path:
    """One PNG: rows = z slices (evenly spaced), columns = the crop, then each map over the crop.

    The grey window (1st..99th percentile) is computed once over the whole crop,
    and the maps keep their per-crop scale, so the same intensity or attention
    has the same colour in every slice.
    """
    from PIL import Image

    z = np.linspace(0, crop.shape[0] - 1, n_slices + 2)[1:-1].round().astype(int)
    lo, hi = np.percentile(crop, [1, 99])
    grey = np.clip((crop - lo) / max(hi - lo, 1e-6), 0, 1)
    rows = []
    for k in z:
        g = (np.stack([grey[k]] * 3, -1) * 255).astype(np.float32)
        tiles = [g]
        for cam in cams.values():
            a = alpha * cam[k][..., None]
            tiles.append(g * (1 - a) + _jet(cam[k]).astype(np.float32) * a)
        rows.append(np.concatenate(tiles, axis=1))
    img = np.concatenate(rows, axis=0).astype(np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


def top_attended_regions(cams: np.ndarray, voxel_size_nm, synapse_ids: Optional[Sequence] = None,
                         n_top: int = 5, radius_nm: float = 40.0) -> pd.DataFrame:
    """The most attended places across samples.

    Parameters
    ----------
    cams : (N, Z, Y, X) ndarray
        One Grad-CAM map per sample (each scaled to [0, 1]).
    voxel_size_nm : (3,) sequence of float
    n_top : int
        Rows returned, highest ``attention_mean`` first.
    radius_nm : float
        The region around each sample's peak whose mean attention is reported.

    Returns
    -------
    pandas.DataFrame
        ``synapse_id``, ``peak_{z,y,x}_nm`` (offset from the crop centre, nm), ``attention_mean``.
    """
    cams = np.asarray(cams)
    vs = np.asarray(voxel_size_nm, float)
    ids = list(synapse_ids) if synapse_ids is not None else list(range(len(cams)))
    grid = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * v for n, v in zip(cams.shape[1:], vs)], indexing="ij")
    rows = []
    for sid, cam in zip(ids, cams):
        p = np.unravel_index(int(np.argmax(cam)), cam.shape)
        peak = np.array([g[p] for g in grid])
        near = sum((g - c) ** 2 for g, c in zip(grid, peak)) <= radius_nm**2
        rows.append({"synapse_id": sid, "peak_z_nm": peak[0], "peak_y_nm": peak[1], "peak_x_nm": peak[2],
                     "attention_mean": float(cam[near].mean())})
    return pd.DataFrame(rows).sort_values("attention_mean", ascending=False).head(n_top).reset_index(drop=True)
