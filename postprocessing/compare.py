"""Comparison of label volumes: identical partitions.

Instance matching and F1 live in one place, `analysis.evaluation.instance_scores`
(postprocessing may not import analysis, and tests and benchmarks can).
"""

from __future__ import annotations

import numpy as np

__all__ = ["same_partition"]


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True if ``a`` and ``b`` are the same instances up to relabelling.

    Parameters
    ----------
    a, b : ndarray of int, same shape
        Label volumes, 0 = background (background must coincide).
    """
    a = np.asarray(a).ravel().astype(np.int64)
    b = np.asarray(b).ravel().astype(np.int64)
    if a.shape != b.shape or not np.array_equal(a == 0, b == 0):
        return False
    pairs = np.unique(np.stack([a, b]), axis=1)
    return len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))
