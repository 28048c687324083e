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

from .config import ExtraTraining, TrainConfig, load_train_config
from .data import SliceDataset
from .loop import TrainResult, predict_slices, train


CLEFT_TASKS = ("clefts", "synapses")


def primary_metric(cfg: TrainConfig) -> str:
    """The figure a package's card stands for: CREMI score for clefts/synapses,
    instance F1 when a recipe makes instances, foreground Dice for masks;
    ``package.primary_metric`` overrides (mitochondria_2d is judged by foreground IoU)."""
    if cfg.package.primary_metric:
        return cfg.package.primary_metric
    if cfg.package.task in CLEFT_TASKS:
        return "cremi_score_nm"
    sim = cfg.data.simulation
    if sim is not None and cfg.target == "mask" and sim.instances is None:
        return "foreground_dice"  # masks (active zone, ribbon) have no instances to match
    if (cfg.package.postprocessing or {}).get("recipe"):
        return "instance_f1"
    return "foreground_dice"


def evaluate_predictions(preds, val: SliceDataset, cfg: TrainConfig) -> Dict[str, float]:
    """Held-out metrics of predictions ``(C, [Z,] Y, X)`` against ``val``.

    Always foreground Dice and IoU (mean over validation images or volumes).
    Cleft/synapse tasks add the CREMI cleft metrics (`analysis.evaluation.cremi_cleft_scores`,
    distances in nm, averaged over volumes) on the recipe's output (or the
    thresholded foreground without a recipe); other tasks with a recipe add
    instance F1 (IoU >= 0.5, Hungarian), pooled over the validation data, with
    F1 at IoU 0.3 and 0.7 and the merge/split counts of
    `analysis.evaluation.pooled_instance_report`.
    """
    from analysis.evaluation import cremi_cleft_scores, dice, foreground_iou, pooled_instance_report
    from postprocessing.recipes import apply_recipe

    dices, ious, cremi, instance_pairs = [], [], [], []
    pp = cfg.package.postprocessing or {}
    clefts = cfg.package.task in CLEFT_TASKS
    scored = primary_metric(cfg)
    # instance F1 wherever the recipe's instances have ground truth to match (not for plain masks)
    want_instances = bool(pp.get("recipe")) and scored != "foreground_dice"
    multi_mask = cfg.target == "mask" and cfg.out_channels > 1
    channel_dice: Dict[str, list] = {c: [] for c in cfg.package.channels} if multi_mask else {}
    for p, gt, tgt in zip(preds, val.instances, val.targets):
        if multi_mask:
            # several masks (ribbon, presynaptic density, membrane): Dice per channel, mean as the headline
            per = [dice(t > 0.5, c > 0.5) for c, t in zip(p, tgt)]
            for name, d in zip(cfg.package.channels, per):
                channel_dice[name].append(d)
            dices.append(float(np.mean(per)))
            ious.append(float(np.mean([foreground_iou(t > 0.5, c > 0.5) for c, t in zip(p, tgt)])))
            continue
        fg = (p[0] > 0.5).astype(np.uint8)
        ref = gt > 0 if cfg.target != "mask" or cfg.data.simulation is None else tgt[0] > 0.5
        dices.append(dice(ref, fg))
        ious.append(foreground_iou(ref, fg))
        labels = (apply_recipe(pp["recipe"], p, tuple(cfg.data.voxel_size_nm), pp.get("params", {}))
                  if want_instances else None)
        if clefts:
            found = (labels if labels is not None else fg) > 0
            cremi.append(cremi_cleft_scores((gt > 0).astype(np.uint32), found.astype(np.uint32),
                                            voxel_size_nm=tuple(cfg.data.voxel_size_nm)))
        elif labels is not None:
            instance_pairs.append((gt, labels))
    out = {"foreground_dice": float(np.mean(dices)), "foreground_iou": float(np.mean(ious))}
    out.update({f"dice_{name}": float(np.mean(v)) for name, v in channel_dice.items()})
    if clefts:
        for key in ("adgt_nm", "adf_nm", "cremi_score_nm"):
            vals = [c[key] for c in cremi if np.isfinite(c[key])]
            out[key] = float(np.mean(vals)) if vals else float("inf")
        for key in ("false_positives", "false_negatives"):
            out[key] = int(sum(c[key] for c in cremi))
    elif want_instances:
        report = pooled_instance_report(instance_pairs, (0.5, 0.3, 0.7))
        pooled = report[0.5]
        out.update({"instance_f1": pooled["f1"], "instance_precision": pooled["precision"],
                    "instance_recall": pooled["recall"], "n_ground_truth_objects": pooled["tp"] + pooled["fn"],
                    "n_predicted_objects": pooled["tp"] + pooled["fp"],
                    "f1_iou_0_3": report[0.3]["f1"], "f1_iou_0_7": report[0.7]["f1"]})
        # majority-overlap merges (predictions holding >= 2 annotated objects) and splits
        out.update({key: report[key] for key in ("merges", "merged_gt", "splits", "split_pred")})
    return out


