"""``synapse-bmz train``: train, evaluate on the held-out split, write the package.

The model card states what this run measured (instance F1 and Dice on the
validation split, iterations, wall time, hardware) and the command that
reproduces it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from .config import TrainConfig, load_train_config
from .data import SliceDataset
from .loop import TrainResult, predict_slices, train


def evaluate_slices(model, val: SliceDataset, cfg: TrainConfig, device: str = "cpu") -> Dict[str, float]:
    """Held-out metrics: instance F1 (IoU >= 0.5, Hungarian) after the package's
    recipe, foreground Dice and foreground IoU, pooled over the validation slices."""
    from analysis.evaluation import dice, foreground_iou, instance_scores
    from postprocessing.recipes import apply_recipe

    multiple = max(model.divisibility)
    preds = predict_slices(model, val.raw, device, multiple)
    tp = fp = fn = 0
    dices, ious = [], []
    pp = cfg.package.postprocessing or {}
    for p, gt in zip(preds, val.instances):
        fg = (p[0] > 0.5).astype(np.uint8)
        dices.append(dice(gt > 0, fg))
        ious.append(foreground_iou(gt > 0, fg))
        if pp.get("recipe"):
            labels = apply_recipe(pp["recipe"], p, tuple(cfg.data.voxel_size_nm), pp.get("params", {}))
            s = instance_scores(gt, labels, 0.5)
            tp, fp, fn = tp + s["tp"], fp + s["fp"], fn + s["fn"]
    out = {"foreground_dice": float(np.mean(dices)), "foreground_iou": float(np.mean(ious))}
    if pp.get("recipe"):
        out.update({"instance_f1": 2 * tp / max(2 * tp + fp + fn, 1), "instance_precision": tp / max(tp + fp, 1),
                    "instance_recall": tp / max(tp + fn, 1), "n_ground_truth_objects": tp + fn})
    return out


def _card_sections(cfg: TrainConfig, res: TrainResult, metrics: Dict[str, float], config_path: Path) -> Dict[str, str]:
    m = "\n".join(f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items())
    return {
        "Training data": f"{cfg.data.description}\n\nLicence of the data: {cfg.data.licence}.",
        "Validation split": "Held out from training: " + ", ".join(cfg.data.validation) + ".",
        "Accuracy on the held-out split": (
            "Instance F1 counts a predicted object as correct when its IoU with a ground-truth "
            "object is >= 0.5 after one-to-one Hungarian matching; ground-truth instances are "
            "the connected components of the annotation. Measured after the package's "
            "postprocessing recipe.\n\n| metric | value |\n|---|---|\n" + m
        ),
        "Training": (
            f"{res.iterations} iterations (best checkpoint at {res.best_iteration}), patch "
            f"{cfg.train.patch}, batch {cfg.train.batch_size}, Adam lr {cfg.train.learning_rate} "
            f"({cfg.train.lr_schedule}), Dice + weighted BCE, seed {cfg.seed}. Wall time "
            f"{res.wall_time_s / 60:.1f} min on {res.hardware}.\n\nReproduce:\n\n"
            f"```\nsynapse-bmz train {config_path}\n```\n\n`train.yaml` in this package is that config."
        ),
    }


def train_and_package(config_path: Path, *, out_dir: Optional[Path] = None, work_dir: Optional[Path] = None,
                      device: Optional[str] = None, iterations: Optional[int] = None,
                      resume: bool = True, progress: bool = True) -> Path:
    """Train from a YAML config and write a bioimage.io package.

    Parameters
    ----------
    config_path : Path
        Training YAML (see `synapse_bmz.training.config`).
    out_dir : Path, optional
        Package folder; default ``model_packages/<package.name>`` beside the config's package.
    work_dir : Path, optional
        Checkpoints and ``loss.csv``; default ``runs/<package.name>``.
    iterations : int, optional
        Override the configured iteration count (quick runs, tests).

    Returns
    -------
    Path
        The package's ``rdf.yaml``.
    """
    import torch

    from ..packaging import PackageInfo, build_package
    from ..zoo.config import SynapseBmzConfig
    from .data import load_split

    config_path = Path(config_path)
    cfg = load_train_config(config_path)
    if iterations is not None:
        cfg.train.iterations = iterations
        cfg.train.validate_every = min(cfg.train.validate_every, iterations)
        cfg.train.checkpoint_every = min(cfg.train.checkpoint_every, iterations)
    name = cfg.package.name
    work_dir = Path(work_dir or Path("runs") / name)
    out_dir = Path(out_dir or Path("model_packages") / name)
    train_data, val_data = load_split(cfg)
    res = train(cfg, work_dir, device=device, resume=resume, progress=progress,
                train_data=train_data, val_data=val_data)
    metrics = evaluate_slices(res.model, val_data, cfg)
    (work_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))

    pp = cfg.package.postprocessing
    pkg_cfg = SynapseBmzConfig(
        task=cfg.package.task, channels=cfg.package.channels, voxel_size_nm=cfg.data.voxel_size_nm,
        halo=cfg.package.halo, postprocessing=pp,
        accuracy={**{k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()},
                  "split": "validation: " + ", ".join(cfg.data.validation)},
    )
    img = val_data.raw[0]
    cy, cx = (img.shape[0] - 256) // 2, (img.shape[1] - 256) // 2
    sample = img[None, None, cy:cy + 256, cx:cx + 256].astype(np.float32)
    cite = [cfg.data.citation] if cfg.data.citation else []
    info = PackageInfo(
        name=name, description=cfg.package.description, authors=cfg.package.authors,
        license=_spdx(cfg.data.licence), cite=cite + [{"text": "synapse-bmz", "url": "https://bioimage.io"}],
        tags=["vesicles" if cfg.package.task == "vesicles" else cfg.package.task, "unet", "fib-sem", "em"],
        card_sections=_card_sections(cfg, res, metrics, config_path),
    )
    torch.set_num_threads(max(1, torch.get_num_threads()))
    return build_package(res.model, sample, out_dir, info, pkg_cfg, min_shape=cfg.package.min_shape,
                         step=cfg.package.step, train_yaml=cfg.source)


def _spdx(licence_text: str) -> str:
    """Weights inherit a non-commercial data licence; everything else is MIT."""
    return "CC-BY-NC-SA-3.0" if "CC BY-NC-SA" in licence_text or "CC-BY-NC-SA" in licence_text else "MIT"
