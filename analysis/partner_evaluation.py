"""Synaptic partner evaluation (Synful / CREMI partner f-score).

A predicted partner (pre-site, post-site) is a true positive when it is
matched one-to-one to a ground-truth partner. Matching is a Hungarian
assignment (``scipy.optimize.linear_sum_assignment``) with cost = mean of
the pre-site and post-site distances in nm; a pair is a candidate only when
its distance is within ``max_distance_nm`` on both sites (or on the pre- or
post-site only, ``match_on``) and, with neuron ids, only when the
``(pre_id, post_id)`` pairs agree. Candidate pairs come from a KD-tree
(no dense N x M matrix), and the assignment runs on each connected piece
of the candidate graph, so 10^5 x 10^5 partners take seconds. Among all
assignments with the most matches the total cost is smallest (non-candidate
entries cost more than any sum of real distances).

Tables have the columns ``pre_z_nm, pre_y_nm, pre_x_nm, post_z_nm,
post_y_nm, post_x_nm`` (nm), optionally ``score``, ``pre_id, post_id``
(neuron ids) and ``pre_segment_id, post_segment_id`` (segment ids: matching
uses neuron ids, the ignore filter may use either). Missing ids (NaN / NA)
are allowed: a pair with a missing id never agrees on ids (so it cannot
match when ids are used), is never a same-neuron pair and is never merged,
and is not removed by the ignore filter.

Precision, recall and F-score are `analysis.evaluation.scores_from_counts`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .evaluation import scores_from_counts

__all__ = ["PRE", "POST", "read_partner_table", "match_partners", "evaluate_partners",
           "evaluate_partners_per_neuron", "partner_pr_curve", "merge_partners", "drop_same_neuron"]

PRE = ("pre_z_nm", "pre_y_nm", "pre_x_nm")
POST = ("post_z_nm", "post_y_nm", "post_x_nm")
_MATCH_ON = ("both", "pre", "post")


def _check_table(table: pd.DataFrame, name: str) -> pd.DataFrame:
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"`{name}` must be a pandas DataFrame of partners, got {type(table).__name__}")
    missing = [c for c in PRE + POST if c not in table.columns]
    if missing:
        raise ValueError(f"`{name}` lacks the columns {missing} (positions in nm, (z, y, x))")
    coords = table[list(PRE + POST)].to_numpy(dtype=float)
    if not np.isfinite(coords).all():
        raise ValueError(f"`{name}` has non-finite site coordinates")
    return table.reset_index(drop=True)


def read_partner_table(path: str | Path) -> pd.DataFrame:
    """A partner table from ``.csv``, ``.parquet`` or ``.json`` (records or columns).

    Raises
    ------
    ValueError
        Unknown suffix, unreadable file, or missing site columns (the message names the file).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            table = pd.read_csv(path)
        elif suffix in (".parquet", ".pq"):
            table = pd.read_parquet(path)
        elif suffix == ".json":
            table = pd.read_json(path)
        else:
            raise ValueError(f"{path}: partner tables are .csv, .parquet or .json, got {suffix or 'no suffix'!r}")
    except (OSError, ValueError, ImportError) as e:
        if str(e).startswith(str(path)):
            raise
        raise ValueError(f"{path}: cannot read partner table: {e}".splitlines()[0]) from None
    try:
        return _check_table(table, "table")
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def _ids(table: pd.DataFrame, which: str = "neuron") -> Optional[np.ndarray]:
    """(N, 2) float array of (pre, post) ids with NaN for missing, or None without the columns."""
    cols = ("pre_id", "post_id") if which == "neuron" else ("pre_segment_id", "post_segment_id")
    if not all(c in table.columns for c in cols):
        return None
    return np.stack([pd.to_numeric(table[c], errors="coerce").astype("float64").to_numpy() for c in cols], axis=1)


def drop_same_neuron(table: pd.DataFrame) -> pd.DataFrame:
    """Rows whose ``pre_id`` and ``post_id`` are equal (and present) removed."""
    ids = _ids(table)
    if ids is None:
        return table.reset_index(drop=True)
    same = (ids[:, 0] == ids[:, 1])  # NaN never equals
    return table[~same].reset_index(drop=True)


