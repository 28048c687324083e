"""Choose the compartments recipe settings of a simulation-trained package on its training seeds only.

Simulates the package's training volumes (seeds ``0..n_train-1`` of its
``train.yaml``; never the held-out ``validation_seeds``), predicts them
with the package's network and its test-time augmentation, grid-searches
the ``compartments`` recipe (`postprocessing.segment_compartments`) for the
best pooled instance F1 (IoU >= 0.5, Hungarian,
`analysis.evaluation.pooled_instance_report`) and, with ``--held-out``,
reports the held-out figures of the winner and of the package's own
parameters once, after the choice.

Usage: ``python scripts/tune_compartments_recipe.py [PACKAGE] [--held-out]`` (default model_packages/compartments)
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from tune_vesicle_recipe import recipe_report, report_line  # noqa: E402  (one report format for every recipe)

GRID = {"boundary_threshold": [0.3, 0.5],
        "seed_distance_nm": [10.0, 15.0, 20.0, 40.0],
        # the simulation's thin processes cover a few hundred pixels (some thousand nm^2) per slice
        "min_area_nm2": [1000.0, 2500.0, 5000.0, 20000.0],
        "min_slices": [5],
        "min_overlap": [0.3, 0.5]}


def _report(preds, instances, voxel_size_nm, params) -> dict:
    return recipe_report(preds, instances, voxel_size_nm, params, "compartments")


def main(argv=None) -> int:
    import argparse

    import yaml

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
    scored = []
    for values in itertools.product(*GRID.values()):
        params = dict(zip(GRID, values))
        scored.append((_report(p_train, train.instances, vox, params)[0.5]["f1"], params))
    scored.sort(key=lambda t: -t[0])
    for f1, params in scored[:5]:
        print(f"  training F1 {f1:.3f}: {params}")
    best = scored[0][1]
    print(f"best on training seeds ({len(train.names)} volumes): {best}")
    print(f"  training: {report_line(_report(p_train, train.instances, vox, best))}")
    rdf = yaml.safe_load((a.package / "rdf.yaml").read_text())
    own = rdf["config"]["synapse_bmz"]["postprocessing"]["params"]
    print(f"  training with the package's recipe {own}: {report_line(_report(p_train, train.instances, vox, own))}")
    if a.held_out:
        p_val = predict_slices(net.model, val.raw, "cpu", net.model.divisibility, tta)
        print(f"held-out {val.names} with {best}: {report_line(_report(p_val, val.instances, vox, best))}")
        print(f"held-out with the package's recipe {own}: {report_line(_report(p_val, val.instances, vox, own))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
