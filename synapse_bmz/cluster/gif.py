"""Animated GIFs of crops: the cube played through z, one grey window for every crop of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

import numpy as np

__all__ = ["grey_window", "write_crop_gif"]


def grey_window(crops: np.ndarray) -> Tuple[float, float]:
    """1st and 99th percentile over all crops: one window, so brightness compares between crops."""
    lo, hi = np.percentile(np.asarray(crops, dtype=np.float32), [1, 99])
    return float(lo), float(max(hi, lo + 1e-6))


def write_crop_gif(path, crop: np.ndarray, window: Tuple[float, float], *, frames: int = 20,
                   frame_ms: int = 120, scale: int = 2) -> Path:
    """Write one crop as a looping animated GIF through z.

    Parameters
    ----------
    path : path-like
        Written via a temporary name and renamed.
    crop : (Z, Y, X) ndarray
        The crop as the extractor sees it (after segmentation blending).
    window : (lo, hi)
        Grey window (`grey_window`); values outside are clipped.
    frames : int
        Number of evenly spaced z slices played (all slices if the crop has fewer).
    frame_ms : int
        Display time of each frame, milliseconds.
    scale : int
        Nearest-neighbour upscaling of each frame (80 px crops are small on screen).

    Returns
    -------
    Path
    """
    from PIL import Image

    crop = np.asarray(crop, dtype=np.float32)
    if crop.ndim != 3:
        raise ValueError(f"a crop must be (Z, Y, X), got shape {crop.shape}")
    lo, hi = window
    z = np.unique(np.linspace(0, crop.shape[0] - 1, min(frames, crop.shape[0])).round().astype(int))
    grey = (np.clip((crop[z] - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    if scale > 1:
        grey = grey.repeat(scale, axis=1).repeat(scale, axis=2)
    images = [Image.fromarray(g, mode="L") for g in grey]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=frame_ms, loop=0)
    tmp.replace(path)
    return path
