"""Synaptic partners from network outputs: Synful vectors and polarity masks.

Two kinds of networks find synaptic *partners* (pre-synaptic site ->
post-synaptic site), not only synapses:

- **Synful** (Buhmann et al. 2021): a post-synaptic indicator mask and, for
  each post-synaptic voxel, a vector in nm to its partner's pre-synaptic
  site. :func:`synful_partners` thresholds the mask, finds one site per
  connected component (or per non-maximum-suppressed peak), and reads the
  vector there: pre-site = post-site + vector.
- **Polarity** (pytorch_connectomics): three masks, pre-synaptic region,
  post-synaptic region and their union. :func:`polarity_partners` pairs
  every pre-synaptic with every post-synaptic component that lies in the
  same (dilated) union component; with a neuron segmentation it can cut
  the masks per neuron and pair each post-synaptic piece with its nearest
  T-bar only (``split_by_neuron``, ``pairing``).

Both return one row per partner pair with the columns :data:`PARTNER_COLUMNS`
(positions in nm from the centre of the first voxel, (z, y, x)).
:func:`extract_partners_blockwise` runs either on the block engine
(`postprocessing.blocks.BlockGrid`) and gives exactly the whole-volume
table: a partner belongs to the block whose write region holds its
post-site, and every block sees its sites' whole component through the
recipe's context in nm (a component cut by the read region is an error, not
a silent difference).

Numpy, scipy, scikit-image, pandas and edt only (no torch).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

import edt
import numpy as np
import pandas as pd
from scipy import ndimage

from ._labels import full_structure
from ._units import check_voxel_size
from .blocks import Block, BlockGrid, context_voxels

__all__ = [
    "PARTNER_COLUMNS", "PARTNER_RECIPES", "PARTNER_CHANNELS", "synful_partners", "polarity_partners",
    "extract_partners", "extract_partners_blockwise", "partners_of_block", "partner_context_nm",
    "partner_sites_labels", "sort_partners",
]

#: Columns of a partner table. Positions in nm from the centre of voxel (0, 0, 0);
#: ``score`` as chosen (``sum``/``mean``/``max`` of the probability, or ``count`` in voxels);
#: ``post_volume_nm3`` the volume of the site's post-synaptic component (NMS: voxels above
#: threshold within the suppression radius); ``pre_id``/``post_id`` the neuron ids at the two
#: sites (nullable, missing without a neuron segmentation; 0 = background of the segmentation).
PARTNER_COLUMNS = ("pre_z_nm", "pre_y_nm", "pre_x_nm", "post_z_nm", "post_y_nm", "post_x_nm",
                   "score", "post_volume_nm3", "pre_id", "post_id")

_LOCATIONS = ("distance_max", "center_of_mass")
_SCORES = ("sum", "mean", "max", "count")
_SORT = ["post_z_nm", "post_y_nm", "post_x_nm", "pre_z_nm", "pre_y_nm", "pre_x_nm"]


# ----------------------------------------------------------------------------- helpers

def _choice(value: str, allowed: Sequence[str], name: str) -> str:
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def _ellipsoid(radius_nm, voxel: Sequence[float]) -> np.ndarray:
    """Boolean ellipsoid of ``radius_nm`` (one value, or one per axis (z, y, x)) on the
    anisotropic voxel grid; a radius under one voxel along an axis (z of ssTEM) keeps it in-plane."""
    radii = np.broadcast_to(np.asarray(radius_nm, float), (len(voxel),))
    r = [int(np.floor(rad / v + 1e-9)) for rad, v in zip(radii, voxel)]
    grids = np.ogrid[tuple(slice(-k, k + 1) for k in r)]
    dist2 = sum(((g * v) / max(rad, 1e-9)) ** 2 for g, v, rad in zip(grids, voxel, radii))
    return dist2 <= 1.0 + 1e-9


def _first_per_label(labels_flat: np.ndarray, idx: np.ndarray, key: np.ndarray, n: int) -> np.ndarray:
    """For each label 1..n the flat index (from ``idx``) with the largest ``key``; ties go to
    the first voxel in raster order, so a crop of the volume picks the same voxel."""
    out = np.full(n + 1, -1, np.int64)
    if len(idx) == 0:
        return out[1:]
    lab = labels_flat[idx]
    order = np.lexsort((idx, -key, lab))
    lab_sorted = lab[order]
    first = np.r_[True, lab_sorted[1:] != lab_sorted[:-1]]
    out[lab_sorted[first]] = idx[order][first]
    return out[1:]


def _component_sites(labels: np.ndarray, n: int, prob: np.ndarray, voxel: np.ndarray,
                     origin: np.ndarray, location: str, score: str):
    """One site per component 1..n of ``labels``.

    Returns the site voxel (global, (n, 3) int64), the site position in nm ((n, 3)),
    the score ((n,)) and the voxel count ((n,)).
    """
    flat = labels.ravel()
    idx = np.flatnonzero(flat)
    lab = flat[idx]
    coords = np.stack(np.unravel_index(idx, labels.shape), axis=1) + origin  # global voxels, exact ints
    count = np.bincount(lab, minlength=n + 1)[1:].astype(np.int64)
    p = prob.ravel()[idx].astype(np.float64)
    if location == "distance_max":
        # distance to the component's outside in nm; voxels beyond the array are not background
        dist = edt.edt(labels > 0, anisotropy=tuple(float(v) for v in voxel), black_border=False)
        best = _first_per_label(flat, idx, dist.ravel()[idx], n)
        site = np.stack(np.unravel_index(best, labels.shape), axis=1) + origin
        pos = site * voxel
    else:
        # centroid from integer coordinate sums (exact whatever the crop), then the component's
        # voxel nearest to it supplies the vector / neuron (a centroid can lie outside the component)
        sums = np.stack([np.bincount(lab, weights=coords[:, a].astype(np.float64), minlength=n + 1)[1:]
                         for a in range(3)], axis=1)
        centroid = sums / count[:, None]
        pos = centroid * voxel
        d2 = (((coords - centroid[lab - 1]) * voxel) ** 2).sum(axis=1)
        best = _first_per_label(flat, idx, -d2, n)
        site = np.stack(np.unravel_index(best, labels.shape), axis=1) + origin
    if score == "sum":
        value = np.bincount(lab, weights=p, minlength=n + 1)[1:]
    elif score == "mean":
        value = np.bincount(lab, weights=p, minlength=n + 1)[1:] / np.maximum(count, 1)
    elif score == "max":
        value = np.full(n + 1, -np.inf)
        np.maximum.at(value, lab, p)
        value = value[1:]
    else:
        value = count.astype(np.float64)
    return site.astype(np.int64), pos.astype(np.float64), value.astype(np.float64), count


def _interior_face_labels(labels: np.ndarray, origin: np.ndarray, volume_shape: Sequence[int]) -> np.ndarray:
    """Labels on a face of the array that is not a face of the volume (cut by the read region)."""
    found = [np.zeros(0, labels.dtype)]
    for ax in range(labels.ndim):
        if origin[ax] > 0:
            found.append(np.take(labels, 0, axis=ax).ravel())
        if origin[ax] + labels.shape[ax] < volume_shape[ax]:
            found.append(np.take(labels, -1, axis=ax).ravel())
    cut = np.unique(np.concatenate(found))
    return cut[cut > 0]


def _lookup(neurons, voxels: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Neuron ids at global voxels (clipped to the volume); works on numpy, zarr and dask."""
    if len(voxels) == 0:
        return np.zeros(0, np.int64)
    v = np.clip(voxels, 0, np.asarray(shape) - 1)
    if isinstance(neurons, np.ndarray):
        return neurons[tuple(v.T)].astype(np.int64)
    return np.array([int(np.asarray(neurons[tuple(int(c) for c in p)])) for p in v], np.int64)


