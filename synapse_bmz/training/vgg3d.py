"""Train the VGG3D feature extractor on simulated synapse classes and package it.

Supervised: a linear head classifies `synapse_bmz.simulate.synapse_classes`
(vesicle density and size, cleft width, docked and dense-core vesicles);
the package keeps the convolutional features only. On CPU the 80^3
architecture is trained on smaller sub-crops of the synapse cubes (same
voxel size), which the fully convolutional network with global pooling
allows; ``train.yaml`` records the sizes used.

``python -m synapse_bmz.training.vgg3d model_packages/vgg3d_features/train.yaml``
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field

from ..errors import InputError


class VGG3DTrainConfig(BaseModel):
    """``train.yaml`` of the ``vgg3d_features`` package (lengths in nm, sizes in voxels)."""

    model_config = ConfigDict(extra="forbid")
    model: str = "vgg3d"
    voxel_size_nm: List[float] = [5.0, 5.0, 5.0]
    crop_shape: List[int] = [80, 80, 80]        # the package's input (consumers' crops)
    simulation_shape: List[int] = [64, 64, 64]  # training volumes
    train_crop: int = 32                        # cubic sub-crops trained on (CPU budget)
    train_seeds: List[int] = Field(default_factory=lambda: list(range(24)))
    test_seeds: List[int] = Field(default_factory=lambda: list(range(1000, 1010)))
    steps: int = 300
    batch_size: int = 8
    learning_rate: float = 1e-3
    seed: int = 0
    threads: int = 1
    pooling: str = "avg"
    extraction: str = "standard"
    layer_num: int = 20


def load_config(path: Path) -> VGG3DTrainConfig:
    """Read ``train.yaml``; one-line `InputError` naming the file otherwise."""
    from pydantic import ValidationError

    path = Path(path)
    try:
        cfg = VGG3DTrainConfig.model_validate(yaml.safe_load(path.read_text()) or {})
    except (OSError, yaml.YAMLError) as e:
        raise InputError(path, f"cannot read: {' '.join(str(e).split())}") from None
    except ValidationError as e:
        first = e.errors()[0]
        raise InputError(path, f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    if set(cfg.train_seeds) & set(cfg.test_seeds):
        raise InputError(path, "train_seeds and test_seeds overlap; held-out seeds must never be trained on")
    return cfg


def _random_subcrops(volumes, labels, n, size, rng):
    """``n`` random cubic sub-crops with random flips, each normalised like the RDF (zero mean, unit sd)."""
    out = np.empty((n, 1, size, size, size), np.float32)
    ys = np.empty(n, np.int64)
    for i in range(n):
        k = int(rng.integers(len(volumes)))
        v = volumes[k]
        lo = [int(rng.integers(0, s - size + 1)) for s in v.shape]
        c = v[lo[0]:lo[0] + size, lo[1]:lo[1] + size, lo[2]:lo[2] + size]
        for ax in range(3):
            if rng.random() < 0.5:
                c = np.flip(c, ax)
        out[i, 0] = (c - c.mean()) / (c.std() + 1e-6)
        ys[i] = labels[k]
    return out, ys


def train(cfg: VGG3DTrainConfig, log=print):
    """Simulate the training classes and train VGG3D with a class head.

    Returns
    -------
    model : VGG3D
        With the head (``n_classes``); `package_model` drops it.
    history : dict
        ``loss`` per logged step, wall time, sample counts.
    """
    import torch

    from ..models.vgg3d import VGG3D
    from ..simulate.synapse_classes import SYNAPSE_CLASSES, class_samples

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    t0 = time.time()
    volumes, labels = [], []
    for s in class_samples(cfg.train_seeds, shape=tuple(cfg.simulation_shape), voxel_size_nm=tuple(cfg.voxel_size_nm)):
        volumes.append(s.raw)
        labels.append(s.class_id)
    t_sim = time.time() - t0
    log(f"simulated {len(volumes)} training volumes in {t_sim:.0f} s")
    model = VGG3D(pooling=cfg.pooling, extraction=cfg.extraction, layer_num=cfg.layer_num,
                  n_classes=len(SYNAPSE_CLASSES))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    losses, accs = [], []
    model.train()
    for step in range(cfg.steps):
        x, y = _random_subcrops(volumes, labels, cfg.batch_size, cfg.train_crop, rng)
        logits = model.head(model(torch.from_numpy(x)))
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        accs.append(float((logits.argmax(1).numpy() == y).mean()))
        if step % 20 == 0 or step == cfg.steps - 1:
            log(f"step {step}: loss {np.mean(losses[-20:]):.3f}, batch accuracy {np.mean(accs[-20:]):.2f}, "
                f"{time.time() - t0:.0f} s")
    history = {"loss": losses, "batch_accuracy": accs, "simulation_s": round(t_sim, 1),
               "train_s": round(time.time() - t0 - t_sim, 1), "n_train_volumes": len(volumes)}
    return model.eval(), history


def feature_model(trained, **overrides):
    """A head-less `VGG3D` with the trained convolutional weights (pooling/extraction overridable)."""
    from ..models.vgg3d import VGG3D

    kwargs = {k: v for k, v in trained.init_kwargs.items() if k != "n_classes"}
    kwargs.update(overrides)
    model = VGG3D(**kwargs)
    state = {k: v for k, v in trained.state_dict().items() if not k.startswith("head.")}
    model.load_state_dict(state)
    return model.eval()


def main(argv: Optional[list] = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", type=Path)
    p.add_argument("--out", type=Path, default=None, help="package folder (default: the config's folder)")
    p.add_argument("--weights", type=Path, default=None, help="also save the trained state dict (with head) here")
    args = p.parse_args(argv)
    cfg = load_config(args.config)
    import torch

    model, history = train(cfg, log=lambda m: print(m, flush=True))
    if args.weights:
        torch.save(model.state_dict(), args.weights)
        Path(args.weights).with_suffix(".json").write_text(json.dumps(history))
    build_vgg3d_package(feature_model(model), args.out or args.config.parent, args.config, cfg, history)
    return 0


def build_vgg3d_package(model, out_dir: Path, train_yaml: Path, cfg: VGG3DTrainConfig, history: dict,
                        evaluation: Optional[dict] = None, heldout=None) -> Path:
    """Measure held-out ARI (unless given) and write the ``vgg3d_features`` package.

    Parameters
    ----------
    model : VGG3D
        Head-less (`feature_model`).
    evaluation : dict, optional
        `synapse_bmz.cluster.evaluate.evaluate_feature_sets` result on the
        config's ``test_seeds``; measured here when None.
    heldout : (crops, classes), optional
        `synapse_bmz.cluster.evaluate.heldout_crops` of the config's test seeds, if already made.
    """
    import torch

    from ..cluster.evaluate import evaluate_feature_sets, heldout_crops
    from ..models.vgg3d import VGG3D
    from ..packaging.features import build_feature_package
    from ..simulate.synapse_classes import SYNAPSE_CLASSES

    vs = tuple(cfg.voxel_size_nm)
    if heldout is None:
        heldout = heldout_crops(cfg.test_seeds, simulation_shape=tuple(s + 16 for s in cfg.crop_shape),
                                crop_shape=tuple(cfg.crop_shape), voxel_size_nm=vs)[:2]
    crops, classes = heldout
    if evaluation is None:
        torch.manual_seed(0)
        evaluation = evaluate_feature_sets(model, VGG3D(**{k: v for k, v in model.init_kwargs.items()}).eval(),
                                           crops, classes, vs)
    acc = {k: v for k, v in evaluation.items() if not k.startswith("_")}
    acc.update(primary_metric="ari_trained", split=f"held-out simulated seeds {cfg.test_seeds} x "
               f"{len(SYNAPSE_CLASSES)} classes (training seeds {cfg.train_seeds[0]}-{cfg.train_seeds[-1]})")
    classes_md = "\n".join(f"| {i} | `{c.name}` | {c.vesicle_fraction} | {c.vesicle_radius_nm} | {c.cleft_width_nm} | "
                            f"{c.n_docked} | {c.n_dense_core} |" for i, c in enumerate(SYNAPSE_CLASSES))
    card = f"""# vgg3d_features

