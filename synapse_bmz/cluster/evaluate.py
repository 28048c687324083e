"""Do clusters of synapse features recover known classes? Held-out simulated crops, ARI.

The same pipeline as ``synapse-bmz cluster`` (crops by `analysis.synapse_crops`,
standardisation, KMeans) on `synapse_bmz.simulate.synapse_classes` samples of
seeds never trained on, for three feature sets: the trained extractor, the
same architecture with random weights, and hand-made features (intensity
histogram + radial profile).
"""

from __future__ import annotations

import time
from typing import Dict, Sequence

import numpy as np

__all__ = ["heldout_crops", "ari_of_features", "evaluate_feature_sets"]


def heldout_crops(seeds: Sequence[int], *, simulation_shape=(96, 96, 96), crop_shape=(80, 80, 80),
                  voxel_size_nm=(5.0, 5.0, 5.0)):
    """Crops (N, Z, Y, X) around simulated synapses of every class and seed, their class ids and table.

    Each sample is cut with `analysis.synapse_crops.crop_synapses` (type 0, raw) around the synapse
    centre of its simulation, on the simulation's own grid.
    """
    import pandas as pd

    from analysis.synapse_crops import crop_synapses

    from ..simulate.synapse_classes import class_samples

    crops, tables = [], []
    for s in class_samples(seeds, shape=tuple(simulation_shape), voxel_size_nm=tuple(voxel_size_nm)):
        res = crop_synapses(s.raw, s.voxel_size_nm, s.synapse, crop_shape=crop_shape, crop_voxel_size_nm=voxel_size_nm)
        crops.append(res.crops[0])
        tables.append(res.table)
    table = pd.concat(tables, ignore_index=True)
    return np.stack(crops), table["class_id"].to_numpy(), table


def ari_of_features(features: np.ndarray, classes: np.ndarray, seed: int = 0) -> Dict[str, float]:
    """ARI of KMeans (k = number of classes) and of the silhouette-chosen k, on standardised features."""
    from sklearn.cluster import KMeans

    from analysis.clustering import adjusted_rand, choose_k, standardise

    x = standardise(features)
    k = len(np.unique(classes))
    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(x)
    choice = choose_k(x, range(2, min(10, len(x) - 1) + 1), seed=seed)
    return {"ari": adjusted_rand(classes, km.labels_), "ari_silhouette_k": adjusted_rand(classes, choice.labels),
            "silhouette_k": int(choice.k)}


def evaluate_feature_sets(trained_model, random_model, crops: np.ndarray, classes: np.ndarray,
                          voxel_size_nm, batch_size: int = 4) -> Dict[str, object]:
    """ARI for trained / random-weight / hand-made features, and the trained extractor's features/s."""
    from analysis.clustering import handmade_features

    from .features import extract_features

    t = time.time()
    f_trained = extract_features(trained_model, crops, batch_size)
    fps = len(crops) / (time.time() - t)
    f_random = extract_features(random_model, crops, batch_size)
    f_hand = handmade_features(crops, voxel_size_nm)
    out = {"n_crops": int(len(crops)), "n_classes": int(len(np.unique(classes))), "features_per_s": round(fps, 3)}
    for name, f in (("trained", f_trained), ("random_weights", f_random), ("handmade", f_hand)):
        r = ari_of_features(f, classes)
        out[f"ari_{name}"] = round(r["ari"], 4)
        out[f"ari_{name}_silhouette_k"] = round(r["ari_silhouette_k"], 4)
        out[f"silhouette_k_{name}"] = r["silhouette_k"]
    out["_features"] = {"trained": f_trained, "random_weights": f_random, "handmade": f_hand}
    return out
