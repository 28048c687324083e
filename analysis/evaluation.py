"""Segmentation metrics: instance F1 with Hungarian matching, Dice, IoU, CREMI clefts.

The one instance F1 of the code base: :func:`instance_scores` for one image,
:func:`pooled_instance_scores` over several, both through
:func:`scores_from_counts`. Where the ground truth is objects given by a
centre and a radius (vesicles annotated as spheres or membrane points, not
voxel masks), :func:`detection_scores` matches centres instead, through the
same formula.

CREMI cleft conventions (https://cremi.org, ``cremi.evaluation.Clefts`` of
cremi_python): cleft volumes are uint64 with background
``0xffffffffffffffff``; every other value is a cleft. Distances are Euclidean
in nm with the anisotropic voxel size (CREMI: (40, 4, 4) nm in (z, y, x)),
from a distance transform of each side's complement with ``sampling`` = the
voxel size, as cremi_python computes them.

- **ADGT** (average distance to ground truth, cremi_python's
  ``acc_false_positives``): mean distance of every *predicted* cleft voxel to
  the nearest ground-truth cleft voxel. Extra detections raise it.
- **ADF** (average distance to the found clefts, ``acc_false_negatives``):
  mean distance of every *ground-truth* cleft voxel to the nearest predicted
  cleft voxel. Missed clefts raise it.
- **CREMI score**: the mean of the two.
- False positives / negatives (``count_false_positives`` /
  ``count_false_negatives``): predicted / ground-truth cleft voxels farther
  than 200 nm from the other side.

Ground-truth voxels equal to ``ignore_label`` (CREMI's masked value
``0xfffffffffffffffe`` by default) count as background on both sides, so they
are left out of every count and average — cremi_python does the same by
folding them into both background masks. Where cremi_python leaves the empty
cases undefined (``np.mean`` of nothing; scipy's distance transform of a side
without cleft voxels, which has no zero to measure from), we return NaN for
the average over an empty side and inf for distances to an empty side.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import edt
import numpy as np
from scipy.optimize import linear_sum_assignment

from ._checks import same_shape, voxel_size_for

CREMI_BACKGROUND = np.uint64(0xFFFFFFFFFFFFFFFF)
CREMI_IGNORE = np.uint64(0xFFFFFFFFFFFFFFFE)


def _overlaps(gt: np.ndarray, pred: np.ndarray):
    """(intersections (N_gt, N_pred), gt sizes, pred sizes, gt labels, pred labels), background dropped."""
    gt, pred = np.asarray(gt), np.asarray(pred)
    same_shape(pred, "pred", gt, "gt")
    g, p = gt.ravel(), pred.ravel()
    # objects are counted on the foreground only: the background (often most voxels) is never sorted
    g_fg, p_fg = g[g != 0], p[p != 0]
    gt_labels, gt_sizes = np.unique(g_fg, return_counts=True)
    pr_labels, pr_sizes = np.unique(p_fg, return_counts=True)
    both = (g != 0) & (p != 0)
    gi = np.searchsorted(gt_labels, g[both]).astype(np.int64)
    pj = np.searchsorted(pr_labels, p[both]).astype(np.int64)
    pair_ids, inter = np.unique(gi * len(pr_labels) + pj, return_counts=True)
    inter_full = np.zeros((len(gt_labels), len(pr_labels)), np.int64)
    inter_full[np.divmod(pair_ids, len(pr_labels))] = inter
    return inter_full, gt_sizes, pr_sizes, gt_labels, pr_labels


def _lying_in(inter, gt_sizes, pr_sizes) -> tuple[np.ndarray, np.ndarray]:
    """Per predicted object, how many ground-truth objects lie in it (more than half of their voxels);
    per ground-truth object, how many predicted objects lie in it."""
    return (2 * inter > gt_sizes[:, None]).sum(0), (2 * inter > pr_sizes[None, :]).sum(1)


def _merge_split(inter, gt_sizes, pr_sizes) -> dict[str, int]:
    per_pred, per_gt = _lying_in(inter, gt_sizes, pr_sizes)
    return {"merges": int((per_pred >= 2).sum()), "merged_gt": int(per_pred[per_pred >= 2].sum()),
            "splits": int((per_gt >= 2).sum()), "split_pred": int(per_gt[per_gt >= 2].sum())}


def _hungarian(iou: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The one matching of every instance metric: one-to-one, maximising the total IoU.

    Returns the matched row and column indices of ``iou`` (N_gt, N_pred) and
    their IoUs (every pair of the assignment, whatever its IoU).
    """
    if not iou.size:
        empty = np.zeros(0, np.intp)
        return empty, empty, np.zeros(0)
    rows, cols = linear_sum_assignment(iou, maximize=True)
    return rows, cols, iou[rows, cols]


