"""Training data: image/label slice folders into normalised arrays and random patches."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np

from ..errors import InputError
from .augment import augment_pair
from .targets import foreground_boundary_targets, instances_from_mask

IMAGE_SUFFIXES = {".png", ".tif", ".tiff"}


def read_slice(path: Path) -> np.ndarray:
    """Read one 2D image; grey+alpha or RGB(A) images give their first channel."""
    import imageio.v3 as iio

    try:
        img = iio.imread(path)
    except Exception as e:  # imageio raises many types for corrupt files
        raise InputError(path, f"cannot read image: {e}") from None
    if img.ndim == 3 and img.shape[-1] <= 4:
        img = img[..., 0]
    if img.ndim != 2:
        raise InputError(path, f"expected a 2D image, got shape {img.shape}")
    return img


def normalise(img: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over the whole image (as the runner does per volume)."""
    img = img.astype(np.float32)
    return (img - img.mean()) / max(float(img.std()), 1e-6)


def _files(folder: Path) -> List[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


@dataclass
class SliceDataset:
    """Normalised 2D images with their targets.

    Attributes
    ----------
    raw : list of ndarray (Y, X) float32
    targets : list of ndarray (C, Y, X) float32
    instances : list of ndarray (Y, X) uint32 (ground-truth instances for evaluation)
    names : list of str
    """

    raw: List[np.ndarray]
    targets: List[np.ndarray]
    instances: List[np.ndarray]
    names: List[str]


def load_split(cfg) -> Tuple[SliceDataset, SliceDataset]:
    """Load the training and validation slices named by a `TrainConfig`."""
    raw_files = _files(cfg.data.raw)
    label_dir = cfg.data.labels
    if not raw_files:
        raise InputError(cfg.data.raw, "no images found")
    val_names = set(cfg.data.validation)
    missing = val_names - {p.name for p in raw_files}
    if missing:
        raise InputError(cfg.data.raw, f"validation images not found: {sorted(missing)}")
    train, val = SliceDataset([], [], [], []), SliceDataset([], [], [], [])
    for f in raw_files:
        lab_path = label_dir / f.name
        if not lab_path.exists():
            raise InputError(lab_path, "label image missing for " + f.name)
        lab = read_slice(lab_path)
        inst = lab.astype(np.uint32) if cfg.data.labels_are_instances else instances_from_mask(lab > cfg.data.label_threshold)
        tgt = foreground_boundary_targets(inst) if cfg.target == "foreground_boundary" else (inst > 0)[None].astype(np.float32)
        ds = val if f.name in val_names else train
        ds.raw.append(normalise(read_slice(f)))
        ds.targets.append(tgt)
        ds.instances.append(inst)
        ds.names.append(f.name)
    return train, val


def sample_batch(ds: SliceDataset, patch: Sequence[int], batch_size: int,
                 rng: np.random.Generator, reject_empty_probability: float):
    """Random augmented patches; patches without foreground are rejected with the given probability.

    Returns
    -------
    x : ndarray (B, 1, Y, X) float32
    y : ndarray (B, C, Y, X) float32
    """
    xs, ys = [], []
    py, px = patch
    while len(xs) < batch_size:
        i = int(rng.integers(len(ds.raw)))
        img, tgt = ds.raw[i], ds.targets[i]
        y0 = int(rng.integers(img.shape[0] - py + 1))
        x0 = int(rng.integers(img.shape[1] - px + 1))
        t = tgt[:, y0:y0 + py, x0:x0 + px]
        if not t[0].any() and rng.random() < reject_empty_probability:
            continue
        r, t = augment_pair(img[y0:y0 + py, x0:x0 + px], t, rng)
        xs.append(r[None])
        ys.append(t)
    return np.stack(xs), np.stack(ys)
