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

__all__ = ["SimulatedSynapse", "simulate_tomogram", "simulate_cryo_tomogram", "render_density"]


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


def _simulate(shape, voxel_size_nm, seed, ribbon, imaging: ImagingParams, phantom_kwargs) -> SimulatedSynapse:
    if len(shape) != 3:
        raise ValueError(f"`shape` {shape} must have 3 entries (z, y, x)")
    check_voxel_size(voxel_size_nm, 3)  # finite, > 0 nm, (z, y, x); ValueError otherwise
    rng = np.random.default_rng(seed)
    lumen = phantom_kwargs.pop("lumen_density", None)
    phantom = build_synapse_phantom(shape, voxel_size_nm, rng, ribbon=ribbon, **phantom_kwargs)
    if lumen is not None and np.ndim(lumen) == 1:
        # a (low, high) range: one value per tomogram, drawn after the phantom so
        # the phantom of a seed does not depend on this option
        lumen = float(rng.uniform(*lumen))
    if lumen is not None:
        phantom_kwargs["lumen_density"] = lumen
    density = render_density(phantom, imaging.modality, rng, lumen_density=lumen)
    raw, angles = reconstruct_tilt_series(density, phantom.voxel_size_nm, imaging, rng)
    params = dict(shape=tuple(shape), voxel_size_nm=phantom.voxel_size_nm, seed=seed, ribbon=ribbon,
                  imaging=imaging.__dict__.copy(), **phantom_kwargs)
    return SimulatedSynapse(raw, phantom.labels, phantom.vesicles, phantom.voxel_size_nm,
                            imaging.modality, angles, density, params)


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
        per seed), which sets the vesicle-lumen stain (see `render_density`).

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
