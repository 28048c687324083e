"""Layer plumbing shared by the widgets: arrays and nm voxel sizes in, layers out.

Convention: a layer's ``scale`` is its voxel size in nm, axis order (z, y, x)
or (y, x), exactly as `synapse_bmz.io` reads it; world coordinates are nm.
What a widget made is recorded in ``layer.metadata["synapse_bmz"]`` (kind,
model, recipe, parameters; a prediction keeps its whole channel-first
`xarray.DataArray` under ``"prediction"`` so that postprocessing can re-run
without predicting again).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import numpy as np

from ..errors import OptionError

META = "synapse_bmz"


def level0(layer) -> Any:
    """The full-resolution array of an image or labels layer (multiscale: level 0)."""
    data = layer.data
    return data[0] if getattr(layer, "multiscale", False) else data


def voxel_size_of(layer) -> Tuple[float, ...]:
    """The layer's voxel size in nm per axis ((z, y, x) or (y, x)): its ``scale``."""
    return tuple(float(s) for s in layer.scale)


def labels_of(layer, name: str = "labels") -> np.ndarray:
    """A labels layer's data as an in-memory integer array, checked to be 2D or 3D."""
    if layer is None:
        raise OptionError(name, "choose a labels layer")
    data = np.asarray(level0(layer))
    if data.ndim not in (2, 3):
        raise OptionError(name, f"layer {layer.name!r} has shape {data.shape}; expected 2D (y, x) or 3D (z, y, x)")
    return data


def meta_of(layer) -> dict:
    """``layer.metadata["synapse_bmz"]`` (empty dict when the layer is not ours)."""
    return dict(layer.metadata.get(META) or {}) if layer is not None else {}


def features_of(table) -> Any:
    """A per-object table as layer features: napari maps rows to label values by ``index``."""
    table = table.copy()
    if "label" in table.columns and "index" not in table.columns:
        table.insert(0, "index", table["label"].to_numpy())
    return table


def put_layer(viewer, kind: str, data, name: str, *, scale: Sequence[float],
              translate: Optional[Sequence[float]] = None, metadata: Optional[dict] = None,
              features=None, **kwargs):
    """Add a layer, or replace the data of the one of that name and kind (a re-run updates, not piles up).

    Parameters
    ----------
    viewer : napari.Viewer
    kind : {"image", "labels", "vectors", "points"}
    data : array-like
    name : str
    scale : sequence of float
        nm per data axis.
    translate : sequence of float, optional
        nm offset of data index 0 (the input layer's, so outputs overlay it).
    metadata : dict, optional
        Stored under ``metadata["synapse_bmz"]``.
    features : pandas.DataFrame, optional
    **kwargs
        Passed to ``viewer.add_<kind>`` for a new layer.
    """
    translate = tuple(translate) if translate is not None else (0.0,) * len(scale)
    meta = {META: dict(metadata or {})}
    # LayerList's `in` compares layer objects, not names
    same = [layer for layer in viewer.layers if layer.name == name and type(layer).__name__.lower() == kind]
    if same:
        layer = same[0]
        layer.data = data
        layer.scale, layer.translate = tuple(scale), translate
        layer.metadata = {**layer.metadata, **meta}
        if features is not None:
            layer.features = features
        return layer
    add = getattr(viewer, f"add_{kind}")
    extra = {"features": features} if features is not None else {}
    return add(data, name=name, scale=tuple(scale), translate=translate, metadata=meta, **extra, **kwargs)