def _table(pre_nm, post_nm, score, volume_nm3, pre_id, post_id) -> pd.DataFrame:
    n = len(score)
    data = {f"pre_{a}_nm": np.asarray(pre_nm, float).reshape(n, 3)[:, i] for i, a in enumerate("zyx")}
    data.update({f"post_{a}_nm": np.asarray(post_nm, float).reshape(n, 3)[:, i] for i, a in enumerate("zyx")})
    data["score"] = np.asarray(score, float)
    data["post_volume_nm3"] = np.asarray(volume_nm3, float)
    for key, ids in (("pre_id", pre_id), ("post_id", post_id)):
        data[key] = pd.array(ids if ids is not None else [pd.NA] * n, dtype="Int64")
    return pd.DataFrame(data, columns=list(PARTNER_COLUMNS))


def sort_partners(table: pd.DataFrame) -> pd.DataFrame:
    """Rows in raster order of the post-site, then of the pre-site, index 0..N-1 (the
    canonical order of every partner table here, whole-volume or block-wise)."""
    return table.sort_values(_SORT + ["score"], kind="mergesort").reset_index(drop=True)


def _same_neuron(table: pd.DataFrame) -> np.ndarray:
    pre, post = table["pre_id"], table["post_id"]
    return (pre.notna() & post.notna() & (pre == post) & (post > 0)).to_numpy(dtype=bool)


def _check_spatial(name: str, array, ndim: int = 3) -> tuple:
    shape = tuple(np.shape(array))
    if len(shape) != ndim:
        raise ValueError(f"`{name}` must be 3D (Z, Y, X), got shape {shape}")
    return shape


# ----------------------------------------------------------------------------- Synful

def _split_by_neuron(labels: np.ndarray, neurons: np.ndarray) -> tuple:
    """Components cut where the neuron id changes: one piece per (component, neuron) pair.

    Post-synaptic masks of a polyadic synapse's partners touch around the T-bar;
    each partner is a different neuron, so a segmentation separates them.
    Voxels on unsegmented ground (id 0) stay a piece of their own."""
    fg = labels > 0
    if not fg.any():
        return labels, 0
    key = labels[fg].astype(np.int64) * (int(neurons.max()) + 1) + neurons[fg].astype(np.int64)
    _, inv = np.unique(key, return_inverse=True)  # sorted keys: labels stay in raster-independent order
    out = np.zeros(labels.shape, np.int64)
    out[fg] = inv.ravel() + 1
    # a (component, neuron) pair in two places is two pieces
    return _relabel_connected(out)


