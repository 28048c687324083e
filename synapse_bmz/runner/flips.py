"""Test-time augmentation: one prediction averaged over mirror images of its input.

A network trained with random flips is close to, but not exactly, equivariant
to them; averaging its outputs over the four mirror images of each tile in
the image plane (none, y, x, y and x) removes that residual and the noise of
single passes, at four times the compute. It is one function so the runner
(every front end) and the training-time card figure apply the same thing.
Only in-plane (y, x) mirrors are used: z may be anisotropic, and every
mirror keeps the tile's shape, so tiles, halos and batch sizes stay valid.
"""

from __future__ import annotations

from typing import Callable, List, Tuple

import numpy as np

from ..errors import OptionError
from ..zoo.config import TTA_MODES


def checked_tta(mode: str, option: str = "--tta") -> str:
    """``mode`` if it is one of `TTA_MODES`, else a one-line `OptionError` naming ``option``."""
    if mode not in TTA_MODES:
        raise OptionError(option, f"{mode!r} is not a test-time augmentation; use one of {', '.join(TTA_MODES)}")
    return mode


def mirror_axes(n_spatial: int) -> List[Tuple[int, ...]]:
    """The in-plane mirrors as tuples of spatial axis indices (from 0): (), (y,), (x,), (y, x)."""
    y, x = n_spatial - 2, n_spatial - 1
    return [(), (y,), (x,), (y, x)]


def flip_averaged(predict: Callable[[np.ndarray], np.ndarray], batch: np.ndarray, n_spatial: int,
                  mode: str = "flips") -> np.ndarray:
    """``predict(batch)`` averaged over the in-plane mirror images of ``batch``.

    Parameters
    ----------
    predict : callable
        ``(B, *spatial) -> (B, C, *spatial)`` float array, e.g.
        `synapse_bmz.runner.session.ModelSession.predict`.
    batch : ndarray, shape (B, [Z,] Y, X)
    n_spatial : int
        Number of spatial axes (2 or 3); the last two are mirrored.
    mode : str
        ``"flips"`` averages over the 4 mirror images; ``"none"`` is one plain pass.

    Returns
    -------
    ndarray, shape (B, C, [Z,] Y, X), float32
    """
    checked_tta(mode, "test_time_augmentation")
    if mode == "none":
        return np.asarray(predict(batch), dtype=np.float32)
    total = None
    for axes in mirror_axes(n_spatial):
        x = np.ascontiguousarray(np.flip(batch, [1 + a for a in axes])) if axes else batch
        p = np.asarray(predict(x), dtype=np.float32)
        p = np.flip(p, [2 + a for a in axes]) if axes else p
        total = p.copy() if total is None else total + p
    return total / len(mirror_axes(n_spatial))
