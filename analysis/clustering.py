"""Clustering of per-synapse feature vectors (numpy / pandas / scikit-learn).

Standardisation, 2D/3D embeddings (t-SNE; UMAP when umap-learn is
installed), KMeans with the number of clusters chosen by silhouette score
(inertia reported for the elbow), presynapse analysis and per-cluster
summaries. Hand-made features (intensity histogram + radial profile) give
the baseline the network's features must beat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "standardise", "embed", "choose_k", "KChoice", "presynapse_distances",
    "per_cluster_summary", "handmade_features", "adjusted_rand",
]


def standardise(features: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per feature; constant features become 0 (not NaN).

    Parameters
    ----------
    features : (N, F) ndarray

    Returns
    -------
    (N, F) ndarray of float64
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"`features` must be a non-empty (N, F) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("`features` contain NaN or infinite values")
    sd = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def embed(x: np.ndarray, method: str, n_components: int, seed: int = 0) -> np.ndarray:
    """Low-dimensional embedding of standardised features.

    Parameters
    ----------
    x : (N, F) ndarray
    method : {'tsne', 'umap'}
    n_components : {2, 3}
    seed : int

    Returns
    -------
    (N, n_components) ndarray of float64
    """
    n = len(x)
    if method == "tsne":
        from sklearn.manifold import TSNE

        # perplexity must stay below N; small runs (tests, few synapses) get a small one
        perplexity = float(min(30.0, max(2.0, (n - 1) / 3.0)))
        return TSNE(n_components=n_components, perplexity=perplexity, random_state=seed, init="pca").fit_transform(x)
    if method == "umap":
        import umap

        nn = int(min(15, max(2, n - 1)))
        return umap.UMAP(n_components=n_components, n_neighbors=nn, random_state=seed, n_jobs=1).fit_transform(x)
    raise ValueError(f"`method` must be 'tsne' or 'umap', got {method!r}")


@dataclass
class KChoice:
    """KMeans over a range of k.

    Attributes
    ----------
    k : int
        The k with the highest silhouette score.
    labels : (N,) ndarray of int
        Cluster of each synapse for that k (0..k-1).
    silhouette : dict of int to float
    inertia : dict of int to float
        Within-cluster sum of squares per k (the elbow curve).
    elbow_k : int
        k at the elbow: the largest distance of the inertia curve from the
        chord between its ends (reported, not used to choose).
    """

    k: int
    labels: np.ndarray
    silhouette: Dict[int, float]
    inertia: Dict[int, float]
    elbow_k: int


def choose_k(x: np.ndarray, k_range: Sequence[int] = range(2, 11), seed: int = 0) -> KChoice:
    """KMeans for every k in ``k_range``; keep the silhouette-best.

    Parameters
    ----------
    x : (N, F) ndarray
        Standardised features.
    k_range : sequence of int
        Candidate numbers of clusters; those >= N are skipped.
    seed : int

    Returns
    -------
    KChoice
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    ks = [int(k) for k in k_range if 2 <= int(k) < len(x)]
    if not ks:
        raise ValueError(f"need at least 3 synapses and a k in 2..N-1 to cluster; got N={len(x)}, k_range={list(k_range)}")
    sil, inertia, labels = {}, {}, {}
    for k in ks:
        km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(x)
        labels[k] = km.labels_
        inertia[k] = float(km.inertia_)
        sil[k] = float(silhouette_score(x, km.labels_)) if len(set(km.labels_)) > 1 else -1.0
    best = max(ks, key=lambda k: sil[k])
    return KChoice(best, labels[best], sil, inertia, _elbow(ks, [inertia[k] for k in ks]))


def _elbow(ks, values) -> int:
    if len(ks) < 3:
        return ks[0]
    p = np.column_stack([ks, values]).astype(float)
    p = (p - p.min(0)) / np.where(np.ptp(p, 0) > 0, np.ptp(p, 0), 1.0)
    a, b = p[0], p[-1]
    u, v = b - a, p - a
    d = np.abs(u[0] * v[:, 1] - u[1] * v[:, 0]) / np.linalg.norm(u)  # distance to the chord from first to last k
    return int(ks[int(np.argmax(d))])


