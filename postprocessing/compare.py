"""Comparison of label volumes: identical partitions and instance matching."""

from __future__ import annotations

import numpy as np

__all__ = ["same_partition", "match_instances"]


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


def match_instances(truth: np.ndarray, prediction: np.ndarray, iou_threshold: float = 0.5) -> dict:
    """Match instances one-to-one with IoU strictly above a threshold.

    With ``iou_threshold >= 0.5`` a match is unique, so no assignment
    problem needs solving (IoU > 0.5 is slightly stricter than >= 0.5).

    Parameters
    ----------
    truth, prediction : ndarray of int, same shape
        Label volumes, 0 = background.
    iou_threshold : float, optional
        Intersection over union a match must exceed (>= 0.5). Default 0.5.

    Returns
    -------
    dict
        ``tp``, ``fp``, ``fn`` (counts), ``precision``, ``recall``, ``f1``
        (1.0 when both volumes are empty).
    """
    if iou_threshold < 0.5:
        raise ValueError(f"`iou_threshold` must be >= 0.5 for unique matches, got {iou_threshold}")
    t = np.asarray(truth).ravel().astype(np.int64)
    p = np.asarray(prediction).ravel().astype(np.int64)
    t_ids, t_sizes = np.unique(t[t > 0], return_counts=True)
    p_ids, p_sizes = np.unique(p[p > 0], return_counts=True)
    both = (t > 0) & (p > 0)
    pairs, overlap = np.unique(np.stack([t[both], p[both]]), axis=1, return_counts=True)
    size_t = t_sizes[np.searchsorted(t_ids, pairs[0])] if pairs.size else np.zeros(0)
    size_p = p_sizes[np.searchsorted(p_ids, pairs[1])] if pairs.size else np.zeros(0)
    iou = overlap / (size_t + size_p - overlap) if pairs.size else np.zeros(0)
    tp = int((iou > iou_threshold).sum())
    fp, fn = len(p_ids) - tp, len(t_ids) - tp
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}
