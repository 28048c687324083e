"""napari reader: every format `synapse_bmz.io` reads, with the voxel size (nm) as layer scale.

MRC/REC (voxel size from the header, Angstrom -> nm), TIFF/OME-TIFF,
HDF5 (napari opens files, so every 2D/3D dataset of the file becomes a
layer named ``file.h5:key`` and the user keeps the ones wanted; from Python,
``read_layers("file.h5:key")`` reads one), zarr and
OME-Zarr, npy. A prediction store written by ``synapse-bmz run``
(``prediction.ome.zarr``, channel-first) opens as one image layer per
channel that the Postprocessing widget can re-segment without predicting.

Integer volumes of 32 bits or more (and bool masks) open as labels; 8/16-bit
and float volumes as images (EM raw data). The data stay lazy (dask) above
`IN_MEMORY_BYTES`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, List, Optional, Union

import numpy as np

from ..errors import SynapseBmzError
from ._layers import META

PathLike = Union[str, List[str]]
#: Volumes up to this size are read into memory (fast slicing in napari); larger ones via dask.
IN_MEMORY_BYTES = 1 << 29


def get_reader(path: PathLike) -> Optional[Callable]:
    """npe2 reader hook: a reader function if ``path`` is a volume `synapse_bmz.io` reads, else None."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    from ..io.inputs import locate

    try:
        fmt, file, _ = locate(str(path))
    except SynapseBmzError:
        return None
    if fmt == "folder" or not file.exists():
        return None
    return read_layers


def _lazy(data):
    if isinstance(data, np.ndarray) and not isinstance(data, np.memmap):
        return data
    nbytes = int(np.prod(data.shape)) * np.dtype(data.dtype).itemsize
    if nbytes <= IN_MEMORY_BYTES:
        return np.asarray(data[...])
    import dask.array as da

    return da.from_array(data, chunks=getattr(data, "chunks", None) or "auto")


def is_label_volume(dtype) -> bool:
    """True for dtypes that hold labels: bool, or integers of 32 bits and more."""
    dtype = np.dtype(dtype)
    return dtype == bool or (dtype.kind in "iu" and dtype.itemsize >= 4)


def layer_name(path: str) -> str:
    """``vesicles`` for ``out/vesicles.tif``, ``raw.h5:em`` for ``raw.h5:em``."""
    head, sep, key = str(path).partition(".h5:")
    if sep:
        return f"{Path(head).name}.h5:{key}"
    name = Path(str(path).rstrip("/")).name
    for suffix in (".ome.zarr", ".ome.tif", ".ome.tiff"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name.rsplit(".", 1)[0] if "." in name else name


def volume_layer(path: str) -> tuple:
    """One layer-data tuple ``(data, kwargs, "image" | "labels")`` of a volume `read_volume` opens."""
    from ..io import read_volume

    vol = read_volume(path)
    kind = "labels" if is_label_volume(vol.dtype) else "image"
    data = _lazy(vol.data)
    if kind == "labels" and data.dtype == bool:
        data = data.astype(np.uint8)
    meta = {META: {"kind": "file", "path": str(path), "voxel_size_nm": list(vol.voxel_size_nm)}}
    return data, {"name": layer_name(path), "scale": tuple(vol.voxel_size_nm), "metadata": meta}, kind


def _prediction_layers(path: Path) -> Optional[list]:
    """Channel layers of a ``synapse-bmz run`` prediction store, or None if ``path`` is not one."""
    import zarr

    try:
        group = zarr.open_group(store=str(path), mode="r")
    except Exception:  # not a group: a plain array, read as a volume
        return None
    info = group.attrs.asdict().get(META) or {}
    if info.get("kind") != "prediction" or "0" not in group:
        return None
    from ..api import _as_dataarray

    arr = group["0"]
    voxel = tuple(float(v) for v in info["voxel_size_nm"])
    channels = list(info.get("channels") or [f"channel {i}" for i in range(arr.shape[0])])
    pred = _as_dataarray(arr, channels, voxel, {**info, "voxel_size_nm": list(voxel), "store": str(path)})
    return prediction_layer_data(pred, str(info.get("model", layer_name(str(path)))))


def prediction_layer_data(pred, model: str) -> list:
    """Layer-data tuples of a channel-first prediction (`synapse_bmz.api.predict` output), one per channel.

    Each layer keeps the whole DataArray in its metadata, so the Postprocessing
    widget finds every channel its recipe needs from any one of them.
    """
    voxel = tuple(float(v) for v in pred.attrs["voxel_size_nm"])
    out = []
    for i, channel in enumerate(pred.coords["c"].values):
        meta = {META: {"kind": "prediction", "model": model, "rdf": pred.attrs.get("rdf"),
                       "channel": str(channel), "prediction": pred}}
        out.append((pred.data[i], {"name": f"{model} {channel}", "scale": voxel, "metadata": meta,
                                   "blending": "additive", "colormap": ("magenta", "green", "cyan", "yellow")[i % 4],
                                   "contrast_limits": (0.0, 1.0), "visible": i == 0}, "image"))
    return out


def read_layers(path: PathLike) -> list:
    """npe2 reader: layer-data tuples of ``path`` (see the module docstring).

    Raises
    ------
    InputError
        Unreadable file, missing voxel size, etc. (napari shows the message).
    """
    if isinstance(path, (list, tuple)):
        path = path[0]
    from ..io.hdf5 import _datasets
    from ..io.inputs import locate

    text = str(path)
    fmt, file, key = locate(text)
    if fmt == "zarr" and key is None:
        layers = _prediction_layers(file)
        if layers is not None:
            return layers
    if fmt == "hdf5" and key is None:
        import h5py

        with h5py.File(file, "r") as f:
            names = [n for n in _datasets(f) if f[n].ndim in (2, 3)]
        if len(names) > 1:
            return [volume_layer(f"{file}:{n}") for n in names]
    return [volume_layer(text)]
