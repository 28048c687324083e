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


def test_iou_threshold_is_inclusive():
    gt = np.array([[1, 1, 0, 2, 2]])
    pred = np.array([[1, 1, 0, 2, 0]])  # IoU 1 and exactly 0.5
    assert instance_scores(gt, pred, 0.5)["tp"] == 2
    assert instance_scores(gt, pred, 0.51)["tp"] == 1


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
    assert scores["adf_nm"] == 0.0  # every ground-truth voxel was found
    far = (np.arange(80, 90) - 19) * 4.0
    # the 30 predicted voxels: 10 on the cleft, 10 two sections off, 10 far along x
    assert scores["adgt_nm"] == pytest.approx((0 * 10 + 80 * 10 + far.sum()) / 30)
    assert scores["false_positives"] == 10 and scores["false_negatives"] == 0
    assert scores["cremi_score_nm"] == pytest.approx(scores["adgt_nm"] / 2)
    # CREMI's masked label in the ground truth removes the far predictions from evaluation
    gt[5, 50, 75:95] = CREMI_IGNORE
    masked = cremi_cleft_scores(gt, pred, (40.0, 4.0, 4.0))
    assert masked["false_positives"] == 0 and masked["n_pred_voxels"] == 20


def test_cremi_empty_prediction_and_zero_background():
    gt = np.zeros((3, 10, 10), np.int32)
    gt[1, 5, 5] = 2
    scores = cremi_cleft_scores(gt, np.zeros_like(gt), (40, 4, 4))
    # the one ground-truth voxel has no prediction to be near (ADF inf); no predicted voxel to average (ADGT NaN)
    assert scores["adf_nm"] == np.inf and np.isnan(scores["adgt_nm"]) and scores["false_negatives"] == 1
    assert scores["false_positives"] == 0


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


# (z, y, x) nm, different along every axis so a swapped axis changes the figures
ANISOTROPIC_NM = (30.0, 6.0, 4.0)


def test_cremi_extra_detections_raise_adgt_only():
    """ADGT averages over *predicted* voxels (cremi_python's acc_false_positives)."""
    gt = np.zeros((5, 12, 20), np.uint16)
    gt[1, 5, 5] = 1
    pred = gt.copy()
    pred[3, 5, 5] = 2  # two sections off: 2 x 30 = 60 nm
    pred[1, 5, 15] = 3  # ten voxels along x: 40 nm
    pred[1, 8, 5] = 4  # three voxels along y: 18 nm
    pred[2, 6, 6] = 5  # one step on every axis: sqrt(30^2 + 6^2 + 4^2) nm
    scores = cremi_cleft_scores(gt, pred, ANISOTROPIC_NM, threshold_nm=50.0)
    adgt = (0 + 60 + 40 + 18 + np.sqrt(30**2 + 6**2 + 4**2)) / 5
    assert scores["adgt_nm"] == pytest.approx(adgt)
    assert scores["adf_nm"] == 0.0
    assert scores["cremi_score_nm"] == pytest.approx(adgt / 2)
    assert (scores["false_positives"], scores["false_negatives"]) == (1, 0)  # only the 60 nm voxel is > 50 nm
    assert (scores["n_gt_voxels"], scores["n_pred_voxels"]) == (1, 5)


def test_cremi_missed_cleft_raises_adf_only():
    """ADF averages over *ground-truth* voxels (cremi_python's acc_false_negatives)."""
    gt = np.zeros((5, 12, 20), np.uint16)
    gt[1, 5, 2:6] = 1  # found: 4 voxels
    gt[4, 10, 2:6] = 2  # missed: 3 sections and 5 rows away from the found one
    pred = np.zeros_like(gt)
    pred[1, 5, 2:6] = 9
    scores = cremi_cleft_scores(gt, pred, ANISOTROPIC_NM, threshold_nm=90.0)
    missed_nm = np.hypot(3 * 30.0, 5 * 6.0)  # same x: straight across
    assert scores["adf_nm"] == pytest.approx((4 * 0 + 4 * missed_nm) / 8)
    assert scores["adgt_nm"] == 0.0
    assert scores["cremi_score_nm"] == pytest.approx(missed_nm / 4)
    assert (scores["false_positives"], scores["false_negatives"]) == (0, 4)


def test_cremi_directions_swap_with_the_arguments():
    rng = np.random.default_rng(3)
    a = (rng.random((6, 20, 20)) > 0.97).astype(np.uint8)
    b = (rng.random((6, 20, 20)) > 0.95).astype(np.uint8)
    ab, ba = cremi_cleft_scores(a, b, ANISOTROPIC_NM), cremi_cleft_scores(b, a, ANISOTROPIC_NM)
    assert ab["adgt_nm"] == pytest.approx(ba["adf_nm"]) and ab["adf_nm"] == pytest.approx(ba["adgt_nm"])
    assert ab["adgt_nm"] != pytest.approx(ab["adf_nm"])  # the case tells the directions apart
    assert ab["false_positives"] == ba["false_negatives"]


