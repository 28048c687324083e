"""Partner evaluation (analysis.partner_evaluation) on hand-built tables with known answers."""

import time

import numpy as np
import pandas as pd
import pytest

from analysis.partner_evaluation import (
    evaluate_partners, evaluate_partners_per_neuron, match_partners, merge_partners, partner_pr_curve,
    read_partner_table,
)


def T(rows, ids=True):
    """Rows (pre_zyx, post_zyx, score, pre_id, post_id) -> partner table."""
    data = []
    for r in rows:
        (a, b, c), (d, e, f) = r[0], r[1]
        row = dict(pre_z_nm=a, pre_y_nm=b, pre_x_nm=c, post_z_nm=d, post_y_nm=e, post_x_nm=f,
                   score=r[2] if len(r) > 2 else 1.0)
        if ids:
            row.update(pre_id=r[3], post_id=r[4])
        data.append(row)
    cols = ["pre_z_nm", "pre_y_nm", "pre_x_nm", "post_z_nm", "post_y_nm", "post_x_nm", "score"]
    return pd.DataFrame(data, columns=cols + (["pre_id", "post_id"] if ids else []))


GT = T([((0, 0, 0), (0, 0, 100), 1, 1, 2),
        ((0, 1000, 0), (0, 1000, 100), 1, 1, 3),
        ((0, 5000, 0), (0, 5000, 100), 1, 4, 5)])


def test_perfect_and_distance_threshold_on_both_sites():
    assert evaluate_partners(GT, GT)["f_score"] == 1.0
    # pre-site 300 nm off, post-site 500 nm off: no match at 400 nm on both, a match on pre only
    pred = T([((0, 300, 0), (0, 500, 100), 1, 1, 2)])
    both = evaluate_partners(pred, GT.iloc[:1], use_neuron_ids=False)
    assert (both["tp"], both["fp"], both["fn"]) == (0, 1, 1)
    pre = evaluate_partners(pred, GT.iloc[:1], match_on="pre", use_neuron_ids=False)
    assert pre["tp"] == 1 and pre["mean_match_distance_nm"] == 400.0   # (300 + 500) / 2
    post = evaluate_partners(pred, GT.iloc[:1], match_on="post", use_neuron_ids=False)
    assert post["tp"] == 0
    assert evaluate_partners(pred, GT.iloc[:1], max_distance_nm=600, use_neuron_ids=False)["tp"] == 1


def test_hungarian_maximises_matches_then_minimises_cost():
    # greedy nearest-first would give p0 -> g1 (0 nm) and leave p1 unmatched; Hungarian matches both
    gt = T([((0, 0, 0), (0, 0, 0)), ((0, 300, 0), (0, 300, 0))], ids=False)
    pred = T([((0, 300, 0), (0, 300, 0)), ((0, 650, 0), (0, 650, 0))], ids=False)
    mi, mj, cost = match_partners(pred, gt, max_distance_nm=400)
    assert list(zip(mi, mj)) == [(0, 0), (1, 1)] and cost.tolist() == [300.0, 350.0]
    s = evaluate_partners(pred, gt)
    assert (s["tp"], s["fp"], s["fn"], s["precision"], s["recall"]) == (2, 0, 0, 1.0, 1.0)
    assert s["use_neuron_ids"] is False   # no id columns


def test_neuron_ids_must_agree_and_missing_ids_never_agree():
    pred = T([((0, 10, 0), (0, 10, 100), 1, 1, 2),      # right place, right neurons
              ((0, 1010, 0), (0, 1010, 100), 1, 1, 9),  # right place, wrong post neuron
              ((0, 5010, 0), (0, 5010, 100), 1, None, 5)])  # missing pre id
    s = evaluate_partners(pred, GT)
    assert s["use_neuron_ids"] and (s["tp"], s["fp"], s["fn"]) == (1, 2, 2)
    s = evaluate_partners(pred, GT, use_neuron_ids=False)
    assert (s["tp"], s["fp"], s["fn"]) == (3, 0, 0)
    assert s["f_score"] == pytest.approx(1.0)


def test_drop_same_neuron_and_ignore_ids():
    pred = T([((0, 0, 0), (0, 0, 100), 1, 1, 2),
              ((0, 2000, 0), (0, 2000, 100), 1, 7, 7)])   # autapse: an FP unless dropped
    s = evaluate_partners(pred, GT)
    assert (s["tp"], s["fp"], s["fn"]) == (1, 1, 2)
    s = evaluate_partners(pred, GT, drop_same_neuron=True)
    assert (s["tp"], s["fp"], s["fn"]) == (1, 0, 2)
    # ignoring neuron 3 and 4 removes the two unmatched ground-truth partners
    s = evaluate_partners(pred, GT, drop_same_neuron=True, ignore_segment_ids=[3, 4])
    assert (s["tp"], s["fp"], s["fn"]) == (1, 0, 0)
    # segment ids take precedence over neuron ids for the ignore filter
    gt = GT.assign(pre_segment_id=[10, 11, 12], post_segment_id=[20, 21, 22])
    pred2 = pred.assign(pre_segment_id=[10, 13], post_segment_id=[20, 13])
    s = evaluate_partners(pred2, gt, ignore_segment_ids=[13, 21, 22])
    assert (s["tp"], s["fp"], s["fn"]) == (1, 0, 0)


