"""Choose the compartments recipe settings of a simulation-trained package on its training seeds only.

Simulates the package's training volumes (seeds ``0..n_train-1`` of its
``train.yaml``; never the held-out ``validation_seeds``), predicts them
with the package's network and its test-time augmentation, grid-searches
the ``compartments`` recipe (`postprocessing.segment_compartments`) for the
best pooled instance F1 (IoU >= 0.5, Hungarian,
`analysis.evaluation.pooled_instance_report`) and, with ``--held-out``,
reports the held-out figures of the winner, of the package's own
parameters and of the recipe's defaults once, after the choice.

Usage: ``python scripts/tune_compartments_recipe.py [PACKAGE] [--held-out]`` (default model_packages/compartments)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from tune_vesicle_recipe import grid_search, package_params, recipe_report, report_choice  # noqa: E402

GRID = {"boundary_threshold": [0.3, 0.5],
        "seed_distance_nm": [10.0, 15.0, 20.0, 40.0],
        # the simulation's thin processes cover a few hundred pixels (some thousand nm^2) per slice
        "min_area_nm2": [1000.0, 2500.0, 5000.0, 20000.0],
        "min_slices": [5],
        "min_overlap": [0.3, 0.5]}


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package", nargs="?", type=Path, default=REPO / "model_packages" / "compartments")
    ap.add_argument("--held-out", action="store_true",
                    help="also score the held-out seeds (once, after the choice; never to choose)")
    a = ap.parse_args(argv)
    from synapse_bmz.training.adapt import load_package_network
    from synapse_bmz.training.config import load_train_config
    from synapse_bmz.training.data import load_simulation
    from synapse_bmz.training.loop import predict_slices

    cfg = load_train_config(a.package / "train.yaml")
    train, val = load_simulation(cfg, training=True)
    assert not set(train.names) & set(val.names)
    net = load_package_network(a.package)
    vox = tuple(cfg.data.voxel_size_nm)
    tta = cfg.package.test_time_augmentation
    p_train = predict_slices(net.model, train.raw, "cpu", net.model.divisibility, tta)
    # each ground-truth compartment's median area over the slices it is in, against the recipe's default
    # minimum area per slice
    pixel_nm2 = float(np.prod(vox[-2:]))
    areas = np.array([np.median(per_slice[per_slice > 0]) * pixel_nm2 for g in train.instances
                      for per_slice in np.stack([np.bincount(z.ravel(), minlength=int(g.max()) + 1)
                                                 for z in g], axis=1)[1:] if per_slice.any()])
    print(f"ground-truth compartments on the training seeds: {areas.size}; median area per slice (nm^2) "
          f"from {areas.min():.0f} to {areas.max():.0f}; {int((areas < 20_000).sum())} below 20 000 nm^2 "
          "(the recipe's default min_area_nm2)")
    best = grid_search(GRID, lambda params: recipe_report(p_train, train.instances, vox, params, "compartments")[0.5]["f1"])[0][1]
    print(f"best on training seeds ({len(train.names)} volumes): {best}")
    held = None
    if a.held_out:
        p_val = predict_slices(net.model, val.raw, "cpu", net.model.divisibility, tta)
        held = (p_val, val.instances, val.names)
    report_choice("compartments", vox, best, (p_train, train.instances), held,
                  [("the package's recipe", package_params(a.package)), ("the recipe's defaults", {})])
    return 0


if __name__ == "__main__":
    sys.exit(main())