def evaluate_slices(model, val: SliceDataset, cfg: TrainConfig, device: str = "cpu") -> Dict[str, float]:
    """Predict the validation images or volumes whole and score them (`evaluate_predictions`)."""
    preds = predict_slices(model, val.raw, device, model.divisibility, cfg.package.test_time_augmentation)
    return evaluate_predictions(preds, val, cfg)


def split_description(cfg: TrainConfig) -> str:
    """``"validation: <files>"``, the held-out section range for ``validation_z``, or the held-out seeds."""
    sim = cfg.data.simulation
    if sim is not None:
        extra = f", {sim.extra_training.seeds[0]}-{sim.extra_training.seeds[1] - 1}" if sim.extra_training else ""
        return (f"validation: simulated {sim.kind} seeds {sim.validation_seeds} "
                f"(training seeds 0-{sim.n_train - 1}{extra}), shape {sim.shape}")
    if cfg.data.validation_z is None:
        return "validation: " + ", ".join(cfg.data.validation)
    a, b = cfg.data.validation_z
    return f"validation: sections {a}-{b - 1} (0-based, sorted file order)"


_METRIC_TEXT = {
    "instance_f1": ("Instance F1 counts a predicted object as correct when its IoU with a ground-truth "
                    "object is >= 0.5 after one-to-one Hungarian matching; ground-truth instances are "
                    "the connected components of the annotation. Measured after the package's "
                    "postprocessing recipe."),
    "cremi_score_nm": ("CREMI cleft metrics: ADGT is the mean distance (nm) of predicted cleft voxels "
                       "to the nearest ground-truth one (CREMI's average distance to ground truth: extra "
                       "detections raise it), ADF of ground-truth cleft voxels to the nearest predicted one "
                       "(missed clefts raise it); the CREMI score is their mean (lower is better). False "
                       "positives / negatives count voxels farther than 200 nm. Foreground Dice is voxel-wise."),
    "foreground_iou": ("Foreground IoU (Jaccard) of the thresholded (> 0.5) first channel against the "
                       "annotation, voxel-wise, averaged over the held-out images; Dice alongside. Instance F1 "
                       "(IoU >= 0.5, Hungarian, after the postprocessing recipe) is reported too."),
    "foreground_dice": ("Voxel-wise Dice and IoU of the thresholded (> 0.5) prediction; with several "
                        "channels, per channel (`dice_<channel>`) and their mean (`foreground_dice`)."),
}


