"""Write a simulation to disk: ImageJ tifs with voxel size, tables as csv."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile

from ..io.atomic import write_atomic

__all__ = ["write_simulation"]


def _write_tif(path: Path, array: np.ndarray, voxel_size_nm: tuple) -> None:
    vz, vy, vx = voxel_size_nm
    if array.dtype == bool:
        array = array.astype(np.uint8)
    write_atomic(path, lambda tmp: tifffile.imwrite(
        tmp, array, imagej=True, resolution=(1.0 / vx, 1.0 / vy),
        metadata={"spacing": vz, "unit": "nm", "axes": "ZYX"},
    ))


def write_simulation(sim, out_dir: str | os.PathLike) -> list[Path]:
    """Write raw data, every label volume and the tables of a simulation.

    Files: ``raw.tif`` (float32), ``<label>.tif`` per entry of
    ``sim.labels`` (masks as uint8 0/1; instance ids as uint16, or float32
    beyond 65535 ids, because ImageJ tifs have no uint32), ``vesicles.csv`` and, for ssTEM neuropil, ``partners.csv``. Every
    tif is an ImageJ hyperstack whose resolution and ``spacing`` give the
    voxel size in nm. Each file is written under a temporary name and then
    renamed (`synapse_bmz.io.atomic`), so a crash never leaves a truncated file behind.

    Parameters
    ----------
    sim : SimulatedSynapse or SimulatedNeuropil
    out_dir : str or os.PathLike
        Created if missing.

    Returns
    -------
    paths : list of pathlib.Path
        Written files.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    arrays = {"raw": sim.raw, **sim.labels}
    for name, array in arrays.items():
        if array.dtype.kind == "u" and array.dtype.itemsize > 2 and array.max(initial=0) < 2**16:
            array = array.astype(np.uint16)  # ImageJ has no uint32
        elif array.dtype.kind == "u" and array.dtype.itemsize > 2:
            array = array.astype(np.float32)
        path = out / f"{name}.tif"
        _write_tif(path, array, sim.voxel_size_nm)
        written.append(path)
    for table_name in ("vesicles", "partners"):
        table = getattr(sim, table_name, None)
        if table is not None:
            path = out / f"{table_name}.csv"
            write_atomic(path, lambda tmp, t=table: t.to_csv(tmp, index=False))
            written.append(path)
    return written
