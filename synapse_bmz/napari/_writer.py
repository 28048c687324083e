"""napari writers: labels layers as volumes (`synapse_bmz.io.write_volume`) and as IMOD models.

The layer's ``scale`` is the voxel size in nm (z, y, x) and is written into
the file (TIFF unit nm, MRC header in Angstrom, OME-Zarr ``nanometer``,
HDF5 ``voxel_size_nm``), so reading the file back gives the same layer.
IMOD ``.mod``: vesicles (a layer whose recipe/task or name says vesicles) as
one scattered-point object with a sphere radius per vesicle, any other
labels as closed contours per section (`analysis.imod`).
"""

from __future__ import annotations

from typing import Any, List

import numpy as np

from ._layers import META


def _voxel_and_labels(data: Any, attributes: dict):
    labels = np.asarray(data[0] if attributes.get("multiscale") else data)
    voxel = tuple(float(s) for s in attributes.get("scale") or (1.0,) * labels.ndim)
    if labels.ndim not in (2, 3):
        raise ValueError(f"labels layer {attributes.get('name')!r} (shape {labels.shape}) must be 2D (y, x) or 3D (z, y, x)")
    return labels, voxel


def write_labels(path: str, data: Any, attributes: dict) -> List[str]:
    """npe2 writer: a labels layer to ``.tif``/``.mrc``/``.zarr``/``.h5``/``.npy`` with its voxel size.

    Parameters
    ----------
    path : str
        Destination; the format follows the extension (``file.h5:key`` too).
    data : (Z, Y, X) or (Y, X) array of int
    attributes : dict
        napari's layer attributes; ``scale`` is the voxel size in nm.

    Returns
    -------
    list of str
        The path written.
    """
    from ..io import write_volume

    labels, voxel = _voxel_and_labels(data, attributes)
    info = (attributes.get("metadata") or {}).get(META) or {}
    meta = {"kind": "labels", "layer": attributes.get("name")}
    meta.update({k: info[k] for k in ("model", "recipe", "params", "task") if k in info})
    if labels.dtype.kind not in "iub":
        raise ValueError(f"labels layer {attributes.get('name')!r} has dtype {labels.dtype}; expected integers")
    written = write_volume(path, labels.astype(np.uint32, copy=False), voxel, metadata=meta)
    return [str(written)]


def is_vesicle_layer(attributes: dict) -> bool:
    """Whether a labels layer holds vesicles (its recipe/task, else its name, says so)."""
    info = (attributes.get("metadata") or {}).get(META) or {}
    said = str(info.get("task") or info.get("recipe") or attributes.get("name") or "")
    return "vesicle" in said.lower()


def write_imod(path: str, data: Any, attributes: dict) -> List[str]:
    """npe2 writer: a labels layer as an IMOD model (``.mod``).

    Vesicles become points at their centroids with sphere radius
    ``radius_nm`` (`analysis.morphology.object_table`); other labels closed
    contours, one object per label. Coordinates are IMOD pixels of the
    volume, in file order (no y flip, see `analysis.imod`).
    """
    from analysis.imod import write_contour_model, write_point_model
    from analysis.morphology import object_table

    labels, voxel = _voxel_and_labels(data, attributes)
    name = str(attributes.get("name") or "segmentation")
    if is_vesicle_layer(attributes):
        table = object_table(labels, voxel, surface_area=False)
        axes = "zyx"[-labels.ndim:]
        centers = table[[f"centroid_{a}_nm" for a in axes]].to_numpy()
        written = write_point_model(path, centers, table["radius_nm"].to_numpy(), voxel, labels.shape, name=name)
    else:
        written = write_contour_model(path, labels, voxel, name=name)
    return [str(written)]