def _card_sections(cfg: TrainConfig, res: TrainResult, metrics: Dict[str, float], config_path: Path) -> Dict[str, str]:
    m = "\n".join(f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items())
    data_text = f"{cfg.data.description}\n\nLicence of the data: {cfg.data.licence}."
    if cfg.data.simulation is not None:
        sim = cfg.data.simulation
        data_text = (f"**Trained on simulation only** (`synapse_bmz.simulate`, kind `{sim.kind}`): "
                     f"{sim.n_train} simulated volumes of shape {sim.shape} at {cfg.data.voxel_size_nm} nm "
                     f"(seeds 0-{sim.n_train - 1})" + ExtraTraining.describe(sim.extra_training) +
                     f" with exact labels; targets {sim.targets}. No real "
                     "annotated data was used, so accuracy on real tomograms is lower than the held-out "
                     "simulated figures below.\n\n" + data_text)
    return {
        "Training data": data_text,
        "Validation split": "Held out from training: " + split_description(cfg).split(": ", 1)[1] + ".",
        "Accuracy on the held-out split": _METRIC_TEXT[primary_metric(cfg)] + "\n\n| metric | value |\n|---|---|\n" + m,
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
                      resume: bool = True, progress: bool = True, init_weights: Optional[Path] = None) -> Path:
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
    init_weights : Path, optional
        Warm start from this state dict (`synapse_bmz.training.loop.train`).

    Returns
    -------
    Path
        The package's ``rdf.yaml``.
    """
    import torch

    from ..io.atomic import write_atomic
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
                train_data=train_data, val_data=val_data, init_weights=init_weights)
    metrics = evaluate_slices(res.model, val_data, cfg)
    write_atomic(work_dir / "metrics.json", lambda tmp: tmp.write_text(json.dumps(metrics, indent=2)))

    pp = cfg.package.postprocessing
    pkg_cfg = SynapseBmzConfig(
        task=cfg.package.task, channels=cfg.package.channels, voxel_size_nm=cfg.data.voxel_size_nm,
        halo=cfg.package.halo, postprocessing=pp, test_time_augmentation=cfg.package.test_time_augmentation,
        accuracy={**{k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()},
                  "split": split_description(cfg), "primary_metric": primary_metric(cfg)},
    )
    sample = sample_input(val_data.raw[0], cfg.package.min_shape, cfg.package.step)
    cite = [cfg.data.citation] if cfg.data.citation else []
    info = PackageInfo(
        name=name, description=cfg.package.description, authors=cfg.package.authors,
        license=_spdx(cfg.data.licence), cite=cite + [{"text": "synapse-bmz", "url": "https://bioimage.io"}],
        tags=cfg.package.tags or [cfg.package.task, "unet", "fib-sem", "em"],
        card_sections=_card_sections(cfg, res, metrics, config_path),
    )
    torch.set_num_threads(max(1, torch.get_num_threads()))
    return build_package(res.model, sample, out_dir, info, pkg_cfg, min_shape=cfg.package.min_shape,
                         step=cfg.package.step, train_yaml=cfg.source)


def sample_input(img: np.ndarray, min_shape, step) -> np.ndarray:
    """Centre crop for the package's test tensor, shape (1, 1, [Z,] Y, X).

    Each axis gets the largest valid size (``min + n * step``) up to 256
    (2D) or up to 32 sections and 128 pixels (3D), and at most the image.
    """
    caps = [256, 256] if img.ndim == 2 else [32, 128, 128]
    sizes = []
    for n, cap, lo, st in zip(img.shape, caps, min_shape, step):
        limit = min(n, cap)
        if limit < lo:
            raise ValueError(f"validation data (shape {img.shape}) is smaller than min_shape {list(min_shape)}")
        sizes.append(lo + ((limit - lo) // st) * st if st else lo)
    window = tuple(slice((n - s) // 2, (n - s) // 2 + s) for n, s in zip(img.shape, sizes))
    return img[window][None, None].astype(np.float32)


def _spdx(licence_text: str) -> str:
    """Weights inherit a non-commercial data licence; everything else is MIT."""
    return "CC-BY-NC-SA-3.0" if "CC BY-NC-SA" in licence_text or "CC-BY-NC-SA" in licence_text else "MIT"