def test_merge_keeps_the_highest_score_of_a_neuron_pair():
    pred = T([((0, 0, 0), (0, 0, 100), 0.5, 1, 2),
              ((0, 50, 0), (0, 50, 100), 0.9, 1, 2),     # same pair, 50 nm away: merged into this one
              ((0, 60, 0), (0, 60, 100), 0.7, 1, 3),     # different pair: kept
              ((0, 900, 0), (0, 900, 100), 0.6, 1, 2)])  # same pair, far: kept
    merged = merge_partners(pred, 100.0)
    assert merged.score.tolist() == [0.9, 0.7, 0.6]
    s = evaluate_partners(pred, GT, use_neuron_ids=False)
    assert (s["tp"], s["fp"]) == (2, 2)
    s = evaluate_partners(pred, GT, use_neuron_ids=False, merge_radius_nm=100.0)
    assert (s["tp"], s["fp"]) == (2, 1)


def test_per_neuron_sums_counts():
    pred = T([((0, 0, 0), (0, 0, 100), 1, 1, 2),
              ((0, 3000, 0), (0, 3000, 100), 1, 6, 3)])   # an FP input of neuron 3
    # neuron 2: input tp 1; neuron 3: input fp 1, fn 1
    s = evaluate_partners_per_neuron(pred, GT, [2, 3], direction="input")
    assert (s["tp"], s["fp"], s["fn"]) == (1, 1, 1)
    assert s["per_neuron"].set_index("neuron_id")[["tp", "fp", "fn"]].to_dict("index") == {
        2: {"tp": 1, "fp": 0, "fn": 0}, 3: {"tp": 0, "fp": 1, "fn": 1}}
    # outputs of neuron 1: both GT partners of neuron 1, one predicted
    s = evaluate_partners_per_neuron(pred, GT, [1], direction="output")
    assert (s["tp"], s["fp"], s["fn"]) == (1, 0, 1)


def test_pr_curve_by_score():
    pred = T([((0, 0, 0), (0, 0, 100), 0.9, 1, 2),
              ((0, 3000, 0), (0, 3000, 100), 0.8, 6, 3),
              ((0, 1000, 0), (0, 1000, 100), 0.3, 1, 3)])
    curve = partner_pr_curve(pred, GT)
    assert curve.score_threshold.tolist() == [0.3, 0.8, 0.9]
    assert curve[["tp", "fp", "fn"]].to_numpy().tolist() == [[2, 1, 1], [1, 1, 2], [1, 0, 2]]
    assert curve.precision.tolist() == pytest.approx([2 / 3, 0.5, 1.0])


def test_table_files_and_errors(tmp_path):
    GT.to_csv(tmp_path / "gt.csv", index=False)
    GT.to_parquet(tmp_path / "gt.parquet")
    GT.to_json(tmp_path / "gt.json", orient="records")
    for name in ("gt.csv", "gt.parquet", "gt.json"):
        assert evaluate_partners(read_partner_table(tmp_path / name), GT)["f_score"] == 1.0
    with pytest.raises(ValueError, match="lacks the columns"):
        evaluate_partners(GT.drop(columns=["pre_x_nm"]), GT)
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="bad.csv.*lacks"):
        read_partner_table(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="match_on"):
        evaluate_partners(GT, GT, match_on="neither")
    with pytest.raises(ValueError, match="pre_id"):
        evaluate_partners(GT.drop(columns=["pre_id"]), GT, use_neuron_ids=True)
    empty = GT.iloc[:0]
    s = evaluate_partners(empty, GT)
    assert (s["tp"], s["fn"], s["recall"], s["f_score"]) == (0, 3, 0.0, 0.0)


def test_100k_partners_match_in_seconds():
    rng = np.random.default_rng(0)
    n = 100_000
    post = rng.uniform(0, 200_000, (n, 3))
    pre = post + rng.normal(0, 100, (n, 3))
    gt = pd.DataFrame(np.hstack([pre, post]), columns=["pre_z_nm", "pre_y_nm", "pre_x_nm",
                                                       "post_z_nm", "post_y_nm", "post_x_nm"])
    pred = gt + rng.normal(0, 30, gt.shape)
    t0 = time.perf_counter()
    s = evaluate_partners(pred, gt)
    elapsed = time.perf_counter() - t0
    assert s["recall"] > 0.99 and elapsed < 60, (s, elapsed)