VGG3D feature extractor (SynapseClusterEM's architecture): a synapse-centred EM cube of
{cfg.crop_shape[0]}^3 voxels at {' x '.join(f'{v:g}' for v in vs)} nm (z, y, x) in, one vector of
{model.n_features} features per cube out ({model.extraction} extraction, {model.pooling} pooling).
`synapse-bmz cluster` cuts the cubes (`analysis.synapse_crops`), clusters the features and writes a report;
extraction layer and pooling can be changed there without other weights.

## Architecture

Four blocks of 4, 2, 2, 2 3x3x3 convolutions (batch norm + ReLU; 24, 48, 96, 192 channels), each
ending in 2x2x2 max-pooling (80^3 -> 5^3), then global pooling. Layers are numbered as in
SynapseClusterEM (`features.20` = first convolution of block 3, the `stage_specific` default).

## Training

Supervised, on simulated synapses only (`synapse_bmz.simulate.synapse_classes`; RT tomography
imaging with tilt series and back-projection): a linear head classified {len(SYNAPSE_CLASSES)} classes
and was dropped for the package.

| class | name | vesicle fraction | vesicle radius (nm) | cleft (nm) | docked | dense-core |
|---|---|---|---|---|---|---|
{classes_md}

{len(cfg.train_seeds)} seeds per class ({history.get('n_train_volumes')} volumes of {cfg.simulation_shape} voxels),
{cfg.steps} Adam steps of {cfg.batch_size} random **{cfg.train_crop}^3 sub-crops** (with flips) on one CPU thread
({history.get('train_s')} s): the 80^3 input costs 7.8 s per sample and step on this CPU, so the fully
convolutional network was trained on smaller cubes at the same voxel size; features are pooled over 80^3.
Final training loss {np.mean(history['loss'][-20:]):.3f}, batch accuracy {np.mean(history['batch_accuracy'][-20:]):.2f}
(on sub-crops). `train.yaml` reproduces it: `python -m synapse_bmz.training.vgg3d train.yaml`.

## Validation: held-out accuracy (simulated)

{acc['n_crops']} crops of held-out seeds {cfg.test_seeds[0]}-{cfg.test_seeds[-1]} (never trained on), standardised
features, KMeans with k = {acc['n_classes']}, adjusted Rand index against the known classes:

| features | ARI (k = {acc['n_classes']}) | ARI (k by silhouette) |
|---|---|---|
| this package (trained) | {acc['ari_trained']:.3f} | {acc['ari_trained_silhouette_k']:.3f} (k = {acc['silhouette_k_trained']}) |
| same architecture, random weights | {acc['ari_random_weights']:.3f} | {acc['ari_random_weights_silhouette_k']:.3f} (k = {acc['silhouette_k_random_weights']}) |
| hand-made (intensity histogram + radial profile) | {acc['ari_handmade']:.3f} | {acc['ari_handmade_silhouette_k']:.3f} (k = {acc['silhouette_k_handmade']}) |

Features/s on one CPU thread (80^3): {acc['features_per_s']:.2f}. `python benchmarks/clustering.py` re-measures.
These are simulated synapses: the classes differ in what the simulator varies, and no real EM was used.
The weights are a starting point for real data, not a validated real-data extractor.

## Licence

MIT.

## Use

```
synapse-bmz cluster RAW --synapses synapses.csv -o runs/     # SynapseClusterEM spreadsheet, partner or cleft table
bioimageio test rdf.yaml
```
"""
    sample = crops[:1, None].astype(np.float32)
    order = [int(np.flatnonzero(classes == c)[0]) for c in np.unique(classes)[:2]]
    return build_feature_package(model, sample, out_dir, name="vgg3d_features",
                                 description="VGG3D feature extractor (SynapseClusterEM) for synapse-centred EM cubes, "
                                             "trained on simulated synapse classes; output batch x features.",
                                 voxel_size_nm=vs, card=card, accuracy=acc, train_yaml=train_yaml,
                                 min_size=cfg.crop_shape[0], step=16, cover_crops=crops[order])


if __name__ == "__main__":
    sys.exit(main())
