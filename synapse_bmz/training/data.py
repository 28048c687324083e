"""Training data: image/label slice folders into normalised arrays and random patches."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError
from ..io.slices import read_slice
from ..normalise import zero_mean_unit_variance
from .augment import augment_pair, zoom_window
from .targets import foreground_boundary_targets, instances_from_mask, label_mask, training_targets

IMAGE_SUFFIXES = {".png", ".tif", ".tiff"}


def normalise(img: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over the whole image or volume (as the runner does per volume).

    `synapse_bmz.normalise.zero_mean_unit_variance` with ``eps=0.0``: divides
    by the standard deviation floored at 1e-6, as every shipped package was
    trained.

    Parameters
    ----------
    img : ndarray, shape ([Z,] Y, X), any real dtype

    Returns
    -------
    ndarray of float32, same shape
    """
    return zero_mean_unit_variance(img, eps=0.0)


def _files(folder: Path) -> List[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def label_path(label_dir: Path, raw_file: Path) -> Path:
    """The label image of ``raw_file``: same file name, else same stem with any image suffix
    (``raw/00.tif`` -> ``synapses/00.png``)."""
    exact = label_dir / raw_file.name
    if exact.exists():
        return exact
    for suffix in sorted(IMAGE_SUFFIXES):
        cand = label_dir / (raw_file.stem + suffix)
        if cand.exists():
            return cand
    raise InputError(exact, "label image missing for " + raw_file.name)


@dataclass
class SliceDataset:
    """Normalised 2D images (or 3D sub-volumes) with their targets.

    Attributes
    ----------
    raw : list of ndarray ([Z,] Y, X) float32
    targets : list of ndarray (C, [Z,] Y, X) float32
    instances : list of ndarray ([Z,] Y, X) uint32 (ground-truth instances for evaluation)
    names : list of str
        File name of each 2D image; ``"NN.tif-MM.tif"`` (first and last section) for volumes.
    """

    raw: List[np.ndarray]
    targets: List[np.ndarray]
    instances: List[np.ndarray]
    names: List[str]


def validation_names(cfg, raw_files: Sequence[Path]) -> List[str]:
    """File names of the held-out sections: ``data.validation`` or the ``data.validation_z`` range."""
    if cfg.data.validation_z is None:
        return list(cfg.data.validation)
    start, stop = cfg.data.validation_z
    if stop > len(raw_files):
        raise InputError(cfg.data.raw, f"validation_z {[start, stop]} exceeds the {len(raw_files)} sections")
    return [p.name for p in raw_files[start:stop]]


def load_split(cfg) -> Tuple[SliceDataset, SliceDataset]:
    """Load the training and validation data named by a `TrainConfig`.

    2D models get one entry per slice; 3D models one normalised sub-volume per
    contiguous run of training sections and per run of held-out sections.
    """
    if cfg.data.simulation is not None:
        return load_simulation(cfg)
    raw_files = _files(cfg.data.raw)
    label_dir = cfg.data.labels
    if not raw_files:
        raise InputError(cfg.data.raw, "no images found")
    if cfg.model.ndim == 3:
        return _load_volumes(cfg, raw_files)
    val_names = set(validation_names(cfg, raw_files))
    missing = val_names - {p.name for p in raw_files}
    if missing:
        raise InputError(cfg.data.raw, f"validation images not found: {sorted(missing)}")
    train, val = SliceDataset([], [], [], []), SliceDataset([], [], [], [])
    for f in raw_files:
        lab = read_slice(label_path(label_dir, f))
        inst = lab.astype(np.uint32) if cfg.data.labels_are_instances else instances_from_mask(label_mask(lab, cfg.data.label_threshold))
        tgt = training_targets(inst, cfg.target)
        ds = val if f.name in val_names else train
        ds.raw.append(normalise(read_slice(f)))
        ds.targets.append(tgt)
        ds.instances.append(inst)
        ds.names.append(f.name)
    return train, val


def _runs(indices: Sequence[int]) -> List[List[int]]:
    """Split sorted indices into runs of consecutive values."""
    runs: List[List[int]] = []
    for i in indices:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def _load_volumes(cfg, raw_files: Sequence[Path]) -> Tuple[SliceDataset, SliceDataset]:
    """Stack the slices, cut held-out and training runs, normalise each as one volume."""
    val_names = set(validation_names(cfg, raw_files))
    missing = val_names - {p.name for p in raw_files}
    if missing:
        raise InputError(cfg.data.raw, f"validation images not found: {sorted(missing)}")
    labels = []
    for f in raw_files:
        lab = read_slice(label_path(cfg.data.labels, f))
        # threshold per slice: a folder may mix boolean and 8-bit masks
        labels.append(lab if cfg.data.labels_are_instances else label_mask(lab, cfg.data.label_threshold))
    raw, labels = np.stack([read_slice(f) for f in raw_files]), np.stack(labels)
    vz, vy = cfg.data.voxel_size_nm[0], min(cfg.data.voxel_size_nm[1:])
    in_plane = vz > 2 * vy
    train, val = SliceDataset([], [], [], []), SliceDataset([], [], [], [])
    for held_out in (False, True):
        idx = [i for i, f in enumerate(raw_files) if (f.name in val_names) == held_out]
        for run in _runs(idx):
            sl = slice(run[0], run[-1] + 1)
            lab = labels[sl]
            inst = lab.astype(np.uint32) if cfg.data.labels_are_instances else instances_from_mask(lab, volumetric=True)
            tgt = training_targets(inst, cfg.target, in_plane=in_plane)
            ds = val if held_out else train
            ds.raw.append(normalise(raw[sl]))
            ds.targets.append(tgt)
            ds.instances.append(inst)
            ds.names.append(f"{raw_files[run[0]].name}-{raw_files[run[-1]].name}")
    return train, val


def simulate_volume(cfg, seed: int, extra_params: Optional[dict] = None):
    """One simulated tomogram of ``cfg.data.simulation`` at ``cfg.data.voxel_size_nm``;
    ``extra_params`` (an ``extra_training`` look) go on top of its ``simulator_params``."""
    from ..simulate import simulate_cryo_tomogram, simulate_tomogram

    sim_cfg = cfg.data.simulation
    kwargs = dict(seed=int(seed), voxel_size_nm=tuple(cfg.data.voxel_size_nm),
                  **{**sim_cfg.simulator_params, **(extra_params or {})})
    if sim_cfg.kind == "cryo":
        return simulate_cryo_tomogram(tuple(sim_cfg.shape), **kwargs)
    return simulate_tomogram(tuple(sim_cfg.shape), ribbon=sim_cfg.kind == "ribbon", **kwargs)


def simulation_targets(labels: dict, names: Sequence[str], target: str, in_plane: bool = False) -> np.ndarray:
    """Network targets (C, Z, Y, X) float32 from a simulation's exact labels.

    ``foreground_boundary``: foreground and thick boundary of the one instance
    label in ``names``. ``mask``: one channel per name; ``<label>_boundaries``
    is the thick boundary of an instance label, ``<label>_foreground`` its
    foreground.
    """
    if target != "mask":
        return training_targets(labels[names[0]], target, in_plane=in_plane)
    channels = []
    for name in names:
        if name.endswith("_boundaries") and name[: -len("_boundaries")] in labels:
            inst = labels[name[: -len("_boundaries")]]
            channels.append(foreground_boundary_targets(inst, in_plane=in_plane)[1])
        elif name.endswith("_foreground") and name[: -len("_foreground")] in labels:
            channels.append(labels[name[: -len("_foreground")]] > 0)
        elif name in labels:
            channels.append(labels[name] > 0)
        else:
            raise InputError(name, f"not a label of the simulation; known: {sorted(labels)}")
    return np.stack(channels).astype(np.float32)


def load_simulation(cfg, *, training: bool = True) -> Tuple[SliceDataset, SliceDataset]:
    """Training seeds ``0..n_train-1`` (then the ``extra_training`` seeds in their look) and the
    held-out ``validation_seeds`` as volumes.

    ``instances`` of each entry is the label named by ``simulation.instances``
    (else the target label for foreground_boundary, else the first target
    mask) for scoring. ``training=False`` leaves the training set empty
    (re-scoring a package needs only the held-out seeds).
    """
    sim_cfg = cfg.data.simulation
    train, val = SliceDataset([], [], [], []), SliceDataset([], [], [], [])
    score_label = sim_cfg.instances or sim_cfg.targets[0]
    extra = sim_cfg.extra_training
    looks = [(train, range(sim_cfg.n_train), None)] if training else []
    if training and extra is not None:
        looks.append((train, range(*extra.seeds), extra.simulator_params))
    for ds, seeds, extra_params in looks + [(val, sim_cfg.validation_seeds, None)]:
        for seed in seeds:
            sim = simulate_volume(cfg, seed, extra_params)
            ds.raw.append(normalise(sim.raw))
            ds.targets.append(simulation_targets(sim.labels, sim_cfg.targets, cfg.target))
            inst = sim.labels.get(score_label)
            if inst is None:
                inst = ds.targets[-1][0] > 0.5
            ds.instances.append(np.asarray(inst).astype(np.uint32))
            ds.names.append(f"{sim_cfg.kind} seed {seed}")
    return train, val


def sample_batch(ds: SliceDataset, patch: Sequence[int], batch_size: int,
                 rng: np.random.Generator, reject_empty_probability: float,
                 degrade_probability: float = 0.0, zoom_probability: float = 0.0,
                 zoom_range: Sequence[float] = (0.6, 3.0)):
    """Random augmented patches; patches without foreground are rejected with the given probability.

    With ``zoom_probability`` a patch is a window of another size resampled
    to ``patch`` (`augment.zoom_window`); at 0 no random number is drawn for
    it, so the patch stream is that of a config without zoom.

    Parameters
    ----------
    ds : SliceDataset
        2D slices or 3D volumes; only entries at least as large as ``patch`` are drawn.
    patch : sequence of int
        Patch size per spatial axis, ([Z,] Y, X).

    Returns
    -------
    x : ndarray (B, 1, [Z,] Y, X) float32
    y : ndarray (B, C, [Z,] Y, X) float32
    """
    xs, ys = [], []
    patch = [int(p) for p in patch]
    eligible = [i for i, a in enumerate(ds.raw) if all(s >= p for s, p in zip(a.shape, patch))]
    if not eligible:
        raise InputError(", ".join(ds.names[:3]), f"no training image or volume is as large as the patch {patch}")
    while len(xs) < batch_size:
        i = eligible[int(rng.integers(len(eligible)))]
        img, tgt = ds.raw[i], ds.targets[i]
        if zoom_probability and rng.random() < zoom_probability:
            r, t = zoom_window(img, tgt, patch, rng, zoom_range)
        else:
            corner = [int(rng.integers(s - p + 1)) for s, p in zip(img.shape, patch)]
            window = tuple(slice(c, c + p) for c, p in zip(corner, patch))
            r, t = img[window], tgt[(slice(None),) + window]
        if not t[0].any() and rng.random() < reject_empty_probability:
            continue
        r, t = augment_pair(r, t, rng, degrade_probability)
        xs.append(r[None])
        ys.append(t)
    return np.stack(xs), np.stack(ys)