def _relabel_connected(pieces: np.ndarray) -> tuple:
    """Each connected part of each piece label its own label, numbered in raster order of first voxel."""
    out = np.zeros(pieces.shape, np.int32)
    n = 0
    for lab, sl in enumerate(ndimage.find_objects(pieces), 1):
        if sl is None:
            continue
        part, k = ndimage.label(pieces[sl] == lab, structure=full_structure(3))
        view = out[sl]
        view[part > 0] = part[part > 0] + n
        n += k
    # renumber by first voxel in raster order, so the numbering does not depend on the crop
    flat = out.ravel()
    idx = np.flatnonzero(flat)
    first = np.full(n + 1, flat.size, np.int64)
    np.minimum.at(first, flat[idx], idx)
    order = np.argsort(first[1:], kind="stable")
    remap = np.zeros(n + 1, np.int32)
    remap[order + 1] = np.arange(1, n + 1, dtype=np.int32)
    return remap[out], n


def _synful_core(post, vectors, voxel, origin, volume_shape, *, threshold, method, nms_radius_nm,
                 location, score, min_volume_nm3, neurons_region=None):
    """Sites of a (cropped) Synful output; coordinates global. Returns the arrays of the
    table plus, per row, whether its component was cut by a face of the crop.
    ``neurons_region`` (the segmentation on the same crop) splits components per neuron."""
    mask = post > threshold
    vox_vol = float(np.prod(voxel))
    if method == "components":
        labels, n = ndimage.label(mask, structure=full_structure(3))
        if n and neurons_region is not None:
            labels, n = _split_by_neuron(labels, np.asarray(neurons_region))
        if n and min_volume_nm3 > 0:
            sizes = np.bincount(labels.ravel(), minlength=n + 1)
            small = sizes * vox_vol < min_volume_nm3
            small[0] = False
            labels[small[labels]] = 0
            labels, n = (_relabel_connected(labels) if neurons_region is not None
                         else ndimage.label(labels > 0, structure=full_structure(3)))
        site, pos, value, count = _component_sites(labels, n, post, voxel, origin, location, score)
        cut_labels = _interior_face_labels(labels, origin, volume_shape)
        cut = np.isin(np.arange(1, n + 1), cut_labels)
        volume = count * vox_vol
    else:
        ball = _ellipsoid(nms_radius_nm, voxel)
        peak_val = ndimage.maximum_filter(post, footprint=ball, mode="constant", cval=0.0)
        peaks = mask & (post >= peak_val)
        # a plateau of equal maxima (a saturated sigmoid) is one peak: its first voxel in raster order
        plateau, n = ndimage.label(peaks, structure=full_structure(3))
        flat = plateau.ravel()
        idx = np.flatnonzero(flat)
        first = _first_per_label(flat, idx, np.zeros(len(idx)), n)
        local = np.stack(np.unravel_index(first, post.shape), axis=1)
        site = local + origin
        pos = site * voxel
        m = mask.astype(np.float64)
        weighted = np.where(mask, post, 0.0).astype(np.float64)
        cnt = ndimage.correlate(m, ball.astype(np.float64), mode="constant")[tuple(local.T)]
        if score == "max":
            value = post[tuple(local.T)].astype(np.float64)
        elif score == "count":
            value = cnt
        else:
            total = ndimage.correlate(weighted, ball.astype(np.float64), mode="constant")[tuple(local.T)]
            value = total if score == "sum" else total / np.maximum(cnt, 1)
        volume = cnt * vox_vol
        keep = volume >= min_volume_nm3
        site, pos, value, volume = site[keep], pos[keep], value[keep], volume[keep]
        cut_plateaus = _interior_face_labels(plateau, origin, volume_shape)
        cut = np.isin(np.arange(1, n + 1), cut_plateaus)[keep]
        local = local[keep]
    local = site - origin
    vec = np.stack([np.asarray(vectors[a])[tuple(local.T)] for a in range(3)], axis=1).astype(np.float64) \
        if len(site) else np.zeros((0, 3))
    pre = pos + vec
    return pre, pos, value, volume, site, cut


