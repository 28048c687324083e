"""Column layout of the per-vesicle ground-truth table."""

from __future__ import annotations

import pandas as pd

__all__ = ["VESICLE_COLUMNS", "POOLS", "empty_vesicle_table"]

#: Columns of the vesicle table; all positions and lengths are in nm.
VESICLE_COLUMNS = {
    "label": "instance id in ``labels['vesicles']``",
    "center_z_nm": "centre, z (nm from the first voxel centre)",
    "center_y_nm": "centre, y (nm)",
    "center_x_nm": "centre, x (nm)",
    "radius_nm": "outer radius of the vesicle membrane (nm)",
    "pool": "'docked', 'tethered', 'ribbon' or 'distant'",
    "distance_to_az_nm": "distance from the vesicle's outer surface to the active-zone membrane (nm)",
}

#: Vesicle pools: docked 0-2 nm, tethered 2-45 nm from the AZ membrane.
POOLS = ("docked", "tethered", "ribbon", "distant")


def empty_vesicle_table() -> pd.DataFrame:
    """Vesicle table with no rows and the documented columns."""
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in VESICLE_COLUMNS})
