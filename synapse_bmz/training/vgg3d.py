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
    from ..packaging.features import build_vgg3d_package

    build_vgg3d_package(feature_model(model), args.out or args.config.parent, train_yaml=args.config,
                        history=history, cfg=cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
