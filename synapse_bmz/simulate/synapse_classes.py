"""Simulated synapses of known morphological classes, for training and scoring clustering.

Each class fixes the parameters the synapse simulator can vary (vesicle
density, vesicle size, cleft width, number of docked vesicles, dense-core
vesicles); everything else (interface curvature, compartments,
mitochondria, noise) stays random per seed, so a class is a morphology, not
an image. Each sample is a room-temperature tomogram (tilt series and
back-projection, `simulate_tomogram`'s imaging) centred on the synapse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, Optional

import numpy as np
import pandas as pd

from .imaging import RT_IMAGING, reconstruct_tilt_series
from .synapse_phantom import SynapsePhantom, _Builder
from .tomogram import render_density
from .vesicle_table import VESICLE_COLUMNS, empty_vesicle_table

__all__ = ["SYNAPSE_CLASSES", "SynapseClass", "ClassSample", "simulate_class_sample", "class_samples"]


@dataclass(frozen=True)
class SynapseClass:
    """Fixed morphology of one class (lengths in nm)."""

    name: str
    vesicle_fraction: float     # fraction of free pre-synaptic cytosol filled with vesicles
    vesicle_radius_nm: float    # mean outer radius (sd 1 nm)
    cleft_width_nm: float
    n_docked: int
    n_dense_core: int


#: The classes `class_samples` draws from, in label order.
SYNAPSE_CLASSES = (
    SynapseClass("sparse_small_vesicles", 0.06, 17.0, 20.0, 1, 0),
    SynapseClass("dense_small_vesicles", 0.40, 17.0, 20.0, 2, 0),
    SynapseClass("dense_large_vesicles", 0.40, 25.0, 20.0, 2, 0),
    SynapseClass("wide_cleft_docked_dense_core", 0.12, 20.0, 40.0, 10, 3),
)


class _ClassBuilder(_Builder):
    """The simulator's builder with the class's vesicle size and dense-core count."""

    def __init__(self, shape, voxel_size_nm, rng, cls: SynapseClass):
        super().__init__(shape, voxel_size_nm, rng, membrane_thickness_nm=5.0, cleft_width_nm=cls.cleft_width_nm)
        self.cls = cls

    def _radius(self):
        return float(np.clip(self.rng.normal(self.cls.vesicle_radius_nm, 1.0), 14.0, 30.0))

    def dense_core_vesicles(self):
        # the parent draws 0-2; one draw per wanted vesicle keeps its placement rules
        total = np.zeros(self.shape, np.uint32)
        for _ in range(self.cls.n_dense_core):
            before = self.materials.copy()
            super().dense_core_vesicles()
            new = (self.dcv > 0) & (total == 0)
            if not new.any():
                self.materials = before
                continue
            total[new] = total.max() + 1
        self.dcv = total


@dataclass
class ClassSample:
    """One simulated synapse of a known class.

    Attributes
    ----------
    raw : (Z, Y, X) ndarray of float32
        Tomogram, zero mean, unit standard deviation.
    labels : dict of str to ndarray
        As `SimulatedSynapse.labels`.
    synapse : pandas.DataFrame
        One row, `analysis.synapse_crops.SYNAPSE_COLUMNS`: centre between
        active zone and PSD, pre point at the vesicle cloud, post point at the PSD.
    class_id : int
    seed : int
    voxel_size_nm : tuple of float
    """

    raw: np.ndarray
    labels: Dict[str, np.ndarray]
    synapse: pd.DataFrame
    class_id: int
    seed: int
    voxel_size_nm: tuple


def _centroid_nm(mask: np.ndarray, vs) -> np.ndarray:
    idx = np.argwhere(mask)
    return idx.mean(axis=0) * np.asarray(vs) if len(idx) else np.full(3, np.nan)


def simulate_class_sample(class_id: int, seed: int, shape=(80, 80, 80), voxel_size_nm=(5.0, 5.0, 5.0)) -> ClassSample:
    """Simulate one synapse of class ``SYNAPSE_CLASSES[class_id]`` (a pure function of its arguments).

    Parameters
    ----------
    class_id : int
        Index into `SYNAPSE_CLASSES`.
    seed : int
        Seed of the only random generator (combined with ``class_id``).
    shape : (3,) tuple of int
        Volume shape (z, y, x).
    voxel_size_nm : (3,) tuple of float

    Returns
    -------
    ClassSample
    """
    if not 0 <= class_id < len(SYNAPSE_CLASSES):
        raise ValueError(f"`class_id` must be in 0..{len(SYNAPSE_CLASSES) - 1}, got {class_id}")
    cls = SYNAPSE_CLASSES[class_id]
    rng = np.random.default_rng([int(seed), int(class_id), 12])
    b = _ClassBuilder(shape, voxel_size_nm, rng, cls)
    b.interface()
    b.compartments()
    b.active_zone_and_psd(rng.uniform(80.0, 140.0))
    b.pd = np.zeros(b.shape, bool)
    b.rib = np.zeros(b.shape, bool)
    b.dense_projections(int(rng.integers(2, 6)))
    b.mitochondria()
    b.dense_core_vesicles()
    b.microtubules()
    b.docked_and_tethered(cls.n_docked, int(rng.integers(2, 6)))
    b.distant(cls.vesicle_fraction)
    b.filaments()
    table = pd.DataFrame(b.vesicle_rows, columns=VESICLE_COLUMNS) if b.vesicle_rows else empty_vesicle_table()
    labels = {"vesicles": b.vesicles, "compartments": b.comp, "mitochondria": b.mito,
              "dense_core_vesicles": b.dcv, "active_zone": b.az, "psd": b.psd, "membrane": b.membrane}
    phantom = SynapsePhantom(b.materials, labels, table, tuple(float(v) for v in voxel_size_nm))
    density = render_density(phantom, "rt", rng)
    raw, _ = reconstruct_tilt_series(density, phantom.voxel_size_nm, RT_IMAGING, rng)
    raw = ((raw - raw.mean()) / (raw.std() + 1e-6)).astype(np.float32)
    vs = phantom.voxel_size_nm
    az, psd = _centroid_nm(b.az, vs), _centroid_nm(b.psd, vs)
    center = (az + psd) / 2 if np.isfinite(az).all() and np.isfinite(psd).all() else (np.asarray(shape) - 1) / 2 * vs
    pre = _centroid_nm(b.vesicles > 0, vs) if (b.vesicles > 0).any() else center - [0, 0, 100.0]
    post = psd if np.isfinite(psd).all() else 2 * center - pre
    row = {"synapse_id": f"class{class_id}_seed{seed}",
           **dict(zip(["center_z_nm", "center_y_nm", "center_x_nm"], center)),
           **dict(zip(["pre_z_nm", "pre_y_nm", "pre_x_nm"], pre)),
           **dict(zip(["post_z_nm", "post_y_nm", "post_x_nm"], post)),
           "class_id": class_id, "class_name": cls.name}
    return ClassSample(raw, labels, pd.DataFrame([row]), class_id, int(seed), vs)


def class_samples(seeds: Iterable[int], classes: Optional[Iterable[int]] = None, **kwargs) -> Iterator[ClassSample]:
    """`simulate_class_sample` for every (seed, class), seeds outermost (classes balanced at any cut)."""
    classes = list(range(len(SYNAPSE_CLASSES)) if classes is None else classes)
    for seed in seeds:
        for c in classes:
            yield simulate_class_sample(c, seed, **kwargs)
