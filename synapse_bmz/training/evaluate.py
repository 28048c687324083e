"""Accuracy of a finished package: on labelled volumes through the real runner, or on its training split."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import numpy as np

from ..errors import InputError
from .targets import label_mask

ArrayOrPath = Union[np.ndarray, str, Path]


def _mask(mask: ArrayOrPath, voxel_size_nm, threshold: float) -> np.ndarray:
    from ..io import read_volume

    from .data import _files, read_slice

    if isinstance(mask, np.ndarray):
        return label_mask(mask, threshold)
    if Path(mask).is_dir():
        # slice by slice: a folder may mix boolean and 8-bit masks (Drosophila stack 1 does)
        return np.stack([label_mask(read_slice(f), threshold) for f in _files(Path(mask))])
    return label_mask(read_volume(mask, voxel_size_nm).to_numpy(), threshold)


def _run_package(package, raw: ArrayOrPath, tmp: Path, *, voxel_size_nm, postprocess: bool, device):
    """``synapse-bmz run`` on ``raw`` (an array is written to ``tmp`` first); outputs under ``tmp/out``."""
    from ..io import write_volume
    from ..runner.run import RunOptions, run

    if isinstance(raw, np.ndarray):
        if voxel_size_nm is None:
            raise InputError("raw", "an in-memory array needs voxel_size_nm")
        path = tmp / "input.npy"
        write_volume(path, raw, voxel_size_nm)
        raw = path
    opts = RunOptions(voxel_size_nm=voxel_size_nm, postprocess=postprocess, progress=False, device=device)
    return run(package, [str(raw)], tmp / "out", opts)[0]


def predict_foreground(package, raw: ArrayOrPath, *, voxel_size_nm: Optional[Sequence[float]] = None,
                       channel: int = 0, threshold: float = 0.5, device: Optional[str] = None,
                       work_dir: Optional[Path] = None) -> np.ndarray:
    """Thresholded channel of a package's prediction, through ``synapse-bmz run``, on the input grid.

    Parameters
    ----------
    package : str, Path or LoadedModel
    raw : ndarray or path
        An array needs ``voxel_size_nm``; a path is read by `synapse_bmz.io.read_volume`.
    channel : int
        Output channel (0 = foreground for all our packages).
    threshold : float
        Probability above which a voxel is foreground.
    work_dir : Path, optional
        Where the runner writes (default: a temporary folder, removed afterwards).

    Returns
    -------
    ndarray of bool, the shape of ``raw``
    """
    import zarr

    from ..runner.resample import labels_to_grid

    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        res = _run_package(package, raw, Path(tmp), voxel_size_nm=voxel_size_nm, postprocess=False, device=device)
        node = zarr.open(store=str(res.prediction), mode="r")
        pred = node["0"] if hasattr(node, "keys") else node
        fg = (np.asarray(pred[channel]) > threshold).astype(np.uint8)
        prov = json.loads((res.output_dir / "provenance.json").read_text())
    factors = [i / m for i, m in zip(prov["input_voxel_size_nm"], prov["model_grid_voxel_size_nm"])]
    return labels_to_grid(fg, prov["input_shape"], factors).astype(bool)


def evaluate_package_dice(package, raw_volume: ArrayOrPath, mask_volume: ArrayOrPath, *,
                          voxel_size_nm: Optional[Sequence[float]] = None, mask_threshold: float = 127,
                          channel: int = 0, device: Optional[str] = None) -> Dict[str, float]:
    """Foreground Dice and IoU of a package on labelled data, predicted through the runner.

    Parameters
    ----------
    package : str, Path or LoadedModel
    raw_volume, mask_volume : ndarray or path, shape ([Z,] Y, X)
        Raw EM and its foreground annotation (boolean, or ``> mask_threshold``).
    voxel_size_nm : sequence of float, optional
        Needed for arrays and for inputs without a voxel size (slice folders).

    Returns
    -------
    dict with ``dice``, ``iou``, ``n_voxels``, ``n_gt_voxels``, ``n_pred_voxels``

    Raises
    ------
    InputError
        When the mask's shape differs from the raw volume's.
    """
    from analysis.evaluation import dice, foreground_iou

    gt = _mask(mask_volume, voxel_size_nm, mask_threshold)
    pred = predict_foreground(package, raw_volume, voxel_size_nm=voxel_size_nm, channel=channel, device=device)
    if gt.shape != pred.shape:
        raise InputError(str(mask_volume), f"`mask_volume` (shape {gt.shape}) must have the shape of "
                                           f"`raw_volume` (shape {pred.shape})")
    return {"dice": dice(gt, pred), "iou": foreground_iou(gt, pred), "n_voxels": int(gt.size),
            "n_gt_voxels": int(gt.sum()), "n_pred_voxels": int(pred.sum())}


def evaluate_on_split(package, train_yaml: Path, *, quick: bool = False, device: str = "cpu") -> Dict[str, float]:
    """Re-measure a package on the held-out split of the ``train.yaml`` that made it.

    The package's network is rebuilt from its state-dict weights (sha256
    checked) and scored with the same function that wrote the card
    (`synapse_bmz.training.pipeline.evaluate_slices`).

    Parameters
    ----------
    quick : bool
        Only the first validation image (2D) or a 256 x 256 centre crop of the
        first validation volume (3D): a smoke test, not comparable to the card.
    """
    from .adapt import load_package_network
    from .config import load_train_config
    from .data import load_simulation, load_split
    from .pipeline import evaluate_slices

    cfg = load_train_config(train_yaml)
    _, val = load_simulation(cfg, training=False) if cfg.data.simulation is not None else load_split(cfg)
    if quick:
        val.raw, val.targets, val.instances, val.names = val.raw[:1], val.targets[:1], val.instances[:1], val.names[:1]
        if cfg.model.ndim == 3:
            z, y, x = val.raw[0].shape
            win = (slice(None), slice(max(0, y // 2 - 128), y // 2 + 128), slice(max(0, x // 2 - 128), x // 2 + 128))
            val.raw, val.instances = [val.raw[0][win]], [val.instances[0][win]]
            val.targets = [val.targets[0][(slice(None),) + win]]
    net = load_package_network(package)
    return evaluate_slices(net.model.to(device), val, cfg, device)


def evaluate_package_instances_per_section(package, raw_volume: ArrayOrPath, mask_volume: ArrayOrPath, *,
                                           voxel_size_nm: Optional[Sequence[float]] = None,
                                           mask_threshold: float = 127, iou_threshold: float = 0.5,
                                           device: Optional[str] = None,
                                           work_dir: Optional[Path] = None) -> Dict[str, float]:
    """Instance F1 of a package's recipe output against 2D annotations, section by section.

    The package runs through ``synapse-bmz run`` with its postprocessing
    recipe (resampled to its voxel size and back); each z-section of the
    labels is matched against the connected components of that section's
    annotation (IoU >= ``iou_threshold``, Hungarian) and the counts are
    pooled. This is how a 3D model is scored against annotations drawn per
    section (EPFL vesicles).

    Parameters
    ----------
    raw_volume, mask_volume : ndarray or path, shape (Z, Y, X)
        Raw EM and its foreground annotation (boolean, or ``> mask_threshold``).

    Returns
    -------
    dict with ``f1``, ``precision``, ``recall``, ``tp``, ``fp``, ``fn``,
    ``n_ground_truth_objects``, ``n_sections``
    """
    import tifffile

    from analysis.evaluation import pooled_instance_scores

    from .targets import instances_from_mask

    gt = _mask(mask_volume, voxel_size_nm, mask_threshold)
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        res = _run_package(package, raw_volume, Path(tmp), voxel_size_nm=voxel_size_nm, postprocess=True, device=device)
        labels = tifffile.imread(res.labels)
    if labels.shape != gt.shape:
        raise InputError(str(mask_volume), f"annotation shape {gt.shape} differs from the prediction's {labels.shape}")
    s = pooled_instance_scores(((instances_from_mask(g), lab) for g, lab in zip(gt, labels)), iou_threshold)
    return {"f1": s["f1"], "precision": s["precision"], "recall": s["recall"], "tp": s["tp"], "fp": s["fp"],
            "fn": s["fn"], "n_ground_truth_objects": s["tp"] + s["fn"], "n_sections": int(gt.shape[0])}