def object_outcomes(gt: np.ndarray, pred: np.ndarray, iou_threshold: float = 0.5) -> dict[str, np.ndarray]:
    """What became of every object under :func:`instance_scores`' matching: the anatomy of its errors.

    Parameters
    ----------
    gt, pred : ndarray of int, same shape
        Instance labels, 0 is background.
    iou_threshold : float
        Smallest IoU of a true positive (default 0.5).

    Returns
    -------
    dict of 1D arrays, one entry per ground-truth object (``gt_*``, in label
    order) or per predicted object (``pred_*``):

    - ``gt_labels``, ``gt_voxels``, ``pred_labels``, ``pred_voxels``;
    - ``gt_matched``, ``pred_matched``: true positives (bool);
    - ``gt_touched``, ``pred_touched``: the object shares a voxel with an
      object of the other side (an unmatched object that is not touched was
      missed, or found, outright; a touched one was matched below the IoU
      threshold or lost in a merge or split);
    - ``gt_split``: two or more predicted objects lie in it (more than half
      of their voxels), ``pred_merge``: two or more ground-truth objects lie
      in it, as :func:`merge_split_counts`.

    Examples
    --------
    >>> gt = np.array([[1, 1, 0, 2, 2, 0, 3, 3, 3, 3, 0, 4]])
    >>> pred = np.array([[1, 1, 1, 1, 1, 0, 2, 2, 3, 3, 0, 0]])
    >>> o = object_outcomes(gt, pred)
    >>> o["gt_matched"].tolist(), o["gt_touched"].tolist(), o["gt_split"].tolist()
    ([False, False, True, False], [True, True, True, False], [False, False, True, False])
    >>> o["pred_matched"].tolist(), o["pred_merge"].tolist()
    ([False, True, False], [True, False, False])
    """
    inter, gt_sizes, pr_sizes, gt_labels, pr_labels = _overlaps(gt, pred)
    rows, cols, matched = _hungarian(inter / (gt_sizes[:, None] + pr_sizes[None, :] - inter))
    ok = matched >= iou_threshold
    gt_matched = np.zeros(len(gt_labels), bool)
    gt_matched[rows[ok]] = True
    pred_matched = np.zeros(len(pr_labels), bool)
    pred_matched[cols[ok]] = True
    per_pred, per_gt = _lying_in(inter, gt_sizes, pr_sizes)
    return {
        "gt_labels": gt_labels, "gt_voxels": gt_sizes, "gt_matched": gt_matched,
        "gt_touched": inter.sum(axis=1) > 0, "gt_split": per_gt >= 2,
        "pred_labels": pr_labels, "pred_voxels": pr_sizes, "pred_matched": pred_matched,
        "pred_touched": inter.sum(axis=0) > 0, "pred_merge": per_pred >= 2,
    }


