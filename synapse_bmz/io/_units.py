"""Length units and voxel-size checks shared by the format readers.

Every reader converts to nanometres here, once, at the IO edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from postprocessing._units import check_voxel_size
from synapse_bmz.errors import InputError

#: Nanometres per unit, keyed by lower-case unit names and symbols as they
#: appear in OME-XML, OME-Zarr (NGFF), ImageJ and HDF5 attributes.
NM_PER_UNIT: dict[str, float] = {
    "pm": 1e-3,
    "picometer": 1e-3,
    "å": 0.1,
    "\u212b": 0.1,  # ANGSTROM SIGN
    "angstrom": 0.1,
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometre": 1.0,
    "µm": 1e3,  # MICRO SIGN
    "\u03bcm": 1e3,  # GREEK SMALL LETTER MU
    "um": 1e3,
    "micron": 1e3,
    "microns": 1e3,
    "micrometer": 1e3,
    "micrometre": 1e3,
    "\\u00b5m": 1e3,  # ImageJ writes the escape literally
    "mm": 1e6,
    "millimeter": 1e6,
    "cm": 1e7,
    "centimeter": 1e7,
    "m": 1e9,
    "meter": 1e9,
}

MISSING_HINT = "pass the voxel size with --voxel-size Z Y X (nm) or voxel_size_nm=..."


def nm_per_unit(unit: object) -> float | None:
    """Return nanometres per `unit`, or None for a missing/unknown/pixel unit."""
    if not isinstance(unit, str):
        if isinstance(unit, bytes):
            unit = unit.decode("utf-8", "replace")
        else:
            return None
    return NM_PER_UNIT.get(unit.strip().lower())


def is_valid_size(values: Sequence[float] | None, ndim: int) -> bool:
    """True if `values` holds `ndim` finite, positive numbers (nm, array axis order).

    `postprocessing._units.check_voxel_size` as a predicate, for readers that
    try several metadata conventions in turn.
    """
    if values is None:
        return False
    try:
        check_voxel_size(values, ndim)
    except ValueError:
        return False
    return True


def checked_voxel_size(
    path: str | Path,
    voxel_size_nm: Sequence[float] | None,
    ndim: int,
    *,
    source: str,
) -> tuple[float, ...]:
    """Validate a voxel size for an `ndim`-dimensional volume, at the IO edge.

    `postprocessing._units.check_voxel_size` (finite, > 0, one size per axis
    in ``(z, y, x)`` order, nm) with its ``ValueError`` turned into an
    `InputError` naming the file and where the values came from.

    Parameters
    ----------
    path : str or Path
        The input, for the error message.
    voxel_size_nm : sequence of float or None
        Candidate size per axis in nm, in array axis order.
    ndim : int
        Number of spatial axes of the volume (2 or 3).
    source : str
        Where the values came from ("the caller", "the MRC header", ...).

    Returns
    -------
    tuple of float
        The voxel size, one value per axis, in nm.

    Raises
    ------
    InputError
        If the values are missing, of the wrong length, or not positive.
    """
    if voxel_size_nm is None:
        raise InputError(path, f"no voxel size in the file; {MISSING_HINT}")
    try:
        return check_voxel_size(voxel_size_nm, ndim)
    except ValueError as error:
        raise InputError(path, f"voxel size from {source}: {error}") from None