def presynapse_distances(x: np.ndarray, pre_ids: Sequence) -> pd.DataFrame:
    """Feature distances among synapses that share a pre-synaptic neuron vs. to all others.

    Parameters
    ----------
    x : (N, F) ndarray
        Standardised features.
    pre_ids : (N,) sequence
        Pre-synaptic neuron (segment) of each synapse; NaN/None/0 = unknown.

    Returns
    -------
    pandas.DataFrame
        One row per pre-synaptic neuron with >= 2 synapses: ``pre_id``,
        ``n_synapses``, ``within_distance_mean`` (mean Euclidean distance
        between its synapses' features), ``between_distance_mean`` (from its
        synapses to all synapses of other neurons), ``ratio`` (within /
        between; < 1: the neuron's synapses look alike).
    """
    ids = pd.Series(list(pre_ids)).astype("object")
    known = ids.notna() & (ids.astype(str) != "0") & (ids.astype(str) != "nan")
    rows = []
    d = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=-1)
    for pid, idx in ids[known].groupby(ids[known].astype(str)).groups.items():
        idx = np.asarray(list(idx))
        if len(idx) < 2:
            continue
        others = np.setdiff1d(np.arange(len(x)), idx)
        within = d[np.ix_(idx, idx)][np.triu_indices(len(idx), 1)].mean()
        between = d[np.ix_(idx, others)].mean() if len(others) else np.nan
        rows.append({"pre_id": pid, "n_synapses": len(idx), "within_distance_mean": float(within),
                     "between_distance_mean": float(between),
                     "ratio": float(within / between) if between and np.isfinite(between) else np.nan})
    return pd.DataFrame(rows, columns=["pre_id", "n_synapses", "within_distance_mean", "between_distance_mean", "ratio"])


def per_cluster_summary(table: pd.DataFrame, cluster_col: str = "cluster",
                        value_col: str = "vesicle_cloud_volume_nm3") -> pd.DataFrame:
    """Count and mean / median / sd of ``value_col`` per cluster (NaN values skipped)."""
    if value_col not in table.columns:
        return pd.DataFrame({cluster_col: sorted(table[cluster_col].unique()),
                             "n_synapses": table.groupby(cluster_col).size().values})
    g = table.groupby(cluster_col)[value_col]
    out = pd.DataFrame({"n_synapses": table.groupby(cluster_col).size(), f"{value_col}_mean": g.mean(),
                        f"{value_col}_median": g.median(), f"{value_col}_sd": g.std()})
    return out.reset_index()


def handmade_features(crops: np.ndarray, voxel_size_nm: Sequence[float], n_bins: int = 32,
                      n_shells: int = 16) -> np.ndarray:
    """Intensity histogram + radial intensity profile per crop (the hand-made baseline).

    Parameters
    ----------
    crops : (N, Z, Y, X) ndarray
        Each crop is normalised to zero mean, unit sd first (as the network's input).
    voxel_size_nm : (3,) sequence of float
    n_bins : int
        Histogram bins over [-4, 4] sd.
    n_shells : int
        Radial shells (equal width in nm) from the crop centre to its corner, mean intensity per shell.

    Returns
    -------
    (N, n_bins + n_shells) ndarray of float64
    """
    crops = np.asarray(crops, dtype=np.float64)
    shape = crops.shape[1:]
    grid = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * v for n, v in zip(shape, voxel_size_nm)], indexing="ij")
    r = np.sqrt(sum(g**2 for g in grid))
    shell = np.minimum((r / (r.max() + 1e-9) * n_shells).astype(int), n_shells - 1).ravel()
    counts = np.bincount(shell, minlength=n_shells)
    out = []
    for c in crops:
        c = (c - c.mean()) / (c.std() + 1e-6)
        hist = np.histogram(np.clip(c, -4, 4), bins=n_bins, range=(-4, 4))[0] / c.size
        prof = np.bincount(shell, weights=c.ravel(), minlength=n_shells) / np.maximum(counts, 1)
        out.append(np.concatenate([hist, prof]))
    return np.asarray(out)


def adjusted_rand(labels_true: Sequence, labels_pred: Sequence) -> float:
    """Adjusted Rand index (scikit-learn's) of two partitions."""
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(labels_true, labels_pred))