def synful_partners(
    post: np.ndarray,
    vectors: np.ndarray,
    voxel_size_nm: Sequence[float],
    *,
    threshold: float = 0.5,
    method: str = "components",
    nms_radius_nm: float = 100.0,
    location: str = "distance_max",
    score: str = "sum",
    min_volume_nm3: float = 0.0,
    neurons=None,
    drop_same_neuron: bool = True,
    split_by_neuron: bool = False,
) -> pd.DataFrame:
    """Partner pairs from a Synful output (post-synaptic mask + vectors to the pre-site).

    Parameters
    ----------
    post : (Z, Y, X) ndarray of float
        Post-synaptic indicator (probability in [0, 1]).
    vectors : (3, Z, Y, X) ndarray of float
        Per voxel, the vector in nm, (z, y, x) components, from that
        post-synaptic voxel to its partner's pre-synaptic site.
    voxel_size_nm : sequence of 3 float
        Voxel size in nm, (z, y, x).
    threshold : float, optional
        ``post > threshold`` is post-synaptic. Default 0.5.
    method : {'components', 'nms'}, optional
        One site per connected component (26-connectivity) of the thresholded
        mask, or one per local maximum of ``post`` within ``nms_radius_nm``
        (non-maximum suppression; a plateau of equal maxima is one peak).
    nms_radius_nm : float, optional
        Suppression radius of ``'nms'`` in nm (a ball on the anisotropic grid).
    location : {'distance_max', 'center_of_mass'}, optional
        The site of a component: its voxel farthest (in nm) from the
        component's outside, or its centroid (the vector and neuron id are
        then read at the component voxel nearest to the centroid). ``'nms'``
        sites are the peaks.
    score : {'sum', 'mean', 'max', 'count'}, optional
        Statistic of ``post`` over the component (``'nms'``: over the voxels
        above threshold within the radius; ``'max'`` the peak); ``count`` is
        the number of voxels.
    min_volume_nm3 : float, optional
        Sites whose component (``'nms'``: ball part above threshold) is
        smaller are dropped.
    neurons : (Z, Y, X) array-like of int, optional
        Neuron segmentation on the same grid; adds ``pre_id`` (at the
        pre-site voxel, clipped to the volume) and ``post_id``.
    drop_same_neuron : bool, optional
        With ``neurons``: drop pairs whose pre and post ids are equal and
        non-zero (a vector that points back into its own neuron). Default True.
    split_by_neuron : bool, optional
        With ``neurons`` and ``method='components'``: cut each component where
        the neuron id changes, one site per (component, neuron) piece. The
        post-synaptic masks of a polyadic synapse's partners touch around the
        T-bar and merge into one component; each partner is another neuron.
        ``min_volume_nm3`` applies to the pieces. Ignored without ``neurons``.
        Default False.

    Returns
    -------
    pandas.DataFrame
        One row per partner, columns :data:`PARTNER_COLUMNS`, sorted by
        post-site then pre-site (raster order).

    Raises
    ------
    ValueError
        Shapes that do not match, a bad voxel size or an unknown option.

    Examples
    --------
    >>> post = np.zeros((3, 8, 8), np.float32); post[1, 2:5, 2:5] = 0.9
    >>> vec = np.zeros((3, 3, 8, 8), np.float32); vec[2] = 20.0   # 20 nm along x
    >>> t = synful_partners(post, vec, (40.0, 4.0, 4.0))
    >>> t[["post_y_nm", "post_x_nm", "pre_x_nm"]].to_numpy().tolist()
    [[12.0, 12.0, 32.0]]
    """
    shape = _check_spatial("post", post)
    if tuple(np.shape(vectors)) != (3,) + shape:
        raise ValueError(f"`vectors` (shape {tuple(np.shape(vectors))}) must have shape (3,) + "
                         f"the shape of `post` {shape}")
    voxel = np.asarray(check_voxel_size(voxel_size_nm, 3))
    _choice(method, ("components", "nms"), "method")
    _choice(location, _LOCATIONS, "location")
    _choice(score, _SCORES, "score")
    if neurons is not None and tuple(np.shape(neurons)) != shape:
        raise ValueError(f"`neurons` (shape {tuple(np.shape(neurons))}) must have the shape of `post` {shape}")
    pre, pos, value, volume, site, _ = _synful_core(
        np.asarray(post, np.float32), vectors, voxel, np.zeros(3, np.int64), shape, threshold=threshold,
        method=method, nms_radius_nm=nms_radius_nm, location=location, score=score,
        min_volume_nm3=min_volume_nm3,
        neurons_region=np.asarray(neurons) if split_by_neuron and neurons is not None else None)
    return _finish(pre, pos, value, volume, site, voxel, shape, neurons, drop_same_neuron)


def _finish(pre, pos, value, volume, site, voxel, shape, neurons, drop_same_neuron) -> pd.DataFrame:
    pre_id = post_id = None
    if neurons is not None:
        post_id = _lookup(neurons, site, shape)
        pre_id = _lookup(neurons, np.rint(pre / voxel).astype(np.int64), shape)
    table = _table(pre, pos, value, volume, pre_id, post_id)
    if neurons is not None and drop_same_neuron:
        table = table[~_same_neuron(table)]
    return sort_partners(table)


# ----------------------------------------------------------------------------- polarity

_PAIRINGS = ("all", "nearest")


def _inplane_radius_nm(pieces: np.ndarray, n: int, voxel: np.ndarray) -> np.ndarray:
    """Per piece 1..n, its largest in-plane inscribed radius in nm: the largest (y, x)
    distance of a voxel to a voxel of another label (or background) in its own section.
    Beyond the array is not background (``black_border=False``), so a piece inside a crop
    gets the value it has in the whole volume."""
    if not n:
        return np.zeros(0)
    dist = np.zeros(pieces.shape, np.float32)
    for z in range(pieces.shape[0]):
        if pieces[z].any():
            dist[z] = edt.edt(np.ascontiguousarray(pieces[z]), anisotropy=(float(voxel[1]), float(voxel[2])),
                              black_border=False)
    return np.asarray(ndimage.maximum(dist, pieces, np.arange(1, n + 1)), np.float64)


def _pre_neuron_pieces(labels: np.ndarray, neurons: np.ndarray, voxel: np.ndarray, min_radius_nm) -> tuple:
    """Each pre-synaptic component cut per neuron; kept: its largest piece (the T-bar's neuron)
    and, with ``min_radius_nm``, every piece at least that thick in-plane (a component that
    spans the T-bars of two neighbouring synapses gives both)."""
    pieces, n = _split_by_neuron(labels, neurons)
    if not n:
        return pieces, 0
    flat, orig = pieces.ravel(), labels.ravel()
    idx = np.flatnonzero(flat)
    orig_of = np.zeros(n + 1, np.int64)
    orig_of[flat[idx]] = orig[idx]
    size = np.bincount(flat, minlength=n + 1)
    best: dict = {}
    for k in range(1, n + 1):
        o = int(orig_of[k])
        if o not in best or size[k] > size[best[o]]:
            best[o] = k
    keep = np.zeros(n + 1, bool)
    keep[list(best.values())] = True
    if min_radius_nm is not None:
        keep[1:] |= _inplane_radius_nm(pieces, n, voxel) >= float(min_radius_nm)
    return _relabel_connected(np.where(keep[pieces], pieces, 0))


