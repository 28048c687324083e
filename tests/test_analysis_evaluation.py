"""Segmentation metrics on cases with known answers."""

import numpy as np
import pytest

from analysis.evaluation import CREMI_BACKGROUND, CREMI_IGNORE, cremi_cleft_scores, dice, foreground_iou, instance_scores


def test_instance_scores_hungarian():
    gt = np.zeros((10, 30), int)
    gt[:, 0:10], gt[:, 10:20], gt[:, 20:30] = 1, 2, 3
    pred = np.zeros_like(gt)
    pred[:, 0:10] = 7  # perfect
    pred[:, 10:14] = 8  # IoU 0.4 with gt 2: below threshold
    pred[:, 20:29] = 9  # IoU 0.9
    pred[0, 0] = 0
    scores = instance_scores(gt, pred, iou_threshold=0.5)
    assert (scores["tp"], scores["fp"], scores["fn"]) == (2, 1, 1)
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)
    assert instance_scores(gt, pred, iou_threshold=0.3)["tp"] == 3
    assert instance_scores(gt, gt)["f1"] == 1.0


def test_hungarian_prefers_one_to_one():
    gt = np.zeros((1, 12), int)
    gt[0, :6], gt[0, 6:] = 1, 2
    pred = np.zeros_like(gt)
    pred[0, :7] = 5  # overlaps both, better with 1
    pred[0, 7:] = 6
    assert instance_scores(gt, pred, 0.5)["tp"] == 2


def test_dice_and_iou():
    a = np.zeros((10, 10), int)
    b = np.zeros((10, 10), int)
    a[:, :5] = 1
    b[:, 2:7] = 4
    assert dice(a, b) == pytest.approx(2 * 30 / 100)
    assert foreground_iou(a, b) == pytest.approx(30 / 70)
    assert dice(np.zeros(3), np.zeros(3)) == 1.0


def test_cremi_cleft_distances_on_anisotropic_grid():
    shape = (10, 100, 100)
    gt = np.full(shape, CREMI_BACKGROUND, np.uint64)
    pred = np.full(shape, CREMI_BACKGROUND, np.uint64)
    gt[5, 50, 10:20] = 1
    pred[5, 50, 10:20] = 3  # perfect part
    pred[7, 50, 10:20] = 3  # two slices off: 80 nm
    pred[5, 50, 80:90] = 4  # far away in x: >= 240 nm
    scores = cremi_cleft_scores(gt, pred, (40.0, 4.0, 4.0))
    assert scores["adgt_nm"] == 0.0
    far = (np.arange(80, 90) - 19) * 4.0
    assert scores["adf_nm"] == pytest.approx((0 * 10 + 80 * 10 + far.sum()) / 30)
    assert scores["false_positives"] == 10 and scores["false_negatives"] == 0
    assert scores["cremi_score_nm"] == pytest.approx(scores["adf_nm"] / 2)
    # CREMI's masked label in the ground truth removes the far predictions from evaluation
    gt[5, 50, 75:95] = CREMI_IGNORE
    masked = cremi_cleft_scores(gt, pred, (40.0, 4.0, 4.0))
    assert masked["false_positives"] == 0 and masked["n_pred_voxels"] == 20


def test_cremi_empty_prediction_and_zero_background():
    gt = np.zeros((3, 10, 10), np.int32)
    gt[1, 5, 5] = 2
    scores = cremi_cleft_scores(gt, np.zeros_like(gt), (40, 4, 4))
    assert scores["adgt_nm"] == np.inf and np.isnan(scores["adf_nm"]) and scores["false_negatives"] == 1


def test_pooled_instance_scores_sum_counts_over_images():
    from analysis.evaluation import pooled_instance_scores, scores_from_counts

    a = np.zeros((8, 8), np.uint32)
    a[1:3, 1:3], a[5:7, 5:7] = 1, 2
    empty = np.zeros_like(a)
    pooled = pooled_instance_scores([(a, a), (a, empty), (empty, a)])
    assert (pooled["tp"], pooled["fp"], pooled["fn"], pooled["n_images"]) == (2, 2, 2, 3)
    assert pooled["f1"] == pytest.approx(0.5) == pooled["precision"] == pooled["recall"]
    assert scores_from_counts(0, 0, 0)["f1"] == 1.0  # nothing to find, nothing found
    assert scores_from_counts(0, 3, 0)["precision"] == 0.0 and scores_from_counts(0, 0, 3)["recall"] == 0.0
    s = instance_scores(a, a)
    assert {k: s[k] for k in ("precision", "recall", "f1", "tp", "fp", "fn")} == scores_from_counts(2, 0, 0)
