"""Block-wise ``ribbon`` recipe, equal to ``segment_ribbon`` without vesicles.

Passes (only padded blocks and per-component tables are in memory):

1. Connected components (26 / 8 connectivity) of the thresholded ribbon and
   PD channels, labelled per block grown by one voxel on its high side. Every
   pair of adjacent voxels lies in one such grown block, so joining the
   labels that blocks give the same seam voxel (a voxel on a block start
   plane) yields the exact global components. Per-component size and first
   raster voxel are streamed, the size filter applied and components ordered
   by first voxel, as ``threshold_components`` does.
2. The largest ribbon component is chosen (ties: first in raster order) and
   written as bit 1 of ``out``. Block by block (with halo), the distance of
   every PD voxel to the chosen ribbon gives each PD component's minimum; the
   closest one (ties: first in raster order) is written as bit 2.
3. Block by block (with halo): membrane within ``membrane_distance_nm``
   (geodesic, inside the membrane) of the PD contact zone, bit 4; then the
   flags become 1 = ribbon, 2 = PD, 3 = membrane.

Assumption: ``halo[i] * voxel[i] >= contact_distance_nm +
membrane_distance_nm`` on every axis (checked), and the chosen PD lies within
``min(halo[i] * voxel[i])`` nm of the ribbon (checked when deciding). Then
every distance-limited step sees all voxels that decide it, and the result
equals the whole-volume one (up to floating-point ties of geodesic distances
exactly at ``membrane_distance_nm``).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ._labels import full_structure
from ._units import as_voxel_size
from .ribbon import MEMBRANE, PRESYNAPTIC_DENSITY, RIBBON, _distance_to, _geodesic_band

__all__ = ["segment_ribbon_blockwise"]

_CHOSEN, _PD, _BAND = 1, 2, 4


def _map(fn, items, n_workers):
    if n_workers > 1:
        with ThreadPoolExecutor(n_workers) as pool:
            return list(pool.map(fn, items))
    return [fn(item) for item in items]


def _grown(inner, shape):
    """``inner`` grown by one voxel on its high side, clipped to ``shape``."""
    return tuple(slice(s.start, min(s.stop + 1, n)) for s, n in zip(inner, shape))


def _key(inner):
    return tuple((s.start, s.stop) for s in inner)


def _within(inner, region):
    return tuple(slice(i.start - r.start, i.stop - r.start) for i, r in zip(inner, region))


class _GlobalComponents:
    """Exact global connected components of ``channel > threshold``."""

    def __init__(self, prediction, channel, threshold, min_size, shape, block_shape, blocks, n_workers):
        self.prediction, self.channel, self.threshold = prediction, channel, threshold
        self.shape, self.structure = shape, full_structure(len(shape))
        stats = _map(lambda b: self._block_stats(b[0], block_shape), blocks, n_workers)
        counts = np.array([s[0] for s in stats], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        total = int(offsets[-1])
        sizes = np.concatenate([s[1] for s in stats]) if total else np.zeros(0)
        firsts = np.concatenate([s[2] for s in stats]) if total else np.zeros(0, np.int64)
        seam_voxel = np.concatenate([s[3] for s in stats])
        seam_id = np.concatenate([s[4] + o - 1 for s, o in zip(stats, offsets[:-1])])
        order = np.lexsort((seam_id, seam_voxel))
        seam_voxel, seam_id = seam_voxel[order], seam_id[order]
        same = seam_voxel[1:] == seam_voxel[:-1]
        a, b = seam_id[:-1][same], seam_id[1:][same]
        graph = coo_matrix((np.ones(a.size, np.int8), (a, b)), shape=(total, total))
        n_comp, comp = connected_components(graph, directed=False) if total else (0, np.zeros(0, int))
        comp_size = np.bincount(comp, weights=sizes, minlength=n_comp)
        comp_first = np.full(n_comp, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(comp_first, comp, firsts)
        kept = np.flatnonzero(comp_size >= min_size)
        kept = kept[np.argsort(comp_first[kept], kind="stable")]
        label_of_comp = np.zeros(n_comp, dtype=np.int64)
        label_of_comp[kept] = np.arange(1, kept.size + 1)
        #: Per component label 1..N (raster order of first voxel): size in voxels.
        self.sizes = comp_size[kept]
        self.n = int(kept.size)
        self._luts = [
            np.concatenate([[0], label_of_comp[comp[offsets[i] : offsets[i + 1]]]])
            for i in range(len(blocks))
        ]
        self._index = {_key(b[0]): i for i, b in enumerate(blocks)}

    def _label(self, region):
        mask = np.asarray(self.prediction[(self.channel,) + region]) > self.threshold
        return ndimage.label(mask, structure=self.structure)

    def _block_stats(self, inner, block_shape):
        region = _grown(inner, self.shape)
        labels, n = self._label(region)
        own = labels[_within(inner, region)]
        sizes = np.bincount(own.ravel(), minlength=n + 1)[1:].astype(np.float64)
        firsts = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        flat = own.ravel()
        nz = np.flatnonzero(flat)
        values, first_pos = np.unique(flat[nz], return_index=True)
        coords = np.unravel_index(nz[first_pos], own.shape)
        firsts[values - 1] = np.ravel_multi_index(
            tuple(c + s.start for c, s in zip(coords, inner)), self.shape
        )
        seam = np.zeros(labels.shape, bool)
        for axis, (sl, b) in enumerate(zip(region, block_shape)):
            coord = np.arange(sl.start, sl.stop)
            on = (coord % b == 0) & (coord > 0)
            seam |= on.reshape([-1 if i == axis else 1 for i in range(labels.ndim)])
        where = np.nonzero(seam & (labels > 0))
        voxels = np.ravel_multi_index(tuple(c + s.start for c, s in zip(where, region)), self.shape)
        return n, sizes, firsts, voxels.astype(np.int64), labels[where].astype(np.int64)

    def labels_of(self, inner):
        """Global labels (0..N) of the voxels of block ``inner``."""
        region = _grown(inner, self.shape)
        labels, _ = self._label(region)
        return self._luts[self._index[_key(inner)]][labels[_within(inner, region)]]


def segment_ribbon_blockwise(
    prediction,
    voxel_size_nm,
    out,
    block_shape,
    halo,
    *,
    n_workers: int = 1,
    threshold: float = 0.5,
    min_volume_nm3: float = 5_000.0,
    vesicle_distance_nm: float = 100.0,
    contact_distance_nm: float = 20.0,
    membrane_distance_nm: float = 500.0,
    vesicles=None,
):
    """``segment_ribbon`` (largest ribbon, no vesicles) block by block into ``out``.

    ``prediction`` is channel-first (ribbon, PD, membrane); ``block_shape``
    and ``halo`` are per spatial axis tuples. See the module docstring for
    the passes and the halo assumption. Returns ``out``.

    Raises
    ------
    ValueError
        ``vesicles`` given, a halo smaller than ``contact_distance_nm +
        membrane_distance_nm``, or the closest PD farther from the ribbon
        than the halo reaches.
    """
    if vesicles is not None:
        raise ValueError("block-wise ribbon picks the largest ribbon; `vesicles` is not supported")
    del vesicle_distance_nm  # only used with vesicles
    shape = tuple(prediction.shape[1:])
    voxel = as_voxel_size(voxel_size_nm, len(shape))
    reach = contact_distance_nm + membrane_distance_nm
    needed = tuple(math.ceil(reach / v - 1e-9) for v in voxel)
    if any(h < n for h, n in zip(halo, needed)):
        raise ValueError(
            f"block-wise ribbon needs a halo of at least {needed} voxels "
            f"(contact_distance_nm + membrane_distance_nm = {reach} nm), got {tuple(halo)}"
        )
    from .blockwise import iter_blocks

    blocks = list(iter_blocks(shape, block_shape, halo))
    min_size = min_volume_nm3 / float(np.prod(voxel))
    ribbons = _GlobalComponents(prediction, 0, threshold, min_size, shape, block_shape, blocks, n_workers)
    if ribbons.n == 0:
        _map(lambda b: out.__setitem__(b[0], np.zeros([s.stop - s.start for s in b[0]], np.uint32)),
             blocks, n_workers)
        return out
    chosen = int(np.argmax(ribbons.sizes)) + 1  # first maximum = first in raster order

    def write_chosen(block):
        out[block[0]] = np.where(ribbons.labels_of(block[0]) == chosen, _CHOSEN, 0).astype(np.uint32)

    _map(write_chosen, blocks, n_workers)

    densities = _GlobalComponents(prediction, 1, threshold, min_size, shape, block_shape, blocks, n_workers)
    if densities.n > 0:

        def pd_minima(block):
            inner, outer = block
            near = (np.asarray(out[outer]) & _CHOSEN) > 0
            distance = _distance_to(near, voxel)[_within(inner, outer)]
            labels = densities.labels_of(inner)
            minima = np.full(densities.n + 1, np.inf)
            present = np.unique(labels[labels > 0])
            if present.size:
                minima[present] = ndimage.minimum(distance, labels, present)
            return minima

        minima = np.min(np.stack(_map(pd_minima, blocks, n_workers)), axis=0)[1:]
        best = int(np.argmin(minima))
        bound = min(h * v for h, v in zip(halo, voxel))
        if not minima[best] <= bound:
            raise ValueError(
                f"the closest presynaptic density is farther than the halo reaches ({bound} nm) "
                "from the ribbon; increase the halo"
            )
        pd_label = best + 1

        def write_pd(block):
            inner = block[0]
            flags = np.asarray(out[inner])
            out[inner] = flags | np.where(densities.labels_of(inner) == pd_label, _PD, 0).astype(np.uint32)

        _map(write_pd, blocks, n_workers)

        def write_band(block):
            inner, outer = block
            pd = (np.asarray(out[outer]) & _PD) > 0
            contact = _distance_to(pd, voxel) <= contact_distance_nm
            membrane = np.asarray(prediction[(2,) + outer]) > threshold
            band = _geodesic_band(membrane, contact, voxel, membrane_distance_nm)[_within(inner, outer)]
            flags = np.asarray(out[inner])
            out[inner] = flags | np.where(band, _BAND, 0).astype(np.uint32)

        # Reads only the PD bit of neighbours, which this pass does not change.
        _map(write_band, blocks, n_workers)

    def finish(block):
        inner = block[0]
        flags = np.asarray(out[inner])
        final = np.where(
            flags & _CHOSEN, RIBBON,
            np.where(flags & _PD, PRESYNAPTIC_DENSITY, np.where(flags & _BAND, MEMBRANE, 0)),
        )
        out[inner] = final.astype(np.uint32)

    _map(finish, blocks, n_workers)
    return out