def _polarity_core(pre, post, union, voxel, origin, volume_shape, *, threshold, union_threshold,
                   dilation_nm, location, score, min_volume_nm3, neurons_region=None,
                   pre_min_radius_nm=None, exclude_pre_from_post=False, pairing="all", one_per_neuron=False):
    structure = full_structure(3)
    vox_vol = float(np.prod(voxel))
    by_neuron = neurons_region is not None
    sites, kept_labels = [], []
    for side, prob in (("pre", pre), ("post", post)):
        labels, n = ndimage.label(prob > threshold, structure=structure)
        if n and by_neuron:
            if side == "post":  # each post-synaptic partner is its own neuron
                labels, n = _split_by_neuron(labels, np.asarray(neurons_region))
            else:  # the pre-synaptic region is one neuron's (the T-bar's): its largest neuron piece
                labels, n = _pre_neuron_pieces(labels, np.asarray(neurons_region), voxel, pre_min_radius_nm)
        site, pos, value, count = _component_sites(labels, n, prob, voxel, origin, location, score)
        keep = count * vox_vol >= min_volume_nm3
        if by_neuron and side == "post" and exclude_pre_from_post and n:
            # a post piece sharing voxels with a kept pre piece lies in that (pre-synaptic) neuron
            pre_lab, pre_keep = kept_labels[0]
            inside_pre = (labels > 0) & pre_keep[pre_lab]
            keep[np.unique(labels[inside_pre]) - 1] = False
        kept_labels.append((labels, np.r_[False, keep]))
        sites.append((site[keep], pos[keep], value[keep], count[keep] * vox_vol))
    region = (union > union_threshold) | (pre > threshold) | (post > threshold)
    if np.max(dilation_nm) > 0:
        region = ndimage.binary_dilation(region, structure=_ellipsoid(dilation_nm, voxel))
    groups, _ = ndimage.label(region, structure=structure)
    (s_pre, p_pre, v_pre, _), (s_post, p_post, v_post, vol_post) = sites
    g_pre = groups[tuple((s_pre - origin).T)] if len(s_pre) else np.zeros(0, np.int64)
    g_post = groups[tuple((s_post - origin).T)] if len(s_post) else np.zeros(0, np.int64)
    cand = (g_pre[:, None] == g_post[None, :]) & (g_post[None, :] > 0)
    if by_neuron and (pairing == "nearest" or one_per_neuron):
        nr = np.asarray(neurons_region)
        n_pre = nr[tuple((s_pre - origin).T)].astype(np.int64) if len(s_pre) else np.zeros(0, np.int64)
        n_post = nr[tuple((s_post - origin).T)].astype(np.int64) if len(s_post) else np.zeros(0, np.int64)
        # a pre site in the post piece's own neuron is no partner of it (such rows are dropped later)
        cand &= ~((n_pre[:, None] == n_post[None, :]) & (n_post[None, :] > 0))
        if pairing == "nearest" and cand.size:
            # each post piece: only the pre site nearest to its site (ties: first pre site in raster order)
            d = np.linalg.norm(p_pre[:, None, :] - p_post[None, :, :], axis=2)
            d = np.where(cand, d, np.inf)
            order = np.lexsort((s_pre[:, 2], s_pre[:, 1], s_pre[:, 0]))
            best = order[np.argmin(d[order], axis=0)]
            cand = cand & (np.arange(len(s_pre))[:, None] == best[None, :])
        if one_per_neuron and cand.size:
            # per pre site and post neuron one partner: the largest post piece (ties: first in raster order)
            i, j = np.nonzero(cand)
            o = np.lexsort((s_post[j, 2], s_post[j, 1], s_post[j, 0], -vol_post[j], n_post[j], i))
            i, j = i[o], j[o]
            first = np.r_[True, (i[1:] != i[:-1]) | (n_post[j[1:]] != n_post[j[:-1]])] if len(i) else np.zeros(0, bool)
            first |= n_post[j] == 0  # unsegmented ground is not one neuron
            cand = np.zeros_like(cand)
            cand[i[first], j[first]] = True
    i, j = np.nonzero(cand)
    cut_groups = _interior_face_labels(groups, origin, volume_shape)
    cut = np.isin(g_post[j], cut_groups)
    return p_pre[i], p_post[j], 0.5 * (v_pre[i] + v_post[j]), vol_post[j], s_post[j], s_pre[i], cut


