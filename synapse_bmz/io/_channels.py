"""The one rule for images that carry a channel (samples) axis."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synapse_bmz.errors import InputError


def grey_channel(path: str | Path, n_channels: int, sample: np.ndarray | None = None) -> int:
    """Return the index of the grey channel to keep, or raise InputError.

    Rule: 1 channel -> 0; 2 channels (grey + alpha, PIL mode ``LA``) -> 0;
    3 or 4 channels (RGB / RGBA) -> 0 only when R, G and B are identical in
    `sample` (a grey image saved as colour); anything else is refused,
    because EM intensities must not be silently mixed from colour channels.

    Parameters
    ----------
    path : str or Path
        The file, for the error message.
    n_channels : int
        Size of the channel axis.
    sample : (..., C) ndarray, optional
        Some pixels with the channel axis last, used to check R == G == B.
    """
    if n_channels in (1, 2):
        return 0
    if n_channels in (3, 4):
        if sample is not None and np.array_equal(sample[..., 0], sample[..., 1]) and np.array_equal(
            sample[..., 0], sample[..., 2]
        ):
            return 0
        raise InputError(
            path,
            f"colour image with {n_channels} channels (RGB{'A' if n_channels == 4 else ''}) "
            "whose channels differ; convert it to a single grey channel first",
        )
    raise InputError(
        path, f"image has {n_channels} channels; expected one grey channel (EM intensities)"
    )
