"""Z-score normalisation of EM images: the one implementation.

Every copy of "zero mean, unit variance" outside the runner calls
:func:`zero_mean_unit_variance`: the training data (`training.data`,
`training.augment`, `training.adapt`), the simulated training pairs
(`simulate.training`) and the package builder's test tensors
(`packaging.build.normalise_like_rdf`, which is what ``bioimageio test``
reproduces from the RDF). The runner pins bioimageio.core's
``fixed_zero_mean_unit_variance`` to whole-volume statistics computed chunk
by chunk (`runner.statistics`, `runner.session`); its pinned standard
deviation is ``max(std + eps, 1e-6)``, the same expression as here.

numpy only: no torch, no bioimageio.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np

__all__ = ["RDF_EPS", "MIN_STD", "zero_mean_unit_variance"]

#: ``eps`` of the ``zero_mean_unit_variance`` preprocessing our RDFs declare:
#: bioimage.io computes ``(x - mean) / (std + eps)``.
RDF_EPS = 1e-6

#: Smallest standard deviation divided by (so a constant image stays finite).
MIN_STD = 1e-6


def zero_mean_unit_variance(
    x: np.ndarray,
    axes: Optional[Union[int, Sequence[int]]] = None,
    *,
    eps: float = RDF_EPS,
    min_std: float = MIN_STD,
    dtype: np.dtype = np.float32,
) -> np.ndarray:
    """Normalise to zero mean and unit variance: ``(x - mean) / max(std + eps, min_std)``.

    Intensities are unitless; the statistics are those of `x` itself (the
    whole image or volume when ``axes`` is None, never a tile of it).

    Parameters
    ----------
    x : ndarray, any shape, any real dtype
        Raw intensities, e.g. ``(Z, Y, X)`` or ``(Y, X)`` for one image, or
        ``(B, C, [Z,] Y, X)`` for a bioimage.io tensor.
    axes : int or tuple of int, optional
        Axes the mean and standard deviation are taken over; the others keep
        separate statistics (e.g. ``(2, 3, 4)``: per batch item and channel
        of a ``(B, C, Z, Y, X)`` tensor, as the RDF's ``axes: [z, y, x]``).
        Default: all axes (one mean and std for the whole array).
    eps : float, optional
        Added to the standard deviation, with the meaning of ``eps`` in the
        bioimage.io ``zero_mean_unit_variance`` preprocessing. Default
        :data:`RDF_EPS` (1e-6). The training data use ``eps=0.0``: they
        divide by the standard deviation itself, floored at `min_std`.
    min_std : float, optional
        Floor of the divisor ``std + eps``. Default :data:`MIN_STD` (1e-6);
        with ``eps >= min_std`` it never binds.
    dtype : numpy dtype, optional
        Precision of the statistics and the arithmetic (float32 by default;
        the package builder uses float64). The result is float32 either way.

    Returns
    -------
    ndarray of float32, the shape of `x`
        Zero mean and (up to `eps`) unit standard deviation over `axes`.

    Examples
    --------
    >>> img = np.array([[0, 2], [4, 6]], dtype=np.uint8)
    >>> zero_mean_unit_variance(img, eps=0.0)
    array([[-1.3416407, -0.4472136],
           [ 0.4472136,  1.3416407]], dtype=float32)
    """
    x = np.asarray(x).astype(dtype)
    mean = x.mean(axis=axes, keepdims=True)
    std = x.std(axis=axes, keepdims=True)
    return ((x - mean) / np.maximum(std + eps, min_std)).astype(np.float32, copy=False)
