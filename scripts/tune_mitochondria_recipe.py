"""Choose the mitochondria recipe settings of a 2D package on training sections only.

Predicts five training sections (never the held-out ones) with the
package's network and its test-time augmentation, grid-searches the
``mitochondria`` recipe's ``seed_distance_nm`` and ``min_volume_nm3`` (an
area in nm^2 for 2D input) for the best pooled instance F1 (IoU >= 0.5,
Hungarian, `analysis.evaluation.pooled_instance_report`), and reports the
held-out figures with the winner and with the package's own parameters.
This is how ``model_packages/mitochondria_2d`` got its
``postprocessing.params``.

Usage: ``python scripts/tune_mitochondria_recipe.py [PACKAGE] [--held-out]`` (default model_packages/mitochondria_2d)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from tune_vesicle_recipe import grid_search, package_params, recipe_report, report_choice  # noqa: E402

GRID = {"seed_distance_nm": [9.0, 15.0, 25.0, 40.0],
        "min_volume_nm3": [0.0, 2500.0, 5000.0, 10000.0, 25000.0, 50000.0]}
TUNING_SECTIONS = (0, 5, 10, 15, 20)  # indices into the training split (0000, 0017, 0046, 0063, 0105)


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package", nargs="?", type=Path, default=REPO / "model_packages" / "mitochondria_2d")
    ap.add_argument("--held-out", action="store_true",
                    help="also score the held-out sections (once, after the choice; never to choose)")
    a = ap.parse_args(argv)
    package = a.package
    from synapse_bmz.training.adapt import load_package_network
    from synapse_bmz.training.config import load_train_config
    from synapse_bmz.training.data import load_split
    from synapse_bmz.training.loop import predict_slices

    cfg = load_train_config(package / "train.yaml")
    train, val = load_split(cfg)
    net = load_package_network(package)
    vox = tuple(cfg.data.voxel_size_nm)
    sel = [i for i in TUNING_SECTIONS if i < len(train.raw)]
    assert not {train.names[i] for i in sel} & set(val.names)
    tta = cfg.package.test_time_augmentation
    p_train = predict_slices(net.model, [train.raw[i] for i in sel], "cpu", net.model.divisibility, tta)
    gt_train = [train.instances[i] for i in sel]
    areas_nm2 = np.concatenate([np.bincount(g.ravel())[1:] for g in gt_train]) * float(np.prod(vox))
    areas_nm2 = areas_nm2[areas_nm2 > 0]
    print(f"annotated mitochondrion profiles on these sections: {areas_nm2.size}, area (nm^2) 5th percentile "
          f"{np.percentile(areas_nm2, 5):.0f}, median {np.median(areas_nm2):.0f}; "
          f"{int(np.sum(areas_nm2 < 50_000))} below 50 000 nm^2")
    best = grid_search(GRID, lambda params: recipe_report(p_train, gt_train, vox, params, "mitochondria")[0.5]["f1"])[0][1]
    print(f"best on training sections {[train.names[i] for i in sel]}: {best}")
    held = None
    if a.held_out:
        p_val = predict_slices(net.model, val.raw, "cpu", net.model.divisibility, tta)
        held = (p_val, val.instances, val.names)
    report_choice("mitochondria", vox, best, (p_train, gt_train), held,
                  [("the package's recipe", package_params(package))])
    return 0


if __name__ == "__main__":
    sys.exit(main())