def iou_matrix(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersection over union of every ground-truth with every predicted object.

    Parameters
    ----------
    gt, pred : ndarray of int, same shape
        Instance labels, 0 is background.

    Returns
    -------
    iou : (N_gt, N_pred) float ndarray
    gt_labels : (N_gt,) int ndarray
    pred_labels : (N_pred,) int ndarray
    """
    inter, gt_sizes, pr_sizes, gt_labels, pr_labels = _overlaps(gt, pred)
    return inter / (gt_sizes[:, None] + pr_sizes[None, :] - inter), gt_labels, pr_labels


def merge_split_counts(gt: np.ndarray, pred: np.ndarray) -> dict[str, int]:
    """Merges and splits by majority overlap.

    An object *lies in* another when more than half of its voxels do. A
    **merge** is a predicted object in which two or more ground-truth objects
    lie; a **split** is a ground-truth object in which two or more predicted
    objects lie.

    Parameters
    ----------
    gt, pred : ndarray of int, same shape
        Instance labels, 0 is background.

    Returns
    -------
    dict with ``merges`` (predicted objects), ``merged_gt`` (ground-truth
    objects lying in them), ``splits`` (ground-truth objects) and
    ``split_pred`` (predicted objects lying in them).

    Examples
    --------
    >>> gt = np.array([[1, 1, 0, 2, 2, 0, 3, 3, 3, 3]])
    >>> pred = np.array([[1, 1, 1, 1, 1, 0, 2, 2, 3, 3]])
    >>> merge_split_counts(gt, pred)
    {'merges': 1, 'merged_gt': 2, 'splits': 1, 'split_pred': 2}
    """
    return _merge_split(*_overlaps(gt, pred)[:3])


def scores_from_counts(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Precision, recall and F1 from matched-object counts: the one F1 formula.

    ``precision = tp / (tp + fp)``, ``recall = tp / (tp + fn)``,
    ``f1 = 2 tp / (2 tp + fp + fn)``. With nothing to find and nothing found
    (all counts 0) every score is 1; a side with no objects while the other
    has some scores 0.

    Parameters
    ----------
    tp, fp, fn : int
        True positives (matched pairs), false positives (unmatched predicted
        objects), false negatives (unmatched ground-truth objects).

    Returns
    -------
    dict with ``precision``, ``recall``, ``f1`` (floats in [0, 1]) and
    ``tp``, ``fp``, ``fn`` (ints).
    """
    tp, fp, fn = int(tp), int(fp), int(fn)
    precision = tp / (tp + fp) if tp + fp else 1.0 if fn == 0 else 0.0
    recall = tp / (tp + fn) if tp + fn else 1.0 if fp == 0 else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def detection_scores(gt_centres_nm, gt_radii_nm, pred_centres_nm,
                     max_distance_fraction: float = 1.0) -> dict:
    """Detection precision, recall and F1 of object centres against annotated spheres.

    A predicted centre may match a ground-truth object when it lies within
    ``max_distance_fraction`` x that object's radius of its centre; pairs are
    matched one-to-one (Hungarian, minimising the total distance), and the
    counts go through :func:`scores_from_counts`.

    Parameters
    ----------
    gt_centres_nm : (N, D) array_like
        Ground-truth centres in nm, axes (z, y, x) or (y, x).
    gt_radii_nm : (N,) array_like
        Ground-truth radii in nm (> 0).
    pred_centres_nm : (M, D) array_like
        Predicted centres (e.g. centroids of an object table) in nm, same axes.
    max_distance_fraction : float
        Largest matching distance as a fraction of the ground-truth radius.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1``, ``tp``, ``fp``, ``fn``, and
        ``matches``: list of ``(gt_index, pred_index, distance_nm)``.

    Examples
    --------
    >>> s = detection_scores([[0, 0, 0], [0, 0, 100]], [20, 20], [[0, 5, 0], [0, 0, 300]])
    >>> s["tp"], s["fp"], s["fn"]
    (1, 1, 1)
    """
    gt = np.asarray(gt_centres_nm, dtype=float).reshape(len(gt_radii_nm), -1)
    radii = np.asarray(gt_radii_nm, dtype=float)
    pred = np.asarray(pred_centres_nm, dtype=float)
    pred = pred.reshape(len(pred), gt.shape[1]) if pred.size else np.zeros((0, gt.shape[1]))
    if np.any(radii <= 0) or not np.all(np.isfinite(radii)):
        raise ValueError("`gt_radii_nm` must be finite and > 0")
    if max_distance_fraction <= 0:
        raise ValueError(f"`max_distance_fraction` must be > 0, got {max_distance_fraction}")
    matches = []
    if len(gt) and len(pred):
        dist = np.linalg.norm(gt[:, None, :] - pred[None, :, :], axis=-1)
        allowed = dist <= max_distance_fraction * radii[:, None]
        cost = np.where(allowed, dist, dist.max() * 10 + 1e6)  # never chosen over an allowed pair
        rows, cols = linear_sum_assignment(cost)
        matches = [(int(r), int(c), float(dist[r, c])) for r, c in zip(rows, cols) if allowed[r, c]]
    tp = len(matches)
    out = scores_from_counts(tp, len(pred) - tp, len(gt) - tp)
    out["matches"] = matches
    return out


def instance_scores(gt: np.ndarray, pred: np.ndarray, iou_threshold: float = 0.5) -> dict[str, float]:
    """Instance precision, recall and F1 after one-to-one Hungarian matching.

    Objects are matched to maximise the total IoU; a match counts as a true
    positive when its IoU is >= ``iou_threshold``. The scores are
    :func:`scores_from_counts` of the resulting counts.

    Parameters
    ----------
    gt, pred : ndarray of int, same shape, ``(z, y, x)`` or ``(y, x)``
        Instance labels, 0 is background.
    iou_threshold : float
        Smallest intersection over union of a true positive (default 0.5).

    Returns
    -------
    dict with ``precision``, ``recall``, ``f1``, ``tp``, ``fp``, ``fn``,
    ``mean_matched_iou``. Precision/recall/F1 are 1 when both are empty.
    """
    iou, gt_labels, pr_labels = iou_matrix(gt, pred)
    _, _, matched = _hungarian(iou)
    matched = matched[matched >= iou_threshold]
    tp = int(len(matched))
    scores = scores_from_counts(tp, len(pr_labels) - tp, len(gt_labels) - tp)
    scores["mean_matched_iou"] = float(matched.mean()) if tp else float("nan")
    return scores


def pooled_instance_scores(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]], iou_threshold: float = 0.5
) -> dict[str, float]:
    """Instance F1 pooled over several images: counts summed, then :func:`scores_from_counts`.

    Each ``(gt, pred)`` pair is matched on its own (:func:`instance_scores`,
    Hungarian, IoU >= ``iou_threshold``); pooling the counts weights every
    object equally, however the objects are spread over images or sections.

    Parameters
    ----------
    pairs : iterable of (gt, pred)
        Instance label arrays of one shape per pair, 0 = background (e.g. the
        z-sections of a volume, or the validation images); a generator is
        consumed one pair at a time.
    iou_threshold : float
        Smallest IoU of a true positive (default 0.5).

    Returns
    -------
    dict with ``precision``, ``recall``, ``f1``, ``tp``, ``fp``, ``fn`` and
    ``n_images`` (the number of pairs).
    """
    return pooled_instance_report(pairs, (iou_threshold,))[iou_threshold]