def _cremi_python_clefts(test, truth, resolution):
    """cremi_python's ``Clefts`` (cremi/evaluation/Clefts.py), restated with scipy for the comparison."""
    from scipy import ndimage

    invalid = truth == 0xFFFFFFFFFFFFFFFE
    test_mask = np.logical_or(test == 0xFFFFFFFFFFFFFFFF, invalid)
    truth_mask = np.logical_or(truth == 0xFFFFFFFFFFFFFFFF, invalid)
    test_edt = ndimage.distance_transform_edt(test_mask, sampling=resolution)
    truth_edt = ndimage.distance_transform_edt(truth_mask, sampling=resolution)
    return {
        "acc_false_positives": truth_edt[~test_mask].mean(),
        "acc_false_negatives": test_edt[~truth_mask].mean(),
        "count_false_positives": int(np.sum(truth_edt[~test_mask] > 200)),
        "count_false_negatives": int(np.sum(test_edt[~truth_mask] > 200)),
    }


def test_cremi_matches_cremi_python_with_masked_voxels():
    rng = np.random.default_rng(0)
    shape = (12, 60, 60)
    gt = np.full(shape, CREMI_BACKGROUND, np.uint64)
    pred = np.full(shape, CREMI_BACKGROUND, np.uint64)
    gt[2:4, 10:14, 10:30] = 1
    gt[10, 40:44, 40:50] = 2  # missed, >= 240 nm from any prediction
    pred[2:4, 11:15, 12:32] = 5
    pred[:4][rng.random((4,) + shape[1:]) > 0.995] = 6  # scattered false detections
    gt[0, :, 50:] = CREMI_IGNORE  # a masked strip, with predictions in it
    pred[0, 5:20, 52:58] = 7
    ours = cremi_cleft_scores(gt, pred, (40.0, 4.0, 4.0))
    ref = _cremi_python_clefts(pred, gt, (40.0, 4.0, 4.0))
    assert ours["adgt_nm"] == pytest.approx(ref["acc_false_positives"])
    assert ours["adf_nm"] == pytest.approx(ref["acc_false_negatives"])
    assert ours["false_positives"] == ref["count_false_positives"] > 0
    assert ours["false_negatives"] == ref["count_false_negatives"] > 0
    assert ours["cremi_score_nm"] == pytest.approx((ref["acc_false_positives"] + ref["acc_false_negatives"]) / 2)


def test_merge_split_counts_by_majority_overlap():
    from analysis.evaluation import merge_split_counts

    gt = np.zeros((4, 20), int)
    gt[:, 0:4], gt[:, 5:9], gt[:, 12:20] = 1, 2, 3
    pred = np.zeros_like(gt)
    pred[:, 0:9] = 1  # holds gt 1 and 2: one merge of two
    pred[:, 12:16], pred[:, 16:20] = 2, 3  # gt 3 in two halves: one split into two
    assert merge_split_counts(gt, pred) == {"merges": 1, "merged_gt": 2, "splits": 1, "split_pred": 2}
    assert merge_split_counts(gt, gt) == {"merges": 0, "merged_gt": 0, "splits": 0, "split_pred": 0}
    # exactly half of gt 2 inside the prediction does not count: no merge
    halves = np.array([[1, 1, 2, 2]])
    assert merge_split_counts(halves, np.array([[1, 1, 1, 0]]))["merges"] == 0
    assert merge_split_counts(halves, np.array([[1, 1, 1, 1]]))["merges"] == 1
    assert merge_split_counts(np.ones((1, 4), int), halves)["splits"] == 1


def test_pooled_instance_report_matches_pooled_scores_at_every_threshold():
    from analysis.evaluation import merge_split_counts, pooled_instance_report, pooled_instance_scores

    rng = np.random.default_rng(0)
    pairs = []
    for _ in range(3):
        gt = np.repeat(np.arange(8), 5)[None].repeat(3, 0)
        pred = np.roll(gt, int(rng.integers(0, 4)), axis=1)
        pairs.append((gt, pred))
    report = pooled_instance_report(pairs, (0.3, 0.5, 0.7))
    for t in (0.3, 0.5, 0.7):
        assert report[t] == pooled_instance_scores(pairs, t)
    assert report[0.3]["f1"] >= report[0.5]["f1"] >= report[0.7]["f1"]
    assert report["merges"] == sum(merge_split_counts(g, p)["merges"] for g, p in pairs)
    assert report["n_images"] == 3