def polarity_partners(
    pre: np.ndarray,
    post: np.ndarray,
    union: np.ndarray,
    voxel_size_nm: Sequence[float],
    *,
    threshold: float = 0.5,
    union_threshold: float = 0.5,
    dilation_nm: float | Sequence[float] = 50.0,
    location: str = "distance_max",
    score: str = "mean",
    min_volume_nm3: float = 0.0,
    neurons=None,
    drop_same_neuron: bool = True,
    split_by_neuron: bool = False,
    pre_min_radius_nm: float | None = None,
    exclude_pre_from_post: bool = False,
    pairing: str = "all",
    one_per_neuron: bool = False,
) -> pd.DataFrame:
    """Partner pairs from a polarity output (pre-, post-synaptic and union masks).

    Every connected component of ``pre > threshold`` is paired with every
    component of ``post > threshold`` in the same connected component of the
    synapse region, ``(union > union_threshold) | pre | post`` dilated by a
    ball of ``dilation_nm``, so a polyadic synapse gives one row per
    post-synaptic partner (with ``split_by_neuron`` and
    ``neurons``, pieces per neuron instead of components, see ``pairing``).

    Parameters
    ----------
    pre, post, union : (Z, Y, X) ndarray of float
        Probabilities in [0, 1] of the three channels.
    voxel_size_nm : sequence of 3 float
        Voxel size in nm, (z, y, x).
    threshold : float, optional
        Threshold of the pre and post channels. Default 0.5.
    union_threshold : float, optional
        Threshold of the union channel. Default 0.5.
    dilation_nm : float or sequence of 3 float, optional
        Radius in nm by which the synapse region is grown before pairing
        (bridges a gap between the pre and post masks across the cleft),
        one value or one per axis (z, y, x) (e.g. ``[0, 80, 80]``: in-plane
        only for ssTEM sections). Default 50 nm; 0 pairs only components
        that touch the union.
    location : {'distance_max', 'center_of_mass'}, optional
        Site of each component (see :func:`synful_partners`).
    score : {'sum', 'mean', 'max', 'count'}, optional
        Statistic of each component's own channel; a pair's ``score`` is
        the mean of its pre and post component scores.
    min_volume_nm3 : float, optional
        Smaller pre/post components are dropped (with ``split_by_neuron``:
        smaller pieces, after the cut, so a sliver of a mask in a
        neighbouring neuron is no partner).
    neurons : (Z, Y, X) array-like of int, optional
        Neuron segmentation; adds ``pre_id``/``post_id`` at the two sites.
    drop_same_neuron : bool, optional
        With ``neurons``: drop pairs with equal non-zero ids. Default True.
    split_by_neuron : bool, optional
        With ``neurons``: cut post-synaptic components where the neuron id
        changes (as in :func:`synful_partners`), so each partner of a
        polyadic synapse is paired on its own, and reduce each pre-synaptic
        component to its largest single-neuron piece (the T-bar's neuron),
        whose site then gives ``pre_id``. Default False. The four options
        below refine this neuron-aware pairing and change nothing without it.
    pre_min_radius_nm : float, optional
        With ``split_by_neuron``: besides its largest piece, every piece of
        a pre-synaptic component whose in-plane inscribed radius (the
        largest distance in nm, within its section, from a voxel of the
        piece to another neuron or the background) is at least this is a
        pre-synaptic site too: a component spanning the T-bars of two
        neighbouring synapses gives both, while the thin rims it leaks into
        the post-synaptic neurons do not count (the simulated targets' pre
        region is a 100 nm disc, a post mask a 50 nm one). Default None:
        only the largest piece.
    exclude_pre_from_post : bool, optional
        With ``split_by_neuron``: a post-synaptic piece that shares a voxel
        with a kept pre-synaptic piece (so lies in that pre-synaptic
        neuron) is no post-synaptic site. Default False.
    pairing : {'all', 'nearest'}, optional
        With ``split_by_neuron``: ``'all'`` pairs every pre- with every
        post-synaptic site of a synapse region; ``'nearest'`` pairs each
        post-synaptic piece only with the pre-synaptic site of another
        neuron nearest (in nm, site to site) to its site, so a region
        holding two synapses does not pair each partner with both T-bars.
        Default ``'all'``.
    one_per_neuron : bool, optional
        With ``split_by_neuron``: per pre-synaptic site, one partner per
        post-synaptic neuron (its largest piece; ties: first site in raster
        order), not one per piece of the same neuron. Default False.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PARTNER_COLUMNS`, sorted by post-site then pre-site.

    Raises
    ------
    ValueError
        Shapes that do not match, a bad voxel size or an unknown option.
    """
    shape = _check_spatial("pre", pre)
    for name, arr in (("post", post), ("union", union)):
        if tuple(np.shape(arr)) != shape:
            raise ValueError(f"`{name}` (shape {tuple(np.shape(arr))}) must have the shape of `pre` {shape}")
    voxel = np.asarray(check_voxel_size(voxel_size_nm, 3))
    _choice(location, _LOCATIONS, "location")
    _choice(score, _SCORES, "score")
    _choice(pairing, _PAIRINGS, "pairing")
    if neurons is not None and tuple(np.shape(neurons)) != shape:
        raise ValueError(f"`neurons` (shape {tuple(np.shape(neurons))}) must have the shape of `pre` {shape}")
    p_pre, p_post, value, volume, s_post, s_pre, _ = _polarity_core(
        np.asarray(pre, np.float32), np.asarray(post, np.float32), np.asarray(union, np.float32), voxel,
        np.zeros(3, np.int64), shape, threshold=threshold, union_threshold=union_threshold,
        dilation_nm=dilation_nm, location=location, score=score, min_volume_nm3=min_volume_nm3,
        neurons_region=np.asarray(neurons) if split_by_neuron and neurons is not None else None,
        pre_min_radius_nm=pre_min_radius_nm, exclude_pre_from_post=exclude_pre_from_post, pairing=pairing,
        one_per_neuron=one_per_neuron)
    return _finish_polarity(p_pre, p_post, value, volume, s_post, s_pre, shape, neurons, drop_same_neuron)


