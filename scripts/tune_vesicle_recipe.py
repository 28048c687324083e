"""Choose the vesicles recipe settings of a 2D package on training sections only.

Predicts five training sections (never the held-out ones) with the
package's network, grid-searches the recipe's thresholds and mode for the
best pooled instance F1 (IoU >= 0.5, Hungarian), and reports the held-out
F1 with the winner. This is how ``model_packages/vesicles_2d`` got its
``postprocessing.params``. A package with a distance channel
(``target: foreground_boundary_distance``) is searched over
``mode: predicted_distance`` (``DISTANCE_GRID``), others over ``GRID``.

Usage: ``python scripts/tune_vesicle_recipe.py [PACKAGE]`` (default model_packages/vesicles_2d)
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GRID = {"mode": ["components", "distance"], "vesicle_radius_nm": [20, 30],
        "foreground_threshold": [0.5, 0.7, 0.8, 0.9], "mask_threshold": [0.5, 0.7, 0.8, 0.9],
        "boundary_threshold": [0.5, 0.7]}
DISTANCE_GRID = {"mode": ["predicted_distance"], "mask_threshold": [0.3, 0.4, 0.5, 0.6],
                 "seed_threshold": [0.2, 0.3, 0.4, 0.5, 0.6], "seed_separation_nm": [0, 15, 30],
                 "min_radius_nm": [5, 8], "vesicle_radius_nm": [30]}
TUNING_SECTIONS = (0, 5, 10, 15, 20)  # indices into the training split


def pooled_f1(preds, instances, voxel_size_nm, **params):
    """Instance F1 (IoU >= 0.5, Hungarian) pooled over sections, `analysis.evaluation.pooled_instance_scores`."""
    from analysis.evaluation import pooled_instance_scores

    return pooled_instance_scores(_pairs(preds, instances, voxel_size_nm, params), 0.5)["f1"]


def _pairs(preds, instances, voxel_size_nm, params, recipe="vesicles"):
    from postprocessing.recipes import apply_recipe

    return ((gt, apply_recipe(recipe, p, voxel_size_nm, params)) for p, gt in zip(preds, instances))


def recipe_report(preds, instances, voxel_size_nm, params, recipe="vesicles") -> dict:
    """`analysis.evaluation.pooled_instance_report` of ``recipe`` with ``params`` on predicted sections."""
    from analysis.evaluation import pooled_instance_report

    return pooled_instance_report(_pairs(preds, instances, voxel_size_nm, params, recipe))


def report_line(r: dict) -> str:
    """F1 at IoU 0.3 / 0.5 / 0.7, precision/recall at 0.5, merges and splits of a :func:`recipe_report`."""
    return (f"F1 {r[0.3]['f1']:.3f} / {r[0.5]['f1']:.3f} / {r[0.7]['f1']:.3f} at IoU 0.3/0.5/0.7, "
            f"P {r[0.5]['precision']:.3f} R {r[0.5]['recall']:.3f}, merges {r['merges']} ({r['merged_gt']} objects), "
            f"splits {r['splits']} (into {r['split_pred']})")


def grid_search(grid: dict, f1_of, label: str = "training") -> list:
    """``(f1, params)`` for every combination of ``grid``, best first; prints the best five.

    ``f1_of(params)`` scores one combination; None leaves it out.
    """
    scored = []
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values))
        f1 = f1_of(params)
        if f1 is not None:
            scored.append((f1, params))
    scored.sort(key=lambda t: -t[0])
    for f1, params in scored[:5]:
        print(f"  {label} F1 {f1:.3f}: {params}")
    return scored


def package_params(package: Path) -> dict:
    """The recipe parameters a package ships (``config.synapse_bmz.postprocessing.params`` of its rdf.yaml)."""
    import yaml

    rdf = yaml.safe_load((Path(package) / "rdf.yaml").read_text())
    return rdf["config"]["synapse_bmz"]["postprocessing"]["params"]


def report_choice(recipe, voxel_size_nm, best, train, held=None, compare=()) -> None:
    """Print the chosen settings and each of ``compare`` on the tuning data and, if given, the held-out data.

    ``train`` and ``held`` are ``(predictions, instances)``; ``held`` also
    names its data as a third item. ``compare``: ``(name, params)`` pairs,
    e.g. the package's own settings.
    """
    def line(data, params):
        return report_line(recipe_report(data[0], data[1], voxel_size_nm, params, recipe))

    print(f"  training: {line(train, best)}")
    for name, params in compare:
        print(f"  training with {name} {params}: {line(train, params)}")
    if held is not None:
        print(f"held-out {held[2]} with {best}: {line(held, best)}")
        for name, params in compare:
            print(f"held-out with {name} {params}: {line(held, params)}")


def _report(preds, instances, voxel_size_nm, params) -> str:
    return report_line(recipe_report(preds, instances, voxel_size_nm, params))


def main(argv=None) -> int:
    package = Path((argv or sys.argv[1:] or [REPO / "model_packages" / "vesicles_2d"])[0])
    from synapse_bmz.training.adapt import load_package_network
    from synapse_bmz.training.config import load_train_config
    from synapse_bmz.training.data import load_split
    from synapse_bmz.training.loop import predict_slices

    cfg = load_train_config(package / "train.yaml")
    train, val = load_split(cfg)
    net = load_package_network(package)
    vox = tuple(cfg.data.voxel_size_nm)
    sel = [i for i in TUNING_SECTIONS if i < len(train.raw)]
    # with the test-time augmentation the package's runs and card use
    tta = cfg.package.test_time_augmentation
    p_train = predict_slices(net.model, [train.raw[i] for i in sel], "cpu", net.model.divisibility, tta)
    p_val = predict_slices(net.model, val.raw, "cpu", net.model.divisibility, tta)
    gt_train = [train.instances[i] for i in sel]
    # the annotation's object sizes (the card cites them): merged clusters show as large radii
    areas = np.concatenate([np.bincount(g.ravel())[1:] for g in gt_train])
    radius_nm = np.sqrt(areas[areas > 0] / np.pi) * float(np.mean(vox))
    print("annotated objects on these sections: equivalent radius (nm) median "
          f"{np.median(radius_nm):.1f}, 95th percentile {np.percentile(radius_nm, 95):.1f}")
    grid = DISTANCE_GRID if cfg.out_channels >= 3 else GRID
    best_f1, best = grid_search(grid, lambda params: pooled_f1(p_train, gt_train, vox, **params))[0]
    print(f"best on training sections {[train.names[i] for i in sel]}: F1 {best_f1:.3f} with {best}")
    print(f"  training: {_report(p_train, gt_train, vox, best)}")
    print(f"held-out with it: {_report(p_val, val.instances, vox, best)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
