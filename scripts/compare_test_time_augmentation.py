"""A package's card metrics with one plain pass and with test-time flips, side by side.

Predicts with the package's network (`synapse_bmz.training.loop.predict_slices`,
which applies `synapse_bmz.runner.flips.flip_averaged` as the runner does) and
scores with the function that writes the card (`evaluate_predictions`, the
package's recipe). ``--split training`` uses the recipe-tuning sections of a
2D package (`tune_vesicle_recipe.TUNING_SECTIONS`) or the whole training
split of a 3D one: where a package's ``test_time_augmentation`` is chosen.
``--split held-out`` is the card's split: the one-pass figures the cards give
for bioimageio.core / ilastik / deepImageJ users.

Usage: ``python scripts/compare_test_time_augmentation.py PACKAGE [--split training|held-out]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("package", type=Path)
    p.add_argument("--split", choices=["training", "held-out"], default="training")
    a = p.parse_args(argv)

    from synapse_bmz.runner.flips import TTA_MODES
    from synapse_bmz.training.adapt import load_package_network
    from synapse_bmz.training.config import load_train_config
    from synapse_bmz.training.data import load_split
    from synapse_bmz.training.loop import predict_slices
    from synapse_bmz.training.pipeline import evaluate_predictions
    from tune_vesicle_recipe import TUNING_SECTIONS

    cfg = load_train_config(a.package / "train.yaml")
    train, val = load_split(cfg)
    data = val
    if a.split == "training":
        data = train
        if cfg.model.ndim == 2:
            sel = [i for i in TUNING_SECTIONS if i < len(train.raw)]
            for field in ("raw", "targets", "instances", "names"):
                setattr(data, field, [getattr(train, field)[i] for i in sel])
    net = load_package_network(a.package).model
    print(f"{a.package.name}, {a.split} split: {', '.join(data.names)}")
    for mode in TTA_MODES:
        metrics = evaluate_predictions(predict_slices(net, data.raw, "cpu", net.divisibility, mode), data, cfg)
        print(mode, json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