def pooled_instance_report(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]], iou_thresholds: Sequence[float] = (0.3, 0.5, 0.7)
) -> dict:
    """:func:`pooled_instance_scores` at several IoU thresholds, with merges and splits.

    Every pair is matched once (Hungarian on IoU, as :func:`instance_scores`;
    the matching does not depend on the threshold) and each threshold counts
    its own true positives; merges and splits are
    :func:`merge_split_counts`, summed over the pairs.

    Parameters
    ----------
    pairs : iterable of (gt, pred)
        Instance label arrays, 0 = background; consumed one pair at a time.
    iou_thresholds : sequence of float
        Smallest IoU of a true positive, one report each.

    Returns
    -------
    dict
        ``{threshold: scores}`` with the keys of :func:`pooled_instance_scores`
        for every threshold, plus ``"merges"``, ``"merged_gt"``, ``"splits"``,
        ``"split_pred"`` and ``"n_images"``.
    """
    thresholds = tuple(iou_thresholds)
    tp = np.zeros(len(thresholds), np.int64)
    n_gt = n_pred = n = 0
    counts = {"merges": 0, "merged_gt": 0, "splits": 0, "split_pred": 0}
    for gt, pred in pairs:
        inter, gt_sizes, pr_sizes, gt_labels, pr_labels = _overlaps(gt, pred)
        _, _, matched = _hungarian(inter / (gt_sizes[:, None] + pr_sizes[None, :] - inter))
        tp += np.array([(matched >= t).sum() for t in thresholds], np.int64)
        for key, value in _merge_split(inter, gt_sizes, pr_sizes).items():
            counts[key] += value
        n_gt, n_pred, n = n_gt + len(gt_labels), n_pred + len(pr_labels), n + 1
    report: dict = {}
    for t, k in zip(thresholds, tp):
        report[t] = {**scores_from_counts(int(k), n_pred - int(k), n_gt - int(k)), "n_images": n}
    return {**report, **counts, "n_images": n}


def dice(gt: np.ndarray, pred: np.ndarray) -> float:
    """Dice coefficient of the foregrounds (non-zero voxels); 1 when both are empty."""
    g, p = np.asarray(gt) != 0, np.asarray(pred) != 0
    same_shape(p, "pred", g, "gt")
    total = g.sum() + p.sum()
    return float(2 * np.logical_and(g, p).sum() / total) if total else 1.0