def _finish_polarity(p_pre, p_post, value, volume, s_post, s_pre, shape, neurons, drop_same_neuron):
    pre_id = post_id = None
    if neurons is not None:
        post_id, pre_id = _lookup(neurons, s_post, shape), _lookup(neurons, s_pre, shape)
    table = _table(p_pre, p_post, value, volume, pre_id, post_id)
    if neurons is not None and drop_same_neuron:
        table = table[~_same_neuron(table)]
    return sort_partners(table)


# ----------------------------------------------------------------------------- recipes

#: Channels of each partner recipe's input, in order (vectors in nm, (z, y, x)).
PARTNER_CHANNELS: dict[str, tuple[str, ...]] = {
    "synful_partners": ("post_synaptic", "vector_z_nm", "vector_y_nm", "vector_x_nm"),
    "polarity_partners": ("pre_synaptic", "post_synaptic", "synapse"),
}


def _synful_recipe(prediction, voxel_size_nm, **params):
    return synful_partners(prediction[0], prediction[1:4], voxel_size_nm, **params)


def _polarity_recipe(prediction, voxel_size_nm, **params):
    return polarity_partners(prediction[0], prediction[1], prediction[2], voxel_size_nm, **params)


#: Partner recipe name -> ``f(prediction, voxel_size_nm, **params) -> partner table``.
PARTNER_RECIPES: dict[str, Callable[..., pd.DataFrame]] = {
    "synful_partners": _synful_recipe,
    "polarity_partners": _polarity_recipe,
}

#: Context in nm a block needs for the block-wise table to equal the whole-volume one: a
#: component (or NMS ball; polarity: dilated synapse region) must fit in it. ``max_extent_nm``
#: (default 600 nm, a large fly synapse) raises it; NMS needs at least its radius.
_CONTEXT_NM: dict[str, Callable[[dict], float]] = {
    "synful_partners": lambda p: max(float(p.get("max_extent_nm", 600.0)),
                                     2.0 * float(p.get("nms_radius_nm", 100.0)) if p.get("method") == "nms" else 0.0),
    "polarity_partners": lambda p: (float(p.get("max_extent_nm", 600.0))
                                    + 2.0 * float(np.max(p.get("dilation_nm", 50.0)))),
}

_BLOCK_ONLY = ("max_extent_nm",)  # parameters of the block engine, not of the functions


def _known(name: str) -> None:
    if name not in PARTNER_RECIPES:
        raise KeyError(f"unknown partner recipe {name!r}; available: {', '.join(sorted(PARTNER_RECIPES))}")


def partner_context_nm(name: str, params: dict | None = None) -> float:
    """Context in nm partner recipe ``name`` reads around each block (``max_extent_nm``
    parameter, default 600 nm, plus the polarity dilation on both sides / the NMS radius)."""
    _known(name)
    return float(_CONTEXT_NM[name](dict(params or {})))


def _function_params(params: dict | None) -> dict:
    return {k: v for k, v in (params or {}).items() if k not in _BLOCK_ONLY}


def _check_prediction(name: str, prediction) -> tuple:
    needed = PARTNER_CHANNELS[name]
    shape = tuple(np.shape(prediction))
    if len(shape) != 4 or shape[0] < len(needed):
        raise ValueError(f"partner recipe {name!r} needs a channel-first prediction (C, Z, Y, X) with channels "
                         f"{needed}, got shape {shape}")
    return shape[1:]


def extract_partners(name: str, prediction, voxel_size_nm: Sequence[float], params: dict | None = None, *,
                     neurons=None) -> pd.DataFrame:
    """Partner table of a whole prediction with the partner recipe ``name``.

    Parameters
    ----------
    name : {'synful_partners', 'polarity_partners'}
        A key of :data:`PARTNER_RECIPES` (a package names it in
        ``config.synapse_bmz.postprocessing.recipe``).
    prediction : (C, Z, Y, X) array-like of float
        Channels in the order of :data:`PARTNER_CHANNELS`.
    voxel_size_nm : sequence of 3 float
        nm per axis, (z, y, x).
    params : dict, optional
        Keyword arguments of :func:`synful_partners` / :func:`polarity_partners`
        (sizes in nm); ``max_extent_nm`` is only used block-wise.
    neurons : (Z, Y, X) array-like of int, optional
        Neuron segmentation for ``pre_id``/``post_id``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PARTNER_COLUMNS`.
    """
    _known(name)
    _check_prediction(name, prediction)
    return PARTNER_RECIPES[name](np.asarray(prediction, np.float32), voxel_size_nm,
                                 neurons=neurons, **_function_params(params))


def partner_grid(name: str, params: dict | None, shape: Sequence[int], voxel_size_nm: Sequence[float],
                 block_shape: Sequence[int], context_nm: float | None = None) -> BlockGrid:
    """The block grid of a partner recipe: its context (nm, :func:`partner_context_nm` or
    ``context_nm``) in voxels of each axis."""
    ctx = partner_context_nm(name, params) if context_nm is None else float(context_nm)
    return BlockGrid(shape, block_shape, list(context_voxels(ctx, voxel_size_nm)))


