"""Choose the clefts recipe settings of ``model_packages/psd_2d`` on training sections only, and report it.

Predicts training sections (never the held-out 0161-0164) with the
package's network and grid-searches the ``clefts`` recipe's ``threshold``
and ``min_volume_nm3`` (an area in nm^2 in 2D) for the lowest mean CREMI
cleft score (`analysis.evaluation.cremi_cleft_scores`, 5 x 5 nm pixels).
Then reports, with the package's own recipe parameters (its
``rdf.yaml``), the held-out figures the card cites: CREMI score (ADGT,
ADF) and Dice as `synapse_bmz.training.pipeline.evaluate_predictions`
computes them, the number of annotated PSDs (2D connected components per
section) that a detection overlaps, and the detections farther than 200 nm
from every annotated PSD pixel.

Usage: ``python scripts/tune_psd_recipe.py [PACKAGE [TRAIN_YAML]]`` (default model_packages/psd_2d and its train.yaml)
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GRID = {"threshold": [0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
        "min_volume_nm3": [0.0, 2500.0, 5000.0, 10000.0, 20000.0, 40000.0]}
#: training sections the recipe is tuned on (spread over the volume; none next to 0161-0164)
TUNING_SECTIONS = ("training0000.png", "training0013.png", "training0045.png", "training0089.png",
                   "training0118.png", "training0135.png")
FAR_NM = 200.0


def mean_cremi(preds, instances, vox, params):
    from analysis.evaluation import cremi_cleft_scores
    from postprocessing.clefts import segment_clefts

    s = [cremi_cleft_scores((g > 0).astype(np.uint32), (segment_clefts(p[0], vox, **params) > 0).astype(np.uint32),
                            voxel_size_nm=vox)["cremi_score_nm"] for p, g in zip(preds, instances)]
    s = [v for v in s if np.isfinite(v)]
    return float(np.mean(s)) if s else float("inf")


def detection_counts(preds, instances, vox, params):
    """(annotated PSDs, of them overlapped by a detection, detections, detections > FAR_NM from every PSD)."""
    from scipy import ndimage as ndi

    from postprocessing.clefts import segment_clefts
    from synapse_bmz.training.targets import instances_from_mask

    n_gt = n_found = n_det = n_far = 0
    for p, g in zip(preds, instances):
        gt = instances_from_mask(g > 0)
        det = segment_clefts(p[0], vox, **params)
        ids = np.unique(gt)[1:]
        n_gt += len(ids)
        n_found += len(np.setdiff1d(np.unique(gt[det > 0]), [0]))
        dist = ndi.distance_transform_edt(gt == 0, sampling=vox)
        dets = np.unique(det)[1:]
        n_det += len(dets)
        if len(dets):
            nearest = ndi.minimum(dist, det, dets)
            n_far += int(np.sum(np.asarray(nearest) > FAR_NM))
    return n_gt, n_found, n_det, n_far


def main(argv=None) -> int:
    import torch
    import yaml

    args = argv or sys.argv[1:] or [REPO / "model_packages" / "psd_2d"]
    package = Path(args[0])
    config = Path(args[1]) if len(args) > 1 else package / "train.yaml"
    from synapse_bmz.training.adapt import load_package_network
    from synapse_bmz.training.config import load_train_config
    from synapse_bmz.training.data import load_split
    from synapse_bmz.training.loop import predict_slices
    from synapse_bmz.training.pipeline import evaluate_predictions

    torch.set_num_threads(1)
    cfg = load_train_config(config)
    train, val = load_split(cfg)
    net = load_package_network(package)
    vox = tuple(cfg.data.voxel_size_nm)
    sel = [train.names.index(n) for n in TUNING_SECTIONS]
    assert not set(TUNING_SECTIONS) & set(val.names)
    p_train = predict_slices(net.model, [train.raw[i] for i in sel], "cpu", net.model.divisibility)
    gt_train = [train.instances[i] for i in sel]
    scored = sorted(((mean_cremi(p_train, gt_train, vox, dict(zip(GRID, v))), dict(zip(GRID, v)))
                    for v in itertools.product(*GRID.values())), key=lambda t: t[0])
    print(f"training sections {list(TUNING_SECTIONS)}: best 5 of the grid {GRID} (mean CREMI score, nm):")
    for s, params in scored[:5]:
        print(f"  {s:8.2f}  {params}  detections {detection_counts(p_train, gt_train, vox, params)}")

    # the package's own parameters (what its card reports) on the held-out sections
    rdf = yaml.safe_load((package / "rdf.yaml").read_text())
    params = rdf["config"]["synapse_bmz"]["postprocessing"]["params"]
    p_val = predict_slices(net.model, val.raw, "cpu", net.model.divisibility)
    m = evaluate_predictions(p_val, val, cfg)
    n_gt, n_found, n_det, n_far = detection_counts(p_val, val.instances, vox, params)
    print(f"held-out {val.names} with the package's recipe {params}:")
    print(f"  CREMI score {m['cremi_score_nm']:.1f} nm (ADGT {m['adgt_nm']:.1f}, ADF {m['adf_nm']:.1f}), "
          f"Dice {m['foreground_dice']:.3f}, IoU {m['foreground_iou']:.3f}")
    print(f"  {n_found} of {n_gt} annotated PSDs found (overlapped by a detection); {n_det} detections, "
          f"{n_far} farther than {FAR_NM:.0f} nm from every PSD")
    return 0


if __name__ == "__main__":
    sys.exit(main())