def merge_partners(table: pd.DataFrame, radius_nm: float) -> pd.DataFrame:
    """Merge predicted partners that connect the same neuron pair within ``radius_nm``.

    In descending ``score`` order (ties: first row first), a partner is kept
    unless an already kept partner with the same ``(pre_id, post_id)`` lies
    within ``radius_nm`` on both the pre- and the post-site. Rows with a
    missing id are always kept.

    Parameters
    ----------
    table : pandas.DataFrame
        Partner table with ``score``, ``pre_id``, ``post_id``.
    radius_nm : float
        Merge radius in nm.

    Returns
    -------
    pandas.DataFrame
        The kept rows, in their original order.
    """
    table = _check_table(table, "table")
    ids = _ids(table)
    if ids is None or "score" not in table.columns:
        raise ValueError("merging needs the columns `score`, `pre_id` and `post_id`")
    if len(table) == 0 or radius_nm <= 0:
        return table
    post = table[list(POST)].to_numpy(float)
    pre = table[list(PRE)].to_numpy(float)
    order = np.argsort(-table["score"].to_numpy(float), kind="stable")
    tree = cKDTree(post)
    kept = np.zeros(len(table), bool)
    complete = np.isfinite(ids).all(axis=1)
    for i in order:
        if complete[i]:
            near = np.asarray(tree.query_ball_point(post[i], radius_nm), dtype=np.int64)
            near = near[kept[near] & (ids[near, 0] == ids[i, 0]) & (ids[near, 1] == ids[i, 1])]
            if len(near) and np.any(np.linalg.norm(pre[near] - pre[i], axis=1) <= radius_nm):
                continue
        kept[i] = True
    return table[kept].reset_index(drop=True)


def _candidates(pred: pd.DataFrame, gt: pd.DataFrame, max_distance_nm: float, match_on: str,
                use_ids: bool):
    """Candidate (pred, gt) index pairs with their cost (mean pre/post distance, nm)."""
    pp, pq = pred[list(PRE)].to_numpy(float), pred[list(POST)].to_numpy(float)
    gp, gq = gt[list(PRE)].to_numpy(float), gt[list(POST)].to_numpy(float)
    if len(pred) == 0 or len(gt) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    key_p, key_g = (pq, gq) if match_on in ("both", "post") else (pp, gp)
    near = cKDTree(key_p).sparse_distance_matrix(cKDTree(key_g), max_distance_nm, output_type="coo_matrix")
    i, j = near.row.astype(np.int64), near.col.astype(np.int64)
    # sparse_distance_matrix drops exact zeros; a duplicate site is still a candidate
    zero_i, zero_j = _exact_duplicates(key_p, key_g)
    i, j = np.concatenate([i, zero_i]), np.concatenate([j, zero_j])
    d_pre = np.linalg.norm(pp[i] - gp[j], axis=1)
    d_post = np.linalg.norm(pq[i] - gq[j], axis=1)
    ok = np.ones(len(i), bool)
    if match_on == "both":
        ok &= (d_pre <= max_distance_nm) & (d_post <= max_distance_nm)
    elif match_on == "pre":
        ok &= d_pre <= max_distance_nm
    else:
        ok &= d_post <= max_distance_nm
    if use_ids:
        a, b = _ids(pred), _ids(gt)
        ok &= (a[i, 0] == b[j, 0]) & (a[i, 1] == b[j, 1])  # NaN (missing) never agrees
    pairs = np.unique(np.stack([i[ok], j[ok]], axis=1), axis=0) if ok.any() else np.zeros((0, 2), np.int64)
    i, j = pairs[:, 0], pairs[:, 1]
    cost = 0.5 * (np.linalg.norm(pp[i] - gp[j], axis=1) + np.linalg.norm(pq[i] - gq[j], axis=1))
    return i, j, cost