def partners_of_block(name: str, prediction, voxel_size_nm: Sequence[float], params: dict | None, block: Block,
                      *, neurons=None) -> pd.DataFrame:
    """The partners one block owns: those whose post-site voxel lies in ``block.write``.

    Reads ``prediction[:, block.read]`` (numpy, zarr, dask or h5py); ``neurons``
    (whole volume, array-like) is read only at the sites. Concatenating every
    block's table and sorting it (:func:`sort_partners`) gives the whole-volume table.

    Raises
    ------
    ValueError
        A component (Synful), NMS plateau or dilated synapse region (polarity)
        of an owned site is cut by the read region: the context is too small
        for it; raise ``max_extent_nm`` (or the package's ``context_nm``).
    """
    _known(name)
    shape = _check_prediction(name, prediction)
    voxel = np.asarray(check_voxel_size(voxel_size_nm, 3))
    p = dict(_function_params(params))
    drop = p.pop("drop_same_neuron", True)
    region = np.asarray(prediction[(slice(None),) + tuple(block.read)], dtype=np.float32)
    origin = np.array([s.start for s in block.read], np.int64)
    if name == "synful_partners":
        defaults = dict(threshold=0.5, method="components", nms_radius_nm=100.0, location="distance_max",
                        score="sum", min_volume_nm3=0.0)
        kw = {**defaults, **p}
        _choice(kw["method"], ("components", "nms"), "method")
        _choice(kw["location"], _LOCATIONS, "location")
        _choice(kw["score"], _SCORES, "score")
        split = bool(kw.pop("split_by_neuron", False)) and neurons is not None
        pre, pos, value, volume, site, cut = _synful_core(
            region[0], region[1:4], voxel, origin, shape, **kw,
            neurons_region=np.asarray(neurons[tuple(block.read)]) if split else None)
        s_pre = None
    else:
        defaults = dict(threshold=0.5, union_threshold=0.5, dilation_nm=50.0, location="distance_max",
                        score="mean", min_volume_nm3=0.0, pre_min_radius_nm=None, exclude_pre_from_post=False,
                        pairing="all", one_per_neuron=False)
        kw = {**defaults, **p}
        _choice(kw["location"], _LOCATIONS, "location")
        _choice(kw["score"], _SCORES, "score")
        _choice(kw["pairing"], _PAIRINGS, "pairing")
        split = bool(kw.pop("split_by_neuron", False)) and neurons is not None
        pre, pos, value, volume, site, s_pre, cut = _polarity_core(
            region[0], region[1], region[2], voxel, origin, shape, **kw,
            neurons_region=np.asarray(neurons[tuple(block.read)]) if split else None)
    lo = np.array([s.start for s in block.write])
    hi = np.array([s.stop for s in block.write])
    own = np.all((site >= lo) & (site < hi), axis=1) if len(site) else np.zeros(0, bool)
    if np.any(own & cut):
        ctx = partner_context_nm(name, params)
        what = "component" if name == "synful_partners" else "synapse region"
        raise ValueError(f"{block.describe()}: a partner's {what} extends beyond the {ctx:g} nm context; "
                         "raise `max_extent_nm`")
    if name == "synful_partners":
        return _finish(pre[own], pos[own], value[own], volume[own], site[own], voxel, shape, neurons, drop)
    return _finish_polarity(pre[own], pos[own], value[own], volume[own], site[own], s_pre[own], shape, neurons, drop)


def extract_partners_blockwise(name: str, prediction, voxel_size_nm: Sequence[float], params: dict | None,
                               block_shape: Sequence[int], *, context_nm: float | None = None, neurons=None,
                               n_workers: int = 1) -> pd.DataFrame:
    """:func:`extract_partners` block by block; the same table as the whole volume.

    Parameters
    ----------
    name, prediction, voxel_size_nm, params, neurons
        As in :func:`extract_partners`; ``prediction`` only needs numpy
        slicing (zarr, dask, h5py), one read region is in memory at a time.
    block_shape : sequence of 3 int
        Write-region size in voxels, (z, y, x).
    context_nm : float, optional
        Context around each block in nm; default :func:`partner_context_nm`.
    n_workers : int, optional
        Blocks processed by this many threads. Default 1.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PARTNER_COLUMNS`, sorted by post-site then pre-site.

    Raises
    ------
    ValueError
        See :func:`partners_of_block`.
    """
    _known(name)
    shape = _check_prediction(name, prediction)
    grid = partner_grid(name, params, shape, check_voxel_size(voxel_size_nm, 3), block_shape, context_nm)

    def run(block):
        return partners_of_block(name, prediction, voxel_size_nm, params, block, neurons=neurons)

    if n_workers > 1:
        with ThreadPoolExecutor(n_workers) as pool:
            tables = list(pool.map(run, grid))
    else:
        tables = [run(b) for b in grid]
    return sort_partners(pd.concat(tables, ignore_index=True))


def partner_sites_labels(prediction, voxel_size_nm: Sequence[float], channel: int = 0, *,
                         threshold: float = 0.5, min_volume_nm3: float = 0.0, **_ignored) -> np.ndarray:
    """Post-synaptic site instances (thresholded components of ``prediction[channel]``).

    The label image of a partner package for the generic ``segment`` path
    (one instance per Synful post-synaptic component); the partner table
    itself comes from :func:`extract_partners`.

    Parameters
    ----------
    prediction : (C, Z, Y, X) ndarray of float
    voxel_size_nm : sequence of 3 float
    channel : int
        The post-synaptic channel (0 for Synful, 1 for polarity).
    threshold, min_volume_nm3 : float
        As in :func:`synful_partners`; other partner parameters are ignored.

    Returns
    -------
    (Z, Y, X) ndarray of uint32
        Labels 1..N in raster order of first voxel.
    """
    from ._components import threshold_components

    return threshold_components(np.asarray(prediction)[channel], voxel_size_nm, threshold, min_volume_nm3)
