"""HDF5 reading and writing; a dataset is addressed as ``file.h5:key``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np

from synapse_bmz.errors import InputError
from synapse_bmz.io._attrs import voxel_size_from_attrs

DEFAULT_KEY = "data"


def _datasets(f: h5py.File) -> list[str]:
    names: list[str] = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


def read_hdf5(
    path: Path, key: str | None, shown: str
) -> tuple[h5py.Dataset, tuple[float, ...] | None]:
    """Open dataset `key` of an HDF5 file without loading it.

    Parameters
    ----------
    path : Path
        The HDF5 file.
    key : str or None
        Dataset path inside the file. None: the file's only dataset, else
        the dataset ``data`` if present, else InputError listing them.
    shown : str
        The path as the user wrote it, for messages.

    Returns
    -------
    data : (Z, Y, X) or (Y, X) h5py.Dataset
        Supports numpy slicing; the file stays open while it is referenced.
    voxel_size_nm : tuple of float or None
        From the dataset's attributes (``voxel_size_nm``, ``resolution`` in
        nm, ``element_size_um``), else the file's root attributes.
    """
    f = h5py.File(path, "r")
    try:
        if key is None:
            names = _datasets(f)
            if len(names) == 1:
                key = names[0]
            elif DEFAULT_KEY in names:
                key = DEFAULT_KEY
            else:
                raise InputError(
                    shown,
                    f"HDF5 file has {len(names)} datasets {names[:10]}; "
                    f"choose one as {path}:KEY",
                )
        if key not in f or not isinstance(f[key], h5py.Dataset):
            raise InputError(
                shown, f"no dataset {key!r} in the HDF5 file; datasets: {_datasets(f)[:10]}"
            )
        data = f[key]
        if data.ndim not in (2, 3):
            raise InputError(
                shown, f"dataset {key!r} has shape {data.shape}; expected a 2D or 3D array"
            )
        voxel = voxel_size_from_attrs(data.attrs, data.ndim) or voxel_size_from_attrs(
            f.attrs, data.ndim
        )
        return data, voxel
    except BaseException:
        f.close()
        raise


def write_hdf5(
    tmp: Path,
    key: str,
    data: np.ndarray,
    voxel_size_nm: tuple[float, ...],
    metadata: dict | None,
    final: Path,
) -> None:
    """Write dataset `key` into a copy of `final` (or a new file) at `tmp`.

    Other datasets of an existing file are kept: the file is copied to the
    temporary name, the dataset replaced there, and the copy renamed over
    the original by the caller. Attributes: ``voxel_size_nm`` (z, y, x nm),
    ``element_size_um`` (for ilastik / Fiji) and ``synapse_bmz`` (JSON of
    `metadata`).
    """
    if final.is_file():
        shutil.copyfile(final, tmp)
    data = np.asarray(data)
    chunks = tuple(min(s, c) for s, c in zip(data.shape, (32, 256, 256)[-data.ndim :]))
    with h5py.File(tmp, "a") as f:
        if key in f:
            del f[key]
        ds = f.create_dataset(
            key, data=data, chunks=chunks if data.size else None, compression="gzip",
            compression_opts=1,
        )
        ds.attrs["voxel_size_nm"] = np.asarray(voxel_size_nm, dtype=float)
        ds.attrs["element_size_um"] = np.asarray(voxel_size_nm, dtype=float) / 1000.0
        if metadata:
            ds.attrs["synapse_bmz"] = json.dumps(metadata, default=str)
