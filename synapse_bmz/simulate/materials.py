"""Material classes of the synapse phantom and their contrast per modality.

The phantom is a map of material indices; the imaging model turns it into
a density (stain density for room-temperature tomography, projected
potential for cryo-ET) with these tables. Values are relative units chosen
so that membranes and stained densities dominate, as in the real images.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

__all__ = ["Material", "density_table", "texture_table"]


class Material(IntEnum):
    """Material index stored in the phantom's ``materials`` volume."""

    EXTRACELLULAR = 0
    CYTOSOL = 1
    MEMBRANE = 2
    VESICLE_MEMBRANE = 3
    VESICLE_LUMEN = 4
    PSD = 5
    DENSE_CORE = 6
    MITO_MATRIX = 7
    MITO_MEMBRANE = 8
    MICROTUBULE = 9
    FILAMENT = 10
    RIBBON = 11
    PRESYNAPTIC_DENSITY = 12
    DENSE_PROJECTION = 13
    TETHER = 14


_RT = {  # heavy-metal stain density, room-temperature plastic sections
    Material.EXTRACELLULAR: 0.10,
    Material.CYTOSOL: 0.16,
    Material.MEMBRANE: 1.00,
    Material.VESICLE_MEMBRANE: 0.95,
    Material.VESICLE_LUMEN: 0.22,
    Material.PSD: 0.65,
    Material.DENSE_CORE: 0.85,
    Material.MITO_MATRIX: 0.42,
    Material.MITO_MEMBRANE: 0.95,
    Material.MICROTUBULE: 0.60,
    Material.FILAMENT: 0.45,
    Material.RIBBON: 0.90,
    Material.PRESYNAPTIC_DENSITY: 0.80,
    Material.DENSE_PROJECTION: 0.55,
    Material.TETHER: 0.45,
}

_CRYO = {  # projected Coulomb potential relative to vitreous ice
    Material.EXTRACELLULAR: 0.00,
    Material.CYTOSOL: 0.10,
    Material.MEMBRANE: 0.75,
    Material.VESICLE_MEMBRANE: 0.75,
    Material.VESICLE_LUMEN: 0.08,
    Material.PSD: 0.35,
    Material.DENSE_CORE: 0.55,
    Material.MITO_MATRIX: 0.30,
    Material.MITO_MEMBRANE: 0.75,
    Material.MICROTUBULE: 0.55,
    Material.FILAMENT: 0.45,
    Material.RIBBON: 0.60,
    Material.PRESYNAPTIC_DENSITY: 0.50,
    Material.DENSE_PROJECTION: 0.35,
    Material.TETHER: 0.35,
}

_TEXTURE = {  # amplitude of the granular texture (fraction of density units)
    Material.EXTRACELLULAR: 0.05,
    Material.CYTOSOL: 0.10,
    Material.VESICLE_LUMEN: 0.06,
    Material.PSD: 0.25,
    Material.MITO_MATRIX: 0.15,
    Material.DENSE_CORE: 0.10,
    Material.PRESYNAPTIC_DENSITY: 0.15,
    Material.DENSE_PROJECTION: 0.25,
}


def _as_lut(values: dict) -> np.ndarray:
    lut = np.zeros(len(Material), dtype=np.float32)
    for material, value in values.items():
        lut[int(material)] = value
    return lut


def density_table(modality: str) -> np.ndarray:
    """Density per material as a lookup table indexed by :class:`Material`.

    Parameters
    ----------
    modality : {'rt', 'cryo'}
        Room-temperature stained tomography or cryo-ET.

    Returns
    -------
    lut : (n_materials,) ndarray of float32
    """
    if modality == "rt":
        return _as_lut(_RT)
    if modality == "cryo":
        return _as_lut(_CRYO)
    raise ValueError(f"`modality` must be 'rt' or 'cryo', got {modality!r}")


def texture_table() -> np.ndarray:
    """Amplitude of the granular texture per material (lookup table)."""
    return _as_lut(_TEXTURE)