def test_detection_scores_hand_computed():
    """Centres matched within each annotated radius, one-to-one, minimum total distance."""
    from analysis.evaluation import detection_scores

    gt = [[0, 0, 0], [0, 0, 50]]
    radii = [20, 10]
    # pred 0 is 5 nm from gt 0; pred 1 is 12 nm from gt 1 (beyond its 10 nm radius) and 38 nm from gt 0
    s = detection_scores(gt, radii, [[0, 5, 0], [0, 0, 38]])
    assert (s["tp"], s["fp"], s["fn"]) == (1, 1, 1)
    assert s["matches"] == [(0, 0, 5.0)]
    assert s["precision"] == s["recall"] == s["f1"] == 0.5
    # with twice the radius both match: the assignment pairs each prediction with its own object
    s = detection_scores(gt, radii, [[0, 0, 38], [0, 5, 0]], max_distance_fraction=2.0)
    assert sorted(s["matches"]) == [(0, 1, 5.0), (1, 0, 12.0)] and s["f1"] == 1.0
    # two predictions near one object: one is a false positive
    s = detection_scores([[0, 0, 0]], [20], [[0, 0, 3], [0, 0, -4]])
    assert (s["tp"], s["fp"], s["fn"]) == (1, 1, 0) and s["matches"] == [(0, 0, 3.0)]
    # nothing found
    s = detection_scores(gt, radii, np.zeros((0, 3)))
    assert (s["tp"], s["fp"], s["fn"], s["recall"]) == (0, 0, 2, 0.0)
    with pytest.raises(ValueError, match="gt_radii_nm"):
        detection_scores(gt, [20, 0], [[0, 0, 0]])


def test_object_outcomes_agree_with_the_scores_and_name_each_error():
    from analysis.evaluation import merge_split_counts, object_outcomes

    gt = np.zeros((4, 40), int)
    gt[:, 0:4], gt[:, 5:9], gt[:, 11:20], gt[:, 22:26], gt[:, 30:34] = 1, 2, 3, 4, 5
    pred = np.zeros_like(gt)
    pred[:, 0:9] = 1  # merge of gt 1 and 2
    pred[:, 12:16], pred[:, 16:20] = 2, 3  # gt 3 split in two, neither half at IoU 0.5
    pred[:, 22:26] = 4  # gt 4 found
    pred[:, 36:39] = 5  # a prediction touching nothing; gt 5 is missed outright
    o = object_outcomes(gt, pred)
    assert o["gt_labels"].tolist() == [1, 2, 3, 4, 5] and o["gt_voxels"].tolist() == [16, 16, 36, 16, 16]
    assert o["gt_matched"].tolist() == [False, False, False, True, False]
    assert o["gt_touched"].tolist() == [True, True, True, True, False]
    assert o["gt_split"].tolist() == [False, False, True, False, False]
    assert o["pred_matched"].tolist() == [False, False, False, True, False]
    assert o["pred_touched"].tolist() == [True, True, True, True, False]
    assert o["pred_merge"].tolist() == [True, False, False, False, False]
    rng = np.random.default_rng(3)
    for _ in range(5):
        a = rng.integers(0, 6, (12, 12))
        b = np.roll(a, int(rng.integers(0, 3)), axis=1) * (rng.random((12, 12)) > 0.2)
        o, s, ms = object_outcomes(a, b, 0.3), instance_scores(a, b, 0.3), merge_split_counts(a, b)
        assert o["gt_matched"].sum() == o["pred_matched"].sum() == s["tp"]
        assert (~o["gt_matched"]).sum() == s["fn"] and (~o["pred_matched"]).sum() == s["fp"]
        assert o["gt_split"].sum() == ms["splits"] and o["pred_merge"].sum() == ms["merges"]


def test_annotation_agreement_error_anatomy_counts_each_error_once():
    """The benchmark's breakdown of a card figure (benchmarks/annotation_agreement.py) on a hand-made section."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "annotation_agreement.py"
    spec = importlib.util.spec_from_file_location("annotation_agreement", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    gt = np.zeros((8, 60), int)
    gt[:, 0:4], gt[:, 10:30], gt[:, 40:44], gt[:, 50:52] = 1, 2, 3, 4  # gt 2 is a painted cluster
    pred = np.zeros_like(gt)
    pred[:, 0:4] = 1
    pred[:, 10:16], pred[:, 17:23], pred[:, 24:30] = 2, 3, 4  # the cluster cut into three
    pred[:, 55:58] = 5  # on no annotated pixel
    foreground = np.where(gt == 3, 0.4, 0.9)  # gt 3 and 4 missed outright; 3 is faint to the network
    e = module.error_anatomy([gt], [pred], [foreground], 25.0)
    assert (e["n_annotated"], e["n_predicted"], e["true_positives"]) == (4, 5, 1)
    assert (e["missed_outright"], e["missed_touched"], e["false_outright"], e["false_touched"]) == (2, 1, 1, 3)
    assert (e["splits"], e["merges"]) == (1, 0)
    assert e["median_annotated_area_nm2"] == 25.0 * np.median([32, 160, 32, 16])
    assert e["split_area_over_median"] == [5.0] and e["splits_at_least_twice_the_median_area"] == 1
    assert e["missed_outright_max_foreground_median"] == pytest.approx(0.65)
    assert e["missed_outright_max_foreground_above_0_5"] == 1
    by_area = {b["area_nm2"][0]: (b["n"], b["recall"]) for b in e["recall_by_area"]}
    # 400, 800, 800 and 4000 nm^2
    assert by_area[0] == (1, 0.0) and by_area[500] == (2, 0.5) and by_area[4000] == (1, 0.0)
    assert by_area[1000] == (0, None)
