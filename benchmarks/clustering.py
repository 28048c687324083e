"""Synapse clustering benchmark: do KMeans clusters of VGG3D features recover known synapse classes?

Held-out simulated synapses (`synapse_bmz.simulate.synapse_classes`, seeds
never trained on) are cropped with `analysis.synapse_crops`, featurised by
the ``vgg3d_features`` package (trained weights), by the same architecture
with random weights, and by hand-made features (intensity histogram + radial
profile), standardised and clustered with KMeans (k = number of classes; the
silhouette-chosen k is reported beside). Also: features/s of the extractor
on CPU (one thread) and the end-to-end time for 1 000 synapses (cropping and
features measured per synapse, times 1 000, plus standardisation, KMeans
k = 2..10, UMAP and t-SNE 2D + 3D measured on 1 000 feature vectors).

    python benchmarks/clustering.py [--quick] [--out benchmarks/results/clustering.json]

``--quick`` (< 1 min): 8 crops of 48^3 from 64^3 simulations, no 1 000-synapse timing.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _end_to_end_1000(features: np.ndarray, per_synapse_s: float, seed: int = 0) -> dict:
    """Clustering stages timed on 1 000 feature vectors (held-out vectors resampled with jitter)."""
    from analysis.clustering import choose_k, embed, standardise

    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(features), 1000)
    f = features[idx] + rng.normal(0, 0.05, (1000, features.shape[1])) * features.std(0)
    t = time.time()
    x = standardise(f)
    choose_k(x, range(2, 11), seed=seed)
    t_kmeans = time.time() - t
    t = time.time()
    for method in ("umap", "tsne"):
        for dim in (2, 3):
            embed(x, method, dim, seed=seed)
    t_embed = time.time() - t
    return {"end_to_end_1000_s": round(1000 * per_synapse_s + t_kmeans + t_embed, 1),
            "end_to_end_1000_breakdown_s": {"crops_and_features": round(1000 * per_synapse_s, 1),
                                            "standardise_kmeans_k2_10": round(t_kmeans, 1),
                                            "umap_tsne_2d_3d": round(t_embed, 1)}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "clustering.json")
    p.add_argument("--model", default="vgg3d_features")
    a = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from synapse_bmz.cluster.evaluate import evaluate_feature_sets, heldout_crops
    from synapse_bmz.cluster.features import load_extractor

    trained, vs, shape = load_extractor(a.model)
    random, _, _ = load_extractor(a.model, random_weights=True, seed=0)
    seeds = [1000, 1001] if a.quick else list(range(1000, 1010))
    sim_shape, crop_shape = ((64, 64, 64), (48, 48, 48)) if a.quick else ((96, 96, 96), tuple(shape))
    t0 = time.time()
    crops, classes, table = heldout_crops(seeds, simulation_shape=sim_shape, crop_shape=crop_shape, voxel_size_nm=vs)
    t_crops = time.time() - t0
    t1 = time.time()
    from analysis.synapse_crops import crop_synapses

    # cropping alone (the simulation above is not part of a user's run)
    crop_synapses(crops[0], vs, table.iloc[:1].assign(center_z_nm=(crop_shape[0] - 1) / 2 * vs[0],
                                                      center_y_nm=(crop_shape[1] - 1) / 2 * vs[1],
                                                      center_x_nm=(crop_shape[2] - 1) / 2 * vs[2]),
                  crop_shape=crop_shape, crop_voxel_size_nm=vs)
    crop_s = time.time() - t1
    res = evaluate_feature_sets(trained, random, crops, classes, vs)
    feats = res.pop("_features")
    out = {
        "ari_trained": res["ari_trained"], "ari_random_weights": res["ari_random_weights"],
        "ari_handmade": res["ari_handmade"], "features_per_s": res["features_per_s"],
        "end_to_end_1000_s": None,
        "details": {**res, "classes": "synapse_bmz.simulate.synapse_classes.SYNAPSE_CLASSES",
                    "heldout_seeds": seeds, "simulation_shape": list(sim_shape), "crop_shape": list(crop_shape),
                    "voxel_size_nm": list(vs), "kmeans_k": int(len(np.unique(classes))),
                    "simulation_and_crop_s": round(t_crops, 1), "quick": a.quick, "threads": 1,
                    "machine": f"{platform.processor() or platform.machine()}, CPU only"},
    }
    if not a.quick:
        out.update(_end_to_end_1000(feats["trained"], crop_s + 1.0 / res["features_per_s"]))
    out["details"]["seconds"] = round(time.time() - t0, 1)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_name(f".{a.out.name}.tmp")
    tmp.write_text(json.dumps(out, indent=2) + "\n")
    tmp.replace(a.out)
    print(json.dumps({k: v for k, v in out.items() if k != "details"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