def foreground_iou(gt: np.ndarray, pred: np.ndarray) -> float:
    """Intersection over union of the foregrounds; 1 when both are empty."""
    g, p = np.asarray(gt) != 0, np.asarray(pred) != 0
    same_shape(p, "pred", g, "gt")
    union = np.logical_or(g, p).sum()
    return float(np.logical_and(g, p).sum() / union) if union else 1.0


def _distance_to(mask: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Distance in nm of every voxel to the nearest True voxel of ``mask`` (inf if none)."""
    if not mask.any():
        return np.full(mask.shape, np.inf)
    return edt.edt(~mask, anisotropy=tuple(spacing), black_border=False, parallel=1).astype(np.float64)


def cremi_cleft_scores(
    gt: np.ndarray,
    pred: np.ndarray,
    voxel_size_nm: Sequence[float] = (40.0, 4.0, 4.0),
    background_label: int | None = None,
    ignore_label: int | None = None,
    threshold_nm: float = 200.0,
) -> dict[str, float]:
    """CREMI synaptic-cleft metrics.

    Parameters
    ----------
    gt, pred : (Z, Y, X) ndarray of int, same shape
        Cleft label volumes.
    voxel_size_nm : tuple of float
        (z, y, x) voxel size in nm.
    background_label : int, optional
        Background value. Default: ``0xffffffffffffffff`` for uint64 arrays
        (CREMI files), 0 otherwise.
    ignore_label : int, optional
        Ground-truth value excluded from evaluation. Default:
        ``0xfffffffffffffffe`` for uint64 arrays, none otherwise.
    threshold_nm : float
        Distance beyond which a voxel counts as false positive / negative.

    Returns
    -------
    dict
        ``adgt_nm``: mean distance (nm) of the predicted cleft voxels to the
        nearest ground-truth cleft voxel (cremi_python's ``acc_false_positives``);
        ``adf_nm``: mean distance (nm) of the ground-truth cleft voxels to the
        nearest predicted one (``acc_false_negatives``); ``cremi_score_nm``: their
        mean; ``false_positives`` / ``false_negatives``: predicted /
        ground-truth cleft voxels farther than ``threshold_nm`` from the other
        side; ``n_gt_voxels``, ``n_pred_voxels``. An average is NaN when the
        side it averages over has no cleft voxels, and inf when the other side
        has none.

    Examples
    --------
    One ground-truth cleft voxel, the prediction finds it and adds one 2
    sections (80 nm) away: only ADGT grows.

    >>> gt = np.zeros((4, 3, 3), np.uint8); gt[0, 1, 1] = 1
    >>> pred = gt.copy(); pred[2, 1, 1] = 1
    >>> s = cremi_cleft_scores(gt, pred, (40.0, 4.0, 4.0))
    >>> s["adgt_nm"], s["adf_nm"], s["cremi_score_nm"]
    (40.0, 0.0, 20.0)
    """
    gt, pred = np.asarray(gt), np.asarray(pred)
    same_shape(pred, "pred", gt, "gt")
    spacing = voxel_size_for(voxel_size_nm, gt.ndim)
    cremi_style = gt.dtype == np.uint64
    if background_label is None:
        background_label = int(CREMI_BACKGROUND) if cremi_style else 0
    if ignore_label is None and cremi_style:
        ignore_label = int(CREMI_IGNORE)
    bg = np.array(background_label).astype(gt.dtype)
    valid = np.ones(gt.shape, bool) if ignore_label is None else gt != np.array(ignore_label).astype(gt.dtype)
    gt_cleft = (gt != bg) & valid
    pred_cleft = (pred != np.array(background_label).astype(pred.dtype)) & valid
    pred_to_gt_nm = _distance_to(gt_cleft, spacing)[pred_cleft]  # one value per predicted voxel
    gt_to_pred_nm = _distance_to(pred_cleft, spacing)[gt_cleft]  # one value per ground-truth voxel
    adgt = float(pred_to_gt_nm.mean()) if pred_to_gt_nm.size else float("nan")
    adf = float(gt_to_pred_nm.mean()) if gt_to_pred_nm.size else float("nan")
    return {
        "adgt_nm": adgt,
        "adf_nm": adf,
        "cremi_score_nm": (adgt + adf) / 2,
        "false_positives": int(np.sum(pred_to_gt_nm > threshold_nm)),
        "false_negatives": int(np.sum(gt_to_pred_nm > threshold_nm)),
        "n_gt_voxels": int(gt_cleft.sum()),
        "n_pred_voxels": int(pred_cleft.sum()),
    }
