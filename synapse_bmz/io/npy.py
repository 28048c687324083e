"""``.npy`` arrays with a JSON sidecar for the voxel size.

The sidecar is ``NAME.npy.json`` beside ``NAME.npy`` (the full file name
plus ``.json``, so it cannot clash with other files named NAME):
``{"voxel_size_nm": [z, y, x], "axes": "zyx", "synapse_bmz": {...}}``.
Without a sidecar the voxel size is missing. Arrays are memory-mapped.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from synapse_bmz.errors import InputError
from synapse_bmz.io._units import is_valid_size


def sidecar_path(path: Path) -> Path:
    """``NAME.npy`` -> ``NAME.npy.json``."""
    return path.with_name(path.name + ".json")


def read_npy(path: Path) -> tuple[np.ndarray, tuple[float, ...] | None]:
    """Memory-map `path`; voxel size from the sidecar if present.

    Returns
    -------
    data : (Z, Y, X) or (Y, X) numpy.memmap
    voxel_size_nm : tuple of float or None
    """
    data = np.load(path, mmap_mode="r", allow_pickle=False)
    if data.ndim not in (2, 3):
        raise InputError(path, f"array has shape {data.shape}; expected 2D or 3D")
    side = sidecar_path(path)
    if not side.is_file():
        return data, None
    try:
        meta = json.loads(side.read_text())
        voxel = tuple(float(v) for v in meta["voxel_size_nm"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(side, f"cannot read voxel size sidecar: {error}") from error
    return data, (voxel if is_valid_size(voxel, data.ndim) else None)


def write_npy(tmp: Path, data: np.ndarray) -> None:
    """Write `data` as .npy to `tmp` (no extension is appended)."""
    with open(tmp, "wb") as f:
        np.save(f, np.asarray(data), allow_pickle=False)


def write_sidecar(tmp: Path, voxel_size_nm: tuple[float, ...], ndim: int, metadata: dict | None) -> None:
    """Write the JSON sidecar to `tmp`."""
    meta = {"voxel_size_nm": list(voxel_size_nm), "axes": "zyx"[-ndim:]}
    if metadata:
        meta["synapse_bmz"] = metadata
    tmp.write_text(json.dumps(meta, indent=1, default=str))
