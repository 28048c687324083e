"""Cubes around synapses for feature extraction (SynapseClusterEM's crops).

A synapse is a centre plus, where known, a point on its pre- and on its
post-synaptic side, all in nm (z, y, x) from the first voxel centre. Around
each synapse a cube is resampled onto the feature extractor's grid (its
voxel size in nm), optionally shifted toward the pre-synaptic side, and
blended by one of the eleven segmentation types of SynapseClusterEM:

====  ==============================================  ===========================
type  kept (everything else blended toward grey)      needs
====  ==============================================  ===========================
0     raw data (nothing blended)                      -
1     pre-synaptic segment                            segments
2     post-synaptic segment                           segments
3     both sides                                      segments
4     closest vesicle cloud + closest cleft           vesicles, cleft
5     type 4 + both sides                             vesicles, cleft, segments
6     closest vesicle cloud                           vesicles
7     closest cleft                                   cleft
8     closest mitochondrion                           mitochondria
9     all vesicles + all cleft in the cube            vesicles, cleft
10    closest cleft + pre-synaptic segment            cleft, segments
====  ==============================================  ===========================

"Closest" is the connected component (26-connectivity, inside the cube)
nearest to the synapse centre. Vesicles are merged into clouds by a closing
of ``cloud_closing_nm`` first, so that a cloud of separate vesicles is one
object, and, when segments are given, only vesicles of the pre-synaptic
segment count.

numpy / scipy / pandas only (no torch): the network runs in ``synapse_bmz``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd
from scipy import ndimage

from ._checks import voxel_size_for

__all__ = [
    "SEGMENTATION_TYPES", "SEGMENTATION_NEEDS", "SYNAPSE_COLUMNS", "SynapseCrops",
    "read_synapse_table", "synapse_table", "synapses_from_tables", "synapses_from_mask", "crop_synapses",
]

#: Segmentation type -> what it keeps (SynapseClusterEM's numbering).
SEGMENTATION_TYPES = {
    0: "raw data",
    1: "pre-synaptic segment",
    2: "post-synaptic segment",
    3: "both sides",
    4: "closest vesicle cloud + closest cleft",
    5: "closest vesicle cloud + closest cleft + both sides",
    6: "closest vesicle cloud",
    7: "closest cleft",
    8: "closest mitochondrion",
    9: "all vesicles + all cleft",
    10: "closest cleft + pre-synaptic segment",
}

#: Segmentation type -> the label volumes it needs (keys of ``labels`` in `crop_synapses`).
SEGMENTATION_NEEDS = {
    0: (), 1: ("segments",), 2: ("segments",), 3: ("segments",),
    4: ("vesicles", "cleft"), 5: ("vesicles", "cleft", "segments"), 6: ("vesicles",),
    7: ("cleft",), 8: ("mitochondria",), 9: ("vesicles", "cleft"), 10: ("cleft", "segments"),
}

#: Columns of the canonical synapse table (nm from the first voxel centre, (z, y, x)).
SYNAPSE_COLUMNS = (
    "synapse_id", "center_z_nm", "center_y_nm", "center_x_nm",
    "pre_z_nm", "pre_y_nm", "pre_x_nm", "post_z_nm", "post_y_nm", "post_x_nm",
)
_CENTER = ["center_z_nm", "center_y_nm", "center_x_nm"]
_PRE = ["pre_z_nm", "pre_y_nm", "pre_x_nm"]
_POST = ["post_z_nm", "post_y_nm", "post_x_nm"]
# SynapseClusterEM's spreadsheet: voxel coordinates in (x, y, z) order, suffixes 1, 2, 3
_SCEM_CENTER = ["central_coord_3", "central_coord_2", "central_coord_1"]
_SCEM_SIDE1 = ["side_1_coord_3", "side_1_coord_2", "side_1_coord_1"]
_SCEM_SIDE2 = ["side_2_coord_3", "side_2_coord_2", "side_2_coord_1"]


def _frame(table, name: str) -> pd.DataFrame:
    if isinstance(table, pd.DataFrame):
        return table
    path = Path(table)
    if not path.is_file():
        raise ValueError(f"{path}: {name} not found")
    try:
        if path.suffix.lower() in (".xlsx", ".xls"):
            return pd.read_excel(path)
        return pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise ValueError(f"{path}: cannot read {name}: {' '.join(str(err).split())}") from None


def _ids(df: pd.DataFrame) -> pd.Series:
    for c in ("synapse_id", "Var1", "label"):
        if c in df.columns:
            return df[c].astype(str).reset_index(drop=True)
    return pd.Series([str(i) for i in range(len(df))])


def synapse_table(center_nm, pre_nm=None, post_nm=None, synapse_id=None) -> pd.DataFrame:
    """Canonical synapse table from coordinate arrays.

    Parameters
    ----------
    center_nm : (N, 3) array_like of float
        Synapse centres, nm (z, y, x) from the first voxel centre.
    pre_nm, post_nm : (N, 3) array_like of float, optional
        A point on the pre- / post-synaptic side (NaN where unknown).
    synapse_id : sequence, optional
        One id per synapse (strings); ``0..N-1`` by default.

    Returns
    -------
    pandas.DataFrame
        Columns `SYNAPSE_COLUMNS`.
    """
    center = np.asarray(center_nm, dtype=np.float64).reshape(-1, 3)
    n = len(center)
    pre = np.full((n, 3), np.nan) if pre_nm is None else np.asarray(pre_nm, np.float64).reshape(n, 3)
    post = np.full((n, 3), np.nan) if post_nm is None else np.asarray(post_nm, np.float64).reshape(n, 3)
    ids = [str(i) for i in range(n)] if synapse_id is None else [str(s) for s in synapse_id]
    if len(ids) != n:
        raise ValueError(f"`synapse_id` has {len(ids)} entries for {n} synapses")
    data = {"synapse_id": ids}
    for cols, arr in ((_CENTER, center), (_PRE, pre), (_POST, post)):
        data.update({c: arr[:, i] for i, c in enumerate(cols)})
    return pd.DataFrame(data, columns=list(SYNAPSE_COLUMNS))


def read_synapse_table(table, voxel_size_nm: Optional[Sequence[float]] = None, *,
                       pre_side: str = "side_1") -> pd.DataFrame:
    """Read a synapse table in any of the layouts we meet and map it to nm (z, y, x).

    Recognised layouts (by their columns):

    - canonical: ``center_{z,y,x}_nm`` with optional ``pre_*_nm``/``post_*_nm``;
    - SynapseClusterEM's spreadsheet (csv or xlsx): ``central_coord_{1,2,3}``,
      ``side_1_coord_{1,2,3}``, ``side_2_coord_{1,2,3}`` in voxels, (x, y, z)
      order, ids in ``Var1``; needs `voxel_size_nm`. Which side is pre-synaptic
      is ``pre_side``; `crop_synapses` can decide it from vesicles instead
      (``decide_pre_side=True``);
    - partner tables (the ssTEM simulator's ``partners.csv``, our partner
      tables): ``pre_{z,y,x}_nm`` and ``post_{z,y,x}_nm``; the centre is their midpoint;
    - object tables written by ``synapse-bmz run`` (``clefts.csv``, ...):
      ``centroid_{z,y,x}_nm``; no sides (see `synapses_from_tables` to add them from vesicles).

    Parameters
    ----------
    table : str, Path or pandas.DataFrame
        csv/xlsx file or a frame.
    voxel_size_nm : (3,) sequence of float, optional
        nm per voxel (z, y, x) of the volume the voxel coordinates refer to;
        needed only for SynapseClusterEM's spreadsheet.
    pre_side : {'side_1', 'side_2'}
        Spreadsheet side taken as pre-synaptic.

    Returns
    -------
    pandas.DataFrame
        Columns `SYNAPSE_COLUMNS` plus any other columns of the input (kept
        for grouping: ``bbox_name``, ``pre_label``, ...).

    Raises
    ------
    ValueError
        One line naming the table and what is missing.
    """
    df = _frame(table, "synapse table").reset_index(drop=True)
    name = table if not isinstance(table, pd.DataFrame) else "synapse table"
    extra = df.drop(columns=[c for c in df.columns if c in SYNAPSE_COLUMNS], errors="ignore")
    if set(_CENTER) <= set(df.columns):
        pre = df[_PRE].to_numpy(float) if set(_PRE) <= set(df.columns) else None
        post = df[_POST].to_numpy(float) if set(_POST) <= set(df.columns) else None
        out = synapse_table(df[_CENTER].to_numpy(float), pre, post, _ids(df))
    elif set(_SCEM_CENTER) <= set(df.columns):
        if voxel_size_nm is None:
            raise ValueError(f"{name}: SynapseClusterEM coordinates are voxels; give the volume's voxel size in nm")
        if pre_side not in ("side_1", "side_2"):
            raise ValueError(f"`pre_side` must be 'side_1' or 'side_2', got {pre_side!r}")
        vs = voxel_size_for(voxel_size_nm, 3)
        center = df[_SCEM_CENTER].to_numpy(float) * vs
        sides = []
        for cols in (_SCEM_SIDE1, _SCEM_SIDE2):
            sides.append(df[cols].to_numpy(float) * vs if set(cols) <= set(df.columns) else np.full_like(center, np.nan))
        pre, post = sides if pre_side == "side_1" else sides[::-1]
        out = synapse_table(center, pre, post, _ids(df))
    elif set(_PRE + _POST) <= set(df.columns):
        pre, post = df[_PRE].to_numpy(float), df[_POST].to_numpy(float)
        out = synapse_table((pre + post) / 2.0, pre, post, _ids(df))
    elif {"centroid_z_nm", "centroid_y_nm", "centroid_x_nm"} <= set(df.columns):
        out = synapse_table(df[["centroid_z_nm", "centroid_y_nm", "centroid_x_nm"]].to_numpy(float), None, None, _ids(df))
    else:
        raise ValueError(
            f"{name}: no synapse coordinates; expected center_{{z,y,x}}_nm, SynapseClusterEM's "
            f"central_coord_{{1,2,3}}, pre_/post_{{z,y,x}}_nm or centroid_{{z,y,x}}_nm columns, got {list(df.columns)[:12]}")
    if not np.isfinite(out[_CENTER].to_numpy()).all():
        bad = int((~np.isfinite(out[_CENTER].to_numpy())).any(axis=1).argmax())
        raise ValueError(f"{name}: synapse {out['synapse_id'][bad]!r} has a missing or non-finite centre")
    return pd.concat([out, extra.drop(columns=[c for c in extra.columns if c in out.columns])], axis=1)


def synapses_from_tables(clefts, vesicles=None, *, cloud_radius_nm: float = 500.0) -> pd.DataFrame:
    """Synapses from our own object tables: cleft centres, pre side from the vesicle cloud.

    Parameters
    ----------
    clefts : str, Path or pandas.DataFrame
        Cleft table of ``synapse-bmz run`` (``centroid_{z,y,x}_nm``) or any
        table `read_synapse_table` reads.
    vesicles : str, Path or pandas.DataFrame, optional
        Vesicle table, ours (``centroid_*_nm``) or the simulator's
        (``center_*_nm``). The pre-synaptic point of a cleft is the centroid
        of the vesicles within `cloud_radius_nm` of it, and the post-synaptic
        point its mirror image through the cleft centre (vesicles lie on the
        pre-synaptic side). Clefts with no vesicle that close keep NaN sides.
    cloud_radius_nm : float
        Reach (nm) from a cleft centre that counts as its vesicle cloud.

    Returns
    -------
    pandas.DataFrame
        Columns `SYNAPSE_COLUMNS` plus ``n_cloud_vesicles``.
    """
    syn = read_synapse_table(clefts)
    syn["n_cloud_vesicles"] = 0
    if vesicles is None:
        return syn
    ves = _frame(vesicles, "vesicle table")
    for cols in (["centroid_z_nm", "centroid_y_nm", "centroid_x_nm"], ["center_z_nm", "center_y_nm", "center_x_nm"]):
        if set(cols) <= set(ves.columns):
            pos = ves[cols].to_numpy(float)
            break
    else:
        raise ValueError(f"{vesicles if not isinstance(vesicles, pd.DataFrame) else 'vesicle table'}: "
                         "no centroid_{z,y,x}_nm or center_{z,y,x}_nm columns")
    centers = syn[_CENTER].to_numpy(float)
    for i, c in enumerate(centers):
        near = pos[np.linalg.norm(pos - c, axis=1) <= cloud_radius_nm]
        if len(near):
            pre = near.mean(axis=0)
            syn.loc[i, _PRE] = pre
            syn.loc[i, _POST] = 2 * c - pre
            syn.loc[i, "n_cloud_vesicles"] = len(near)
    return syn


def synapses_from_mask(mask: np.ndarray, voxel_size_nm: Sequence[float], *, min_volume_nm3: float = 0.0,
                       id_prefix: str = "synapse") -> tuple:
    """Synapses from an annotation mask (cleft, PSD or T-bar + cleft masks): one per 3D connected component.

    Parameters
    ----------
    mask : (Z, Y, X) ndarray of bool or labels
        Nonzero = synapse. Components are 26-connected, so a synapse drawn
        on consecutive sections is one component.
    voxel_size_nm : (3,) sequence of float
        nm per voxel (z, y, x).
    min_volume_nm3 : float
        Components smaller than this (nm^3) are dropped (annotation specks).
    id_prefix : str
        ``synapse_id`` is ``{id_prefix}{component label}``.

    Returns
    -------
    labels : (Z, Y, X) ndarray of int32
        The kept components, labelled 1..N in table order (0 elsewhere).
    table : pandas.DataFrame
        `SYNAPSE_COLUMNS` (centre = the component's centroid, nm; no sides)
        plus ``synapse_volume_nm3``.

    Examples
    --------
    >>> m = np.zeros((3, 10, 10), bool); m[1, 2:4, 2:4] = True
    >>> lab, t = synapses_from_mask(m, (50.0, 5.0, 5.0))
    >>> t[["center_z_nm", "center_y_nm", "synapse_volume_nm3"]].values.tolist()
    [[50.0, 12.5, 5000.0]]
    """
    from skimage.measure import label, regionprops_table

    if getattr(mask, "ndim", None) != 3:
        raise ValueError(f"`mask` must be 3D (z, y, x), got shape {getattr(mask, 'shape', None)}")
    vs = np.asarray(voxel_size_for(voxel_size_nm, 3), float)
    lab = label(np.asarray(mask) != 0, connectivity=3)
    props = pd.DataFrame(regionprops_table(lab, properties=("label", "centroid", "area")))
    if not len(props):
        return np.zeros(lab.shape, np.int32), synapse_table(np.zeros((0, 3))).assign(synapse_volume_nm3=[])
    props = props[props["area"] * float(np.prod(vs)) >= min_volume_nm3].reset_index(drop=True)
    relabel = np.zeros(int(lab.max()) + 1, np.int32)
    relabel[props["label"].to_numpy()] = np.arange(1, len(props) + 1, dtype=np.int32)
    centers = props[["centroid-0", "centroid-1", "centroid-2"]].to_numpy(float) * vs
    table = synapse_table(centers, synapse_id=[f"{id_prefix}{i}" for i in range(1, len(props) + 1)])
    table["synapse_volume_nm3"] = props["area"].to_numpy(float) * float(np.prod(vs))
    return relabel[lab], table


@dataclass
class SynapseCrops:
    """Cubes around synapses on the extractor's grid.

    Attributes
    ----------
    crops : (N, Z, Y, X) ndarray of float32
        Blended cubes (segmentation type, alpha), one per synapse.
    table : pandas.DataFrame
        One row per crop: the synapse table's columns, ``crop_center_{z,y,x}_nm``
        (after the shift toward the pre side), ``at_border`` (the cube reaches
        outside the volume and was padded or extruded), ``padded_fraction``,
        ``z_extruded_fraction`` (see ``z_padding``), and, when the
        labels allow, ``pre_label``/``post_label`` and ``vesicle_cloud_volume_nm3``
        (the closest vesicle cloud inside the cube).
    voxel_size_nm : tuple of float
        The cubes' voxel size (z, y, x), nm.
    segmentation_type : int
    alpha : float
    """

    crops: np.ndarray
    table: pd.DataFrame
    voxel_size_nm: tuple
    segmentation_type: int
    alpha: float


def _sample(volume, coords_vox: Sequence[np.ndarray], order: int, cval: float) -> np.ndarray:
    """Values of ``volume`` at the grid ``coords_vox`` (one 1D array per axis), reading only the box needed."""
    lo = [max(int(np.floor(c.min())), 0) for c in coords_vox]
    hi = [min(int(np.ceil(c.max())) + 2, s) for c, s in zip(coords_vox, volume.shape)]
    shape = tuple(len(c) for c in coords_vox)
    if any(h <= l for l, h in zip(lo, hi)):
        return np.full(shape, cval, dtype=np.float32 if order else np.asarray(volume[(0,) * volume.ndim]).dtype)
    block = np.asarray(volume[tuple(slice(l, h) for l, h in zip(lo, hi))])
    if order == 0:
        # nearest voxel per axis: separable indexing keeps label ids exact
        idx = [np.rint(c).astype(np.int64) - l for c, l in zip(coords_vox, lo)]
        valid = [(i >= 0) & (i < s) for i, s in zip(idx, block.shape)]
        safe = [np.clip(i, 0, s - 1) for i, s in zip(idx, block.shape)]
        out = block[np.ix_(*safe)]
        inside = valid[0][:, None, None] & valid[1][None, :, None] & valid[2][None, None, :]
        return np.where(inside, out, np.asarray(cval, dtype=out.dtype))
    grid = np.meshgrid(*[c - l for c, l in zip(coords_vox, lo)], indexing="ij")
    # coordinates beyond the last voxel centre would be extrapolated as cval
    return ndimage.map_coordinates(block.astype(np.float32, copy=False), grid, order=1, mode="constant",
                                   cval=cval).astype(np.float32)


def _closest_component(mask: np.ndarray, center_vox: np.ndarray, voxel_size_nm: np.ndarray) -> np.ndarray:
    """The 26-connected component of ``mask`` nearest to ``center_vox`` (empty mask -> empty)."""
    if not mask.any():
        return mask
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    pts = np.argwhere(labels > 0)
    d = np.linalg.norm((pts - center_vox) * voxel_size_nm, axis=1)
    return labels == labels[tuple(pts[int(np.argmin(d))])]


def _closing(mask: np.ndarray, radius_nm: float, voxel_size_nm: np.ndarray) -> np.ndarray:
    """Closing by a ball of ``radius_nm`` through two Euclidean distance transforms (linear time,
    unlike a structuring element of tens of voxels); never removes a voxel of ``mask``."""
    if not mask.any() or radius_nm <= 0:
        return mask
    dilated = ndimage.distance_transform_edt(~mask, sampling=voxel_size_nm) <= radius_nm
    # outside the cube counts as empty, so clouds are not glued to the cube's faces
    padded = np.pad(dilated, 1, constant_values=False)
    closed = ndimage.distance_transform_edt(padded, sampling=voxel_size_nm)[1:-1, 1:-1, 1:-1] > radius_nm
    return closed | mask


def crop_synapses(
    raw,
    voxel_size_nm: Sequence[float],
    synapses: pd.DataFrame,
    *,
    labels: Optional[Mapping[str, np.ndarray]] = None,
    segmentation_type: int = 0,
    alpha: float = 1.0,
    crop_shape: Sequence[int] = (80, 80, 80),
    crop_voxel_size_nm: Sequence[float] = (8.0, 8.0, 8.0),
    shift_to_pre_nm: float = 0.0,
    grey: Optional[float] = None,
    decide_pre_side: bool = False,
    cloud_closing_nm: float = 40.0,
    z_padding: str = "grey",
) -> SynapseCrops:
    """Cut, resample and blend a cube around every synapse.

    Parameters
    ----------
    raw : (Z, Y, X) array_like
        EM volume (numpy, zarr or dask; only each cube's box is read).
    voxel_size_nm : (3,) sequence of float
        nm per voxel of `raw` (z, y, x).
    synapses : pandas.DataFrame
        `SYNAPSE_COLUMNS` (see `read_synapse_table`), nm from the first voxel centre.
    labels : mapping of str to (Z, Y, X) ndarray, optional
        On the grid of `raw`: ``'segments'`` (neuron / compartment ids; the
        pre- and post-synaptic segments are the ids at the synapse's pre and
        post points), ``'vesicles'``, ``'cleft'``, ``'mitochondria'`` (instance
        ids or masks). Only those the segmentation type needs are required.
    segmentation_type : int, 0..10
        See `SEGMENTATION_TYPES`.
    alpha : float in [0, 1]
        Outside the type's mask, ``(1 - alpha) * raw + alpha * grey``: 1
        greys it out entirely, 0 leaves the raw data (type 0 is never blended).
    crop_shape : (3,) sequence of int
        Cube size in voxels of the extractor's grid (VGG3D: 80^3).
    crop_voxel_size_nm : (3,) sequence of float
        The extractor's voxel size (z, y, x), nm; cubes are resampled to it
        (linear for raw, nearest for labels).
    shift_to_pre_nm : float
        Move the cube's centre this far (nm) from the synapse centre toward
        its pre-synaptic point (synapses without one are not shifted).
    grey : float, optional
        Grey level of the blend and of the padding outside the volume;
        default: the mean of `raw` inside all cubes, so that every crop of a
        run shares one grey.
    decide_pre_side : bool
        Swap pre and post for synapses whose post point's segment holds more
        vesicle voxels inside the cube than the pre point's (SynapseClusterEM's
        rule for its unordered sides); needs ``'segments'`` and ``'vesicles'``.
    cloud_closing_nm : float
        Closing radius (nm) merging vesicles into clouds before the closest
        cloud is picked.
    z_padding : {'grey', 'edge'}
        What a cube gets where it reaches beyond the first or last section:
        ``'grey'`` pads with the run's grey (and counts it in
        ``padded_fraction``); ``'edge'`` repeats the nearest section (raw and
        labels), for volumes much thinner than the cube (sparse sections such
        as the EPFL runs of 1-4 consecutive 5 nm slices): the cube is then the
        in-plane context extruded along z, and ``z_extruded_fraction`` says
        how much of its depth was repeated (``vesicle_cloud_volume_nm3`` is
        then NaN: the repeated planes are no volume). y and x are always grey-padded.

    Returns
    -------
    SynapseCrops

    Raises
    ------
    ValueError
        One line: an unknown type, a label volume the type needs that is
        missing (naming both), label shapes differing from `raw`.

    Examples
    --------
    >>> raw = np.zeros((20, 20, 20), np.float32); raw[10, 10, 10] = 1
    >>> syn = synapse_table([[10.0, 10.0, 10.0]])
    >>> c = crop_synapses(raw, (1, 1, 1), syn, crop_shape=(5, 5, 5), crop_voxel_size_nm=(1, 1, 1), grey=0.0)
    >>> float(c.crops[0, 2, 2, 2]), bool(c.table.at_border[0])
    (1.0, False)
    """
    if segmentation_type not in SEGMENTATION_TYPES:
        raise ValueError(f"`segmentation_type` must be one of 0..10, got {segmentation_type!r}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"`alpha` must be in [0, 1], got {alpha}")
    if z_padding not in ("grey", "edge"):
        raise ValueError(f"`z_padding` must be 'grey' or 'edge', got {z_padding!r}")
    if getattr(raw, "ndim", None) != 3:
        raise ValueError(f"`raw` must be 3D (z, y, x), got shape {getattr(raw, 'shape', None)}")
    vs_in = voxel_size_for(voxel_size_nm, 3)
    vs_out = voxel_size_for(crop_voxel_size_nm, 3, name="crop_voxel_size_nm")
    shape = tuple(int(s) for s in crop_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"`crop_shape` must be 3 positive sizes (z, y, x), got {crop_shape}")
    labels = dict(labels or {})
    unknown = set(labels) - {"segments", "vesicles", "cleft", "mitochondria"}
    if unknown:
        raise ValueError(f"`labels` has unknown keys {sorted(unknown)}; use segments, vesicles, cleft, mitochondria")
    needs = set(SEGMENTATION_NEEDS[segmentation_type]) | ({"segments", "vesicles"} if decide_pre_side else set())
    missing = sorted(needs - set(labels))
    if missing:
        why = (f"segmentation type {segmentation_type} ({SEGMENTATION_TYPES[segmentation_type]})"
               if set(missing) & set(SEGMENTATION_NEEDS[segmentation_type]) else "decide_pre_side")
        raise ValueError(f"{why} needs the {' and '.join(repr(m) for m in missing)} label volume; "
                         f"give labels={{{', '.join(repr(m) + ': ...' for m in missing)}}}")
    for k, v in labels.items():
        if tuple(v.shape) != tuple(raw.shape):
            raise ValueError(f"`labels['{k}']` (shape {tuple(v.shape)}) must have the same shape as `raw` (shape {tuple(raw.shape)})")
    missing_cols = [c for c in SYNAPSE_COLUMNS if c not in synapses.columns]
    if missing_cols:
        raise ValueError(f"`synapses` lacks columns {missing_cols}; read it with read_synapse_table")
    if segmentation_type in (1, 2, 3, 5, 10) or decide_pre_side:
        lacking = synapses[_PRE + _POST].isna().any(axis=1)
        if lacking.any():
            raise ValueError(f"segmentation type {segmentation_type} needs pre and post points; synapse "
                             f"{synapses['synapse_id'].iloc[int(lacking.values.argmax())]!r} has none")

    offsets = [(np.arange(n) - (n - 1) / 2.0) * v for n, v in zip(shape, vs_out)]
    limit = (np.asarray(raw.shape) - 1) * vs_in
    rows, cubes, masks_needed = [], [], segmentation_type != 0
    for _, syn in synapses.iterrows():
        center = syn[_CENTER].to_numpy(float)
        pre, post = syn[_PRE].to_numpy(float), syn[_POST].to_numpy(float)
        crop_center = center.copy()
        if shift_to_pre_nm and np.isfinite(pre).all() and np.linalg.norm(pre - center) > 0:
            crop_center = center + shift_to_pre_nm * (pre - center) / np.linalg.norm(pre - center)
        coords_nm = [c + o for c, o in zip(crop_center, offsets)]
        extruded = 0.0
        if z_padding == "edge":
            outside_z = (coords_nm[0] < 0) | (coords_nm[0] > limit[0])
            extruded = float(outside_z.mean())
            coords_nm[0] = np.clip(coords_nm[0], 0.0, limit[0])
        coords_vox = [c / v for c, v in zip(coords_nm, vs_in)]
        inside = [(c >= -1e-6) & (c <= lim + 1e-6) for c, lim in zip(coords_nm, limit)]
        inside3 = inside[0][:, None, None] & inside[1][None, :, None] & inside[2][None, None, :]
        cube = _sample(raw, coords_vox, 1, np.nan)
        cube[~inside3] = np.nan  # padded below with the run's grey
        row = {**syn.to_dict(), "crop_center_z_nm": crop_center[0], "crop_center_y_nm": crop_center[1],
               "crop_center_x_nm": crop_center[2], "at_border": bool(not inside3.all() or extruded > 0),
               "padded_fraction": float(1.0 - inside3.mean()), "z_extruded_fraction": extruded}
        # the synapse centre in cube voxel coordinates ("closest" is measured from it, not from the shifted centre)
        center_cube = (center - crop_center) / vs_out + (np.asarray(shape) - 1) / 2.0
        crop_labels = {k: _sample(v, coords_vox, 0, 0) for k, v in labels.items()}
        if "segments" in labels and np.isfinite(pre).all() and np.isfinite(post).all():
            # looked up on the full volume: a side point may lie outside the cube
            row["pre_label"] = _label_at(labels["segments"], pre, vs_in)
            row["post_label"] = _label_at(labels["segments"], post, vs_in)
        mask = _type_mask(segmentation_type, crop_labels, row, center_cube, vs_out,
                          decide_pre_side, cloud_closing_nm) if (masks_needed or labels) else None
        if extruded and "vesicle_cloud_volume_nm3" in row:
            row["vesicle_cloud_volume_nm3"] = float("nan")  # repeated planes would be counted as volume
        rows.append(row)
        cubes.append((cube, mask))

    valid = [c[np.isfinite(c)] for c, _ in cubes]
    if grey is None:
        allv = np.concatenate(valid) if valid else np.zeros(0)
        grey = float(allv.mean()) if allv.size else 0.0
    out = np.empty((len(cubes),) + shape, np.float32)
    for i, (cube, mask) in enumerate(cubes):
        cube = np.where(np.isfinite(cube), cube, np.float32(grey))
        if segmentation_type != 0:
            cube = np.where(mask, cube, (1.0 - alpha) * cube + alpha * grey)
        out[i] = cube
    table = pd.DataFrame(rows).reset_index(drop=True)
    return SynapseCrops(out, table, tuple(float(v) for v in vs_out), int(segmentation_type), float(alpha))


def _label_at(volume, point_nm: np.ndarray, voxel_size_nm: np.ndarray) -> int:
    """Label at the voxel nearest to ``point_nm``; 0 outside the volume."""
    idx = np.rint(point_nm / voxel_size_nm).astype(int)
    if np.any(idx < 0) or np.any(idx >= np.asarray(volume.shape)):
        return 0
    return int(np.asarray(volume[tuple(idx)]))


def _type_mask(seg_type, lab, row, center_cube, vs_out, decide_pre_side, closing_nm):
    """Boolean mask of what type ``seg_type`` keeps in one cube; fills the row's label columns."""
    pre_label, post_label = row.get("pre_label"), row.get("post_label")
    ves = lab.get("vesicles")
    if decide_pre_side and pre_label is not None and ves is not None:
        seg = lab["segments"]
        if pre_label != post_label and ((seg == post_label) & (ves > 0)).sum() > ((seg == pre_label) & (ves > 0)).sum():
            pre_label, post_label = post_label, pre_label
            row["pre_z_nm"], row["pre_y_nm"], row["pre_x_nm"], row["post_z_nm"], row["post_y_nm"], row["post_x_nm"] = (
                row["post_z_nm"], row["post_y_nm"], row["post_x_nm"], row["pre_z_nm"], row["pre_y_nm"], row["pre_x_nm"])
    if pre_label is not None:
        row["pre_label"], row["post_label"] = pre_label, post_label
    cloud = None
    if ves is not None:
        v = ves > 0
        if pre_label is not None and pre_label != 0:
            v = v & (lab["segments"] == pre_label)
        merged = _closing(v, closing_nm, vs_out)
        cloud = _closest_component(merged, center_cube, vs_out) & v
        row["vesicle_cloud_volume_nm3"] = float(cloud.sum() * np.prod(vs_out))

    def closest(key):
        return _closest_component(lab[key] > 0, center_cube, vs_out)

    def side(which):
        label = pre_label if which == "pre" else post_label
        if not label:
            # label 0 is background, not a segment: keeping it would keep the extracellular space
            return np.zeros(lab["segments"].shape, bool)
        return lab["segments"] == label

    if seg_type == 0:
        return None
    if seg_type == 1:
        return side("pre")
    if seg_type == 2:
        return side("post")
    if seg_type == 3:
        return side("pre") | side("post")
    if seg_type == 4:
        return cloud | closest("cleft")
    if seg_type == 5:
        return cloud | closest("cleft") | side("pre") | side("post")
    if seg_type == 6:
        return cloud
    if seg_type == 7:
        return closest("cleft")
    if seg_type == 8:
        return closest("mitochondria")
    if seg_type == 9:
        return (lab["vesicles"] > 0) | (lab["cleft"] > 0)
    if seg_type == 10:
        return closest("cleft") | side("pre")
    raise AssertionError(seg_type)  # unreachable: checked on entry