def _exact_duplicates(a: np.ndarray, b: np.ndarray):
    """Index pairs of identical rows of ``a`` and ``b``."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    ta, tb = pd.DataFrame(a), pd.DataFrame(b)
    ta["i"], tb["j"] = np.arange(len(a)), np.arange(len(b))
    m = ta.merge(tb, on=[0, 1, 2])
    return m["i"].to_numpy(np.int64), m["j"].to_numpy(np.int64)


def match_partners(pred: pd.DataFrame, gt: pd.DataFrame, *, max_distance_nm: float = 400.0,
                   match_on: str = "both", use_neuron_ids: bool = False):
    """One-to-one matching of predicted to ground-truth partners.

    Parameters
    ----------
    pred, gt : pandas.DataFrame
        Partner tables (site columns in nm; ``pre_id``/``post_id`` with ``use_neuron_ids``).
    max_distance_nm : float, optional
        Largest site distance (nm) of a match. Default 400 nm.
    match_on : {'both', 'pre', 'post'}, optional
        Which site distances must be within ``max_distance_nm``.
    use_neuron_ids : bool, optional
        Match only pairs whose ``(pre_id, post_id)`` agree.

    Returns
    -------
    pred_index, gt_index : (K,) ndarray of int
        Row positions of the matched pairs.
    cost_nm : (K,) ndarray of float
        Mean of the pre- and post-site distances of each match (nm).
    """
    pred, gt = _check_table(pred, "pred"), _check_table(gt, "gt")
    if match_on not in _MATCH_ON:
        raise ValueError(f"`match_on` must be one of {', '.join(map(repr, _MATCH_ON))}, got {match_on!r}")
    if not (np.isfinite(max_distance_nm) and max_distance_nm > 0):
        raise ValueError(f"`max_distance_nm` must be a positive number of nm, got {max_distance_nm!r}")
    if use_neuron_ids:
        for name, t in (("pred", pred), ("gt", gt)):
            if _ids(t) is None:
                raise ValueError(f"`{name}` has no `pre_id`/`post_id` columns to match neuron ids on")
    i, j, cost = _candidates(pred, gt, float(max_distance_nm), match_on, use_neuron_ids)
    if len(i) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    n_p, n_g = len(pred), len(gt)
    graph = sparse.coo_matrix((np.ones(len(i)), (i, n_p + j)), shape=(n_p + n_g, n_p + n_g))
    _, comp = connected_components(graph, directed=False)
    big = 1.0 + 2.0 * float(max_distance_nm) * (min(n_p, n_g) + 1)  # dearer than any sum of real costs
    out_i, out_j, out_c = [], [], []
    pair_comp = comp[i]
    order = np.argsort(pair_comp, kind="stable")
    bounds = np.flatnonzero(np.r_[True, np.diff(pair_comp[order]) != 0, True])
    for a, b in zip(bounds[:-1], bounds[1:]):
        sel = order[a:b]
        ri, ru = np.unique(i[sel], return_inverse=True)
        ci, cu = np.unique(j[sel], return_inverse=True)
        m = np.full((len(ri), len(ci)), big)
        m[ru, cu] = cost[sel]
        r, c = linear_sum_assignment(m)
        real = m[r, c] < big
        out_i.append(ri[r[real]])
        out_j.append(ci[c[real]])
        out_c.append(m[r, c][real])
    mi, mj, mc = np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_c)
    order = np.argsort(mi, kind="stable")
    return mi[order], mj[order], mc[order]


def _prepare(pred, gt, drop_same, merge_radius_nm, ignore_segment_ids, score_threshold):
    pred, gt = _check_table(pred, "pred"), _check_table(gt, "gt")
    if ignore_segment_ids is not None and len(list(ignore_segment_ids)):
        ignore = np.asarray(list(ignore_segment_ids), dtype=float)
        pred, gt = _without_ids(pred, ignore), _without_ids(gt, ignore)
    if score_threshold is not None:
        if "score" not in pred.columns:
            raise ValueError("`score_threshold` needs a `score` column in `pred`")
        pred = pred[pred["score"].to_numpy(float) >= score_threshold].reset_index(drop=True)
    if drop_same:
        pred = drop_same_neuron(pred)
    if merge_radius_nm:
        pred = merge_partners(pred, float(merge_radius_nm))
    return pred, gt


def _without_ids(table: pd.DataFrame, ignore: np.ndarray) -> pd.DataFrame:
    """Rows whose pre or post segment id (segment columns if present, else neuron ids) is ignored."""
    ids = _ids(table, "segment")
    if ids is None:
        ids = _ids(table)
    if ids is None:
        return table
    hit = np.isin(ids[:, 0], ignore) | np.isin(ids[:, 1], ignore)
    return table[~hit].reset_index(drop=True)


def evaluate_partners(pred: pd.DataFrame, gt: pd.DataFrame, *, max_distance_nm: float = 400.0,
                      match_on: str = "both", use_neuron_ids: Optional[bool] = None,
                      drop_same_neuron: bool = False, merge_radius_nm: Optional[float] = None,
                      ignore_segment_ids: Optional[Iterable[float]] = None,
                      score_threshold: Optional[float] = None) -> dict:
    """Partner precision, recall and F-score (Synful / CREMI partner evaluation).

    Parameters
    ----------
    pred, gt : pandas.DataFrame
        Predicted and ground-truth partner tables (see module docstring).
    max_distance_nm : float, optional
        Matching threshold in nm (default 400 nm, Synful's).
    match_on : {'both', 'pre', 'post'}, optional
        Sites on which the threshold is measured.
    use_neuron_ids : bool, optional
        Require agreeing ``(pre_id, post_id)``; default: when both tables
        have the id columns with at least one id present.
    drop_same_neuron : bool, optional
        Drop predictions with ``pre_id == post_id`` first.
    merge_radius_nm : float, optional
        Merge predictions of the same neuron pair within this radius,
        keeping the highest score (:func:`merge_partners`).
    ignore_segment_ids : iterable of int, optional
        Rows (both tables) touching any of these ids are removed first
        (``pre/post_segment_id`` when present, else ``pre/post_id``).
    score_threshold : float, optional
        Keep predictions with ``score >= score_threshold``.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f_score`` (= ``f1``), ``tp``, ``fp``, ``fn``,
        ``mean_match_distance_nm`` (NaN without matches), ``use_neuron_ids``.
    """
    pred, gt = _prepare(pred, gt, drop_same_neuron, merge_radius_nm, ignore_segment_ids, score_threshold)
    if use_neuron_ids is None:
        a, b = _ids(pred), _ids(gt)
        use_neuron_ids = a is not None and b is not None and bool(np.isfinite(b).any()) and \
            (len(pred) == 0 or bool(np.isfinite(a).any()))
    mi, mj, cost = match_partners(pred, gt, max_distance_nm=max_distance_nm, match_on=match_on,
                                  use_neuron_ids=use_neuron_ids)
    tp = len(mi)
    out = scores_from_counts(tp, len(pred) - tp, len(gt) - tp)
    out["f_score"] = out["f1"]
    out["mean_match_distance_nm"] = float(cost.mean()) if tp else float("nan")
    out["use_neuron_ids"] = bool(use_neuron_ids)
    return out


def evaluate_partners_per_neuron(pred: pd.DataFrame, gt: pd.DataFrame, neuron_ids: Sequence[int], *,
                                 direction: str = "both", **options) -> dict:
    """Evaluate neuron by neuron and sum TP / FP / FN over the neurons.

    For each id, the partners of that neuron are kept on both sides
    (``direction='input'``: ``post_id == id``, its input synapses;
    ``'output'``: ``pre_id == id``; ``'both'``: either), matched with
    :func:`evaluate_partners` (``options``), and the counts summed; a partner
    between two listed neurons counts once for each. The pooled scores come
    from the summed counts.

    Returns
    -------
    dict
        Pooled ``precision``, ``recall``, ``f_score``, ``tp``, ``fp``, ``fn``
        and ``per_neuron``: a DataFrame (``neuron_id``, ``tp``, ``fp``, ``fn``,
        ``precision``, ``recall``, ``f_score``).
    """
    if direction not in ("both", "input", "output"):
        raise ValueError(f"`direction` must be 'both', 'input' or 'output', got {direction!r}")
    pred, gt = _check_table(pred, "pred"), _check_table(gt, "gt")
    for name, t in (("pred", pred), ("gt", gt)):
        if _ids(t) is None:
            raise ValueError(f"`{name}` has no `pre_id`/`post_id` columns for a per-neuron evaluation")
    rows = []

    def of(table, n):
        ids = _ids(table)
        sel = {"input": ids[:, 1] == n, "output": ids[:, 0] == n, "both": (ids[:, 0] == n) | (ids[:, 1] == n)}
        return table[sel[direction]].reset_index(drop=True)

    for n in neuron_ids:
        s = evaluate_partners(of(pred, float(n)), of(gt, float(n)), **options)
        rows.append({"neuron_id": int(n), **{k: s[k] for k in ("tp", "fp", "fn", "precision", "recall", "f_score")}})
    per = pd.DataFrame(rows, columns=["neuron_id", "tp", "fp", "fn", "precision", "recall", "f_score"])
    out = scores_from_counts(int(per["tp"].sum()), int(per["fp"].sum()), int(per["fn"].sum()))
    out["f_score"] = out["f1"]
    out["per_neuron"] = per
    return out


def partner_pr_curve(pred: pd.DataFrame, gt: pd.DataFrame, thresholds: Optional[Sequence[float]] = None,
                     **options) -> pd.DataFrame:
    """Precision-recall curve over score thresholds.

    Parameters
    ----------
    pred, gt : pandas.DataFrame
        ``pred`` needs ``score``.
    thresholds : sequence of float, optional
        Scores to keep predictions at (``score >= t``); default the distinct
        scores (at most 100, at quantiles).
    **options
        Of :func:`evaluate_partners` (not ``score_threshold``).

    Returns
    -------
    pandas.DataFrame
        ``score_threshold``, ``precision``, ``recall``, ``f_score``, ``tp``, ``fp``, ``fn``,
        in increasing threshold order.
    """
    pred = _check_table(pred, "pred")
    if "score" not in pred.columns:
        raise ValueError("a precision-recall curve needs a `score` column in `pred`")
    scores = np.unique(pred["score"].to_numpy(float))
    if thresholds is None:
        thresholds = scores if len(scores) <= 100 else np.unique(np.quantile(scores, np.linspace(0, 1, 100)))
    rows = []
    for t in sorted(float(x) for x in thresholds):
        s = evaluate_partners(pred, gt, score_threshold=t, **options)
        rows.append({"score_threshold": t, **{k: s[k] for k in ("precision", "recall", "f_score", "tp", "fp", "fn")}})
    return pd.DataFrame(rows)
