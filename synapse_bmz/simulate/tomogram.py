"""Simulated electron tomograms of synapses (room temperature and cryo)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from postprocessing._units import check_voxel_size

from .imaging import CRYO_IMAGING, RT_IMAGING, ImagingParams, reconstruct_tilt_series
from .materials import Material, density_table, texture_table
from .shapes import smooth_noise
from .synapse_phantom import SynapsePhantom, build_synapse_phantom

__all__ = ["SimulatedSynapse", "simulate_tomogram", "simulate_cryo_tomogram", "render_density", "FIBSEM_LIKE",
           "fibsem_image"]

#: Opt-in ``fibsem=`` settings of :func:`simulate_tomogram` that move a volume toward
#: 5 nm FIB-SEM of stained neuropil (EPFL hippocampus): vesicles filled with
#: stain (dark blobs instead of hollow rings), resolution of ~10 nm, broad
#: staining differences between processes, grain at the 5 nm pixel and, for
#: half the volumes, sections stacked out of order (the annotated EPFL
#: sections are mostly not consecutive). Ranges ``(low, high)`` are drawn once
#: per volume. Chosen by eye against EPFL sections training0001, 0013 and 0042 (not
#: training0161-0164), with no package figure involved.
FIBSEM_LIKE = {
    "lumen_density": (0.4, 0.9),
    "blur_nm": (3.0, 6.0),
    "stain_sd": (0.05, 0.3),
    "stain_field_sd": (0.0, 0.1),
    "noise_sd": (0.15, 0.5),
    "grain_nm": 5.0,
    "section_nm": 5.0,
    "shuffle_probability": 0.5,
}


@dataclass
class SimulatedSynapse:
    """A simulated synapse tomogram with exact ground truth.

    Attributes
    ----------
    raw : (Z, Y, X) ndarray of float32
        Reconstructed tomogram, zero mean, unit standard deviation.
    labels : dict of str to (Z, Y, X) ndarray
        ``'vesicles'``, ``'compartments'`` (1 pre-, 2 post-synaptic, >= 3
        neighbouring processes), ``'mitochondria'``,
        ``'dense_core_vesicles'`` : uint32 instance ids (0 = background);
        ``'active_zone'``, ``'psd'``, ``'membrane'``, ``'ribbon'``,
        ``'presynaptic_density'``, ``'microtubules'`` : bool masks.
    vesicles : pandas.DataFrame
        One row per synaptic vesicle: ``label, center_z_nm, center_y_nm,
        center_x_nm, radius_nm, pool, distance_to_az_nm``.
    voxel_size_nm : tuple of float
        (z, y, x) voxel size in nm.
    modality : str
        ``'rt'`` or ``'cryo'``.
    tilt_angles_deg : ndarray
        Tilt angles of the simulated acquisition (tilt axis y).
    density : (Z, Y, X) ndarray of float32
        Noise-free density before imaging (for checks and figures).
    params : dict
        All generation parameters (seed, shape, imaging settings).
    """

    raw: np.ndarray
    labels: dict
    vesicles: pd.DataFrame
    voxel_size_nm: tuple
    modality: str
    tilt_angles_deg: np.ndarray
    density: np.ndarray
    params: dict = field(default_factory=dict)


def render_density(phantom: SynapsePhantom, modality: str, rng: np.random.Generator,
                   lumen_density: float | None = None) -> np.ndarray:
    """Map the phantom's materials to density with a granular texture.

    Parameters
    ----------
    phantom : SynapsePhantom
    modality : {'rt', 'cryo'}
    rng : numpy.random.Generator
    lumen_density : float, optional
        Density of the vesicle lumen instead of the modality's default
        (RT: 0.22, a light lumen inside a dark ring; values near the
        membrane's 0.95 give the filled dark vesicles of FIB-SEM, whose
        stain fills the lumen).

    Returns
    -------
    density : (Z, Y, X) ndarray of float32
    """
    lut = density_table(modality)
    if lumen_density is not None:
        lut = lut.copy()
        lut[int(Material.VESICLE_LUMEN)] = float(lumen_density)
    texture = smooth_noise(phantom.materials.shape, 1.0, rng)
    return lut[phantom.materials] + texture * texture_table()[phantom.materials]


def _draw(value, rng: np.random.Generator) -> float:
    """A float, or one uniform draw from a ``(low, high)`` range."""
    if np.ndim(value) == 1:
        return float(rng.uniform(*value))
    return float(value)


def fibsem_image(phantom: SynapsePhantom, density: np.ndarray, seed: int, settings: dict) -> tuple[np.ndarray, dict]:
    """Image a rendered density as stained FIB-SEM block-face (no tilt series).

    Dense stain is dark. Every cytosolic process gets its own stain offset
    (normal, ``stain_sd``) plus a smooth field (``stain_field_sd``), the
    density is blurred (Gaussian sigma ``blur_nm``, all axes), grain of
    ``grain_nm`` correlation and relative strength ``noise_sd`` is added, and
    with probability ``shuffle_probability`` the volume is cut into sections
    of ``section_nm`` that are restacked in random order (runs of 1-4
    consecutive sections), labels alike. Random numbers come from
    ``numpy.random.default_rng([seed, 5])``, never from the phantom's stream.

    Returns
    -------
    raw : (Z, Y, X) float32, zero mean and unit standard deviation
    drawn : dict
        The values drawn for this volume; ``section_order`` (plane index
        per output plane) when the sections were restacked.
    """
    from scipy import ndimage

    cfg = {**FIBSEM_LIKE, **settings}
    unknown = set(settings) - set(FIBSEM_LIKE)
    if unknown:
        # ('seeds' was an earlier way to mix looks: a training config's `extra_training` is now)
        raise ValueError(f"unknown `fibsem` settings {sorted(unknown)}; known: {sorted(FIBSEM_LIKE)}")
    rng = np.random.default_rng([int(seed), 5])
    vs = np.asarray(phantom.voxel_size_nm, float)
    drawn = {k: _draw(cfg[k], rng) for k in ("blur_nm", "stain_sd", "stain_field_sd", "noise_sd")}
    dens = density.astype(np.float32, copy=True)
    comp = phantom.labels["compartments"]
    cytosol = phantom.materials == int(Material.CYTOSOL)
    offsets = rng.normal(0.0, drawn["stain_sd"], int(comp.max()) + 1).astype(np.float32)
    dens[cytosol] += offsets[comp[cytosol]]
    if drawn["stain_field_sd"] > 0:
        dens += drawn["stain_field_sd"] * smooth_noise(dens.shape, tuple(60.0 / vs), rng)
    dens = ndimage.gaussian_filter(dens, tuple(drawn["blur_nm"] / vs))
    dens -= dens.mean()
    dens /= max(float(dens.std()), 1e-12)
    grain = smooth_noise(dens.shape, tuple(0.5 * float(cfg["grain_nm"]) / vs), rng)
    raw = -(dens + drawn["noise_sd"] * grain)
    if rng.random() < float(cfg["shuffle_probability"]):
        order = _restacked_planes(dens.shape[0], float(cfg["section_nm"]) / vs[0], rng)
        drawn["section_order"] = order.tolist()
    raw -= raw.mean()
    raw /= max(float(raw.std()), 1e-12)
    return raw.astype(np.float32), drawn


def _restacked_planes(n_z: int, section_px: float, rng: np.random.Generator) -> np.ndarray:
    """Plane order of a volume cut into sections of ``section_px`` planes, restacked in runs of 1-4."""
    edges = np.unique(np.round(np.arange(0.0, n_z + section_px, section_px)).astype(int).clip(0, n_z))
    sections = [np.arange(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]
    runs, i = [], 0
    while i < len(sections):
        k = int(rng.integers(1, 5))
        runs.append(np.concatenate(sections[i:i + k]))
        i += k
    return np.concatenate([runs[j] for j in rng.permutation(len(runs))])


def _simulate(shape, voxel_size_nm, seed, ribbon, imaging: ImagingParams, phantom_kwargs) -> SimulatedSynapse:
    if len(shape) != 3:
        raise ValueError(f"`shape` {shape} must have 3 entries (z, y, x)")
    check_voxel_size(voxel_size_nm, 3)  # finite, > 0 nm, (z, y, x); ValueError otherwise
    rng = np.random.default_rng(seed)
    fibsem = phantom_kwargs.pop("fibsem", None)
    fibsem = dict(fibsem) if fibsem is not None else None
    if fibsem is not None and "lumen_density" not in phantom_kwargs:
        phantom_kwargs["lumen_density"] = fibsem.get("lumen_density", FIBSEM_LIKE["lumen_density"])
    lumen = phantom_kwargs.pop("lumen_density", None)
    phantom = build_synapse_phantom(shape, voxel_size_nm, rng, ribbon=ribbon, **phantom_kwargs)
    if lumen is not None and np.ndim(lumen) == 1:
        # a (low, high) range: one value per tomogram, drawn after the phantom so
        # the phantom of a seed does not depend on this option
        lumen = float(rng.uniform(*lumen))
    if lumen is not None:
        phantom_kwargs["lumen_density"] = lumen
    density = render_density(phantom, imaging.modality, rng, lumen_density=lumen)
    if fibsem is None:
        raw, angles = reconstruct_tilt_series(density, phantom.voxel_size_nm, imaging, rng)
        labels, modality = phantom.labels, imaging.modality
    else:
        if imaging.modality != "rt":
            raise ValueError("`fibsem` needs the room-temperature (stained) simulator")
        raw, drawn = fibsem_image(phantom, density, seed, fibsem)
        angles, modality, labels = np.zeros(0), "fibsem", phantom.labels
        if "section_order" in drawn:
            order = np.asarray(drawn["section_order"])
            raw, density = raw[order], density[order]
            labels = {k: v[order] for k, v in labels.items()}
        phantom_kwargs["fibsem"] = {**{k: v for k, v in fibsem.items() if k != "lumen_density"}, **drawn}
    params = dict(shape=tuple(shape), voxel_size_nm=phantom.voxel_size_nm, seed=seed, ribbon=ribbon,
                  imaging=imaging.__dict__.copy(), **phantom_kwargs)
    return SimulatedSynapse(raw, labels, phantom.vesicles, phantom.voxel_size_nm,
                            modality, angles, density, params)


def simulate_tomogram(
    shape: tuple = (64, 256, 256),
    voxel_size_nm: tuple = (1.5, 1.5, 1.5),
    seed: int = 0,
    *,
    ribbon: bool = False,
    imaging: ImagingParams | None = None,
    **phantom_kwargs,
) -> SimulatedSynapse:
    """Room-temperature electron tomogram of a synapse with exact labels.

    A pre-synaptic bouton with synaptic vesicles (35-50 nm outer diameter;
    docked, tethered and distant pools), dense-core vesicles, mitochondria
    with cristae and microtubules faces a post-synaptic spine with a
    post-synaptic density across a ~20 nm cleft. The noise-free model is
    imaged as a stained plastic section: tilt series -60..+60 degrees in
    2 degree steps about y, Beer-Lambert absorption, blur, Poisson and
    read noise, and filtered back-projection, so the missing wedge and its
    z-elongation are real.

    Parameters
    ----------
    shape : (Z, Y, X) tuple of int
        Volume shape; Z is the beam direction (section thickness).
    voxel_size_nm : (z, y, x) tuple of float
        Voxel size in nm (1.5 nm is typical of binned RT tomograms).
    seed : int
        Seed of the only random generator used (same seed, same arrays).
    ribbon : bool
        Ribbon-synapse variant: a ribbon anchored by a pre-synaptic
        density, with ribbon-attached vesicles (pool ``'ribbon'``).
    imaging : ImagingParams, optional
        Acquisition settings; :data:`~synapse_bmz.simulate.imaging.RT_IMAGING`
        by default.
    **phantom_kwargs
        Passed to :func:`~synapse_bmz.simulate.synapse_phantom.build_synapse_phantom`
        (``cleft_width_nm``, ``membrane_thickness_nm``, ``n_docked``, ...),
        except ``lumen_density`` (float, or a ``(low, high)`` range drawn once
        per seed), which sets the vesicle-lumen stain (see `render_density`),
        and ``fibsem`` (dict, keys of :data:`FIBSEM_LIKE`, missing ones take
        its values; ``{}`` is FIBSEM_LIKE), which images the phantom as
        stained FIB-SEM instead of a tomogram (`fibsem_image`: filled
        vesicles, ~10 nm resolution, staining differences, restacked
        sections; ``modality`` ``'fibsem'``, no tilt angles). A training
        config mixes both looks with ``data.simulation.extra_training``
        (`synapse_bmz.training.config.ExtraTraining`). When the
        sections were restacked, the labels are too (``params['fibsem']
        ['section_order']``) while ``vesicles`` keeps the phantom's
        coordinates.

    Returns
    -------
    SimulatedSynapse

    Examples
    --------
    >>> sim = simulate_tomogram((32, 96, 96), seed=1)
    >>> sim.raw.shape, sim.raw.dtype.name
    ((32, 96, 96), 'float32')
    >>> int(sim.labels['vesicles'].max()) == len(sim.vesicles)
    True
    """
    return _simulate(shape, voxel_size_nm, seed, ribbon, imaging or RT_IMAGING, phantom_kwargs)


def simulate_cryo_tomogram(
    shape: tuple = (48, 256, 256),
    voxel_size_nm: tuple = (1.2, 1.2, 1.2),
    seed: int = 0,
    *,
    ribbon: bool = False,
    imaging: ImagingParams | None = None,
    **phantom_kwargs,
) -> SimulatedSynapse:
    """Cryo-electron tomogram of a synapse (vitrified, unstained lamella).

    Same phantom as :func:`simulate_tomogram`, imaged as a weak phase
    object: contrast from the defocus CTF (4 um under-focus, 300 kV), low
    dose (100 e per pixel per tilt), -60..+60 degrees in 3 degree steps, a
    thinner sample (48 sections by default) and a smaller pixel (1.2 nm).
    Density is bright (inverted contrast relative to RT).

    Parameters
    ----------
    shape, voxel_size_nm, seed, ribbon, **phantom_kwargs
        As in :func:`simulate_tomogram`.
    imaging : ImagingParams, optional
        :data:`~synapse_bmz.simulate.imaging.CRYO_IMAGING` by default; its
        ``modality`` must be ``'cryo'``.

    Returns
    -------
    SimulatedSynapse
    """
    imaging = imaging or CRYO_IMAGING
    if imaging.modality != "cryo":
        imaging = replace(imaging, modality="cryo")
    return _simulate(shape, voxel_size_nm, seed, ribbon, imaging, phantom_kwargs)
