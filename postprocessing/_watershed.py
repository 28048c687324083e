"""Seeded watershed that only works inside the mask components holding seeds.

``seeded_watershed`` gives the partition of
``skimage.segmentation.watershed(image, markers, mask=mask)`` (connectivity
1; see *Exactness* below), but:

- a mask component without a seed stays background (as in skimage) at the
  cost of one look-up, without flooding;
- a mask component with exactly one seed label is filled with that label
  without flooding (every voxel of a connected mask component that holds a
  single marker receives that marker, whatever the image);
- only components with two or more seed labels are flooded, as if each were
  flooded alone inside its own bounding box (see *Batching*).

Exactness: the first two cases are exact. In the last case the flooding is
skimage's own, but skimage breaks ties between markers of equal image value
by the layout of its binary heap, which holds the markers of *all*
components in a whole-volume call and only this component's here. Voxels
whose label depends on that tie (equidistant between two touching objects
along equal values) may therefore differ: the benchmark measured 0 differing
voxels on separated vesicles and 22 of 33.5 million on clusters of
overlapping vesicles (``benchmarks/results/postprocessing.json``). With
ties broken (e.g. a noisy height map) the partitions are identical (tested).
The result depends only on the component itself, so block-wise and
whole-volume runs of this function agree exactly.

Batching: one skimage call per component costs ~0.3 ms of set-up (padding,
offsets), which dominated on images with thousands of small clusters.
Components are therefore copied into a few compact canvases (stacked along
axis 0, one empty row apart, grouped by the 2^k or 3 * 2^k above their extent
along the other axes) and each canvas is flooded in one call. skimage's
heap orders items by (value, entry time); entry times grow with every push
and markers all enter at time 0, so the order of one component's items is
the same as in a call of its own unless two of its markers have equal
values (or a value is NaN): such components are flooded alone in their
bounding box, as before. Markers whose neighbours are all markers never
push a voxel; they are left out of the canvas mask (a smaller heap) and keep
their label. The result is the same, voxel for voxel, as flooding every
component alone (tested).

Two phases: in the recipes the markers are the voxels above a threshold of
the flooded map (distance seeds), so all of a component's markers are
popped before any other voxel, and each voxel next to a marker takes the
label of its lowest neighbouring marker (`_first_labels`). That phase is
computed directly; skimage then floods from those voxels with the markers
out of the mask, a smaller heap. Where
two first-phase voxels of a component tie, their entry times would
decide, and the component is flooded in one phase (tested).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from skimage.segmentation import watershed

from ._labels import face_components

__all__ = ["seeded_watershed"]

#: voxels per batching canvas (bounds its memory; several canvases keep threads busy)
CANVAS_VOXELS = 1 << 21


def _seed_component_pairs(s, c, n_seeds):
    """(seed label, component) pairs from the labels ``s`` > 0 and components ``c`` > 0 of seed voxels in the mask.

    Each pair present must occur at least once in ``s``, ``c`` (repeats are allowed).
    """
    comp_of_seed = np.zeros(n_seeds + 1, dtype=np.int64)
    comp_of_seed[s] = c
    if np.array_equal(comp_of_seed[s], c):
        labels = np.flatnonzero(comp_of_seed)
        return labels, comp_of_seed[labels]
    # A seed label spans several mask components: enumerate the pairs.
    pairs = np.unique(np.stack([s, c], axis=1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def _changes(key):
    """Boolean array: True where the 1D ``key`` differs from its predecessor (and at 0)."""
    change = np.empty(key.size, dtype=bool)
    change[:1] = True
    np.not_equal(key[1:], key[:-1], out=change[1:])
    return change


def seeded_watershed(image, seeds, mask, *, invert=False, min_size=0, n_threads=1):
    """Seeded watershed of ``image`` from ``seeds`` restricted to ``mask``.

    Parameters
    ----------
    image : (Z, Y, X) or (Y, X) ndarray of float
        Height map; basins are flooded from low to high values
        (from high to low with ``invert=True``).
    seeds : (Z, Y, X) or (Y, X) ndarray of int
        Seed labels, 0 = no seed. Seeds outside ``mask`` are ignored.
    mask : (Z, Y, X) or (Y, X) ndarray of bool
        Voxels that may be labelled. Flooding uses face connectivity
        (6 in 3D, 4 in 2D), like skimage's default.
    invert : bool, optional
        Flood ``-image`` instead of ``image`` (saves a whole-volume copy).
    min_size : float, optional
        Instances with fewer voxels are removed (set to 0). Default 0.
    n_threads : int, optional
        Threads flooding components with several seeds concurrently
        (skimage's flooding releases the GIL). Default 1.

    Returns
    -------
    (Z, Y, X) or (Y, X) ndarray of uint32
        Instance labels 1..N, numbered in the order of the seed labels;
        0 outside mask, in mask components without seeds and for removed
        instances.
    """
    image = np.asarray(image)
    seeds = np.asarray(seeds)
    if seeds.dtype.kind not in "iu":
        seeds = seeds.astype(np.int64)
    mask = np.asarray(mask)
    # the mask's components are labelled into the output, which is overwritten at the end
    out, n_comp = face_components(mask)
    if n_comp == 0:
        return out
    comp = out
    flat = out.reshape(-1)
    # Everything below works on the mask's voxels only (raster order), mostly on their runs of equal
    # component (and seed), not on the whole image.
    voxels = np.flatnonzero(mask if mask.dtype == bool else comp)
    voxel_comp = flat[voxels]
    voxel_seed = seeds.reshape(-1)[voxels]
    change = _changes(voxel_comp)
    starts = np.flatnonzero(change)  # runs of one component
    run_comp = voxel_comp[starts]
    run_length = np.diff(np.append(starts, voxels.size))
    change |= _changes(voxel_seed)
    pair_starts = np.flatnonzero(change)  # runs of one (component, seed) pair
    del change
    pair_seed = voxel_seed[pair_starts]
    seeded = pair_seed != 0
    if not seeded.any():
        flat[voxels] = 0
        return out
    s, c = pair_seed[seeded].astype(np.intp), voxel_comp[pair_starts[seeded]].astype(np.intp)
    n_seeds = int(s.max())
    seed_labels, seed_comps = _seed_component_pairs(s, c, n_seeds)
    del s, c, pair_starts, pair_seed, seeded
    per_comp = np.bincount(seed_comps, minlength=n_comp + 1)
    single = per_comp[seed_comps] == 1
    # Instance sizes, indexed by seed label.
    sizes = np.zeros(n_seeds + 1, dtype=np.int64)
    comp_sizes = np.bincount(run_comp, weights=run_length, minlength=n_comp + 1).astype(np.int64)
    np.add.at(sizes, seed_labels[single], comp_sizes[seed_comps[single]])
    multi = np.flatnonzero(per_comp >= 2)
    batched_voxels, batched_labels, alone = np.zeros(0, np.intp), np.zeros(0, np.intp), []
    if multi.size:
        local = np.full(n_comp + 1, -1, dtype=np.int64)
        local[multi] = np.arange(multi.size)
        run_local = local[run_comp]
        runs = np.flatnonzero(run_local >= 0)
        where = _expand_runs(starts[runs], run_length[runs])  # positions in ``voxels`` of the multi-seed components
        batched_voxels, batched_labels, alone = _flood_components(
            image, seeds, comp, multi, voxels[where], np.repeat(run_local[runs], run_length[runs]), voxel_seed[where],
            invert, n_threads)
        del where
        sizes += np.bincount(batched_labels, minlength=n_seeds + 1)
        if alone:
            sizes += np.bincount(np.concatenate([labels for _, _, labels in alone]), minlength=n_seeds + 1)
    keep = sizes >= min_size
    keep[0] = False
    seed_lut = np.zeros(n_seeds + 1, dtype=np.uint32)
    seed_lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.uint32)
    comp_lut = np.zeros(n_comp + 1, dtype=np.uint32)
    comp_lut[seed_comps[single]] = seed_lut[seed_labels[single]]
    flat[voxels] = np.repeat(comp_lut[run_comp], run_length)
    flat[batched_voxels] = seed_lut[batched_labels]
    for box, sub_mask, labels in alone:
        out[box][sub_mask] = seed_lut[labels]
    return out


def _expand_runs(starts, lengths):
    """``concatenate([arange(s, s + n) for s, n in zip(starts, lengths)])`` without the loop."""
    return np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(int(lengths.sum()))


def _ties(values, component, n):
    """Components (of ``n``) in which two of ``values`` are equal or one is NaN."""
    tied = np.zeros(n, dtype=bool)
    tied[component[np.isnan(values)]] = True
    if values.dtype.kind == "f" and values.dtype.itemsize <= 4:
        # one sort of (component, float32 bits) keys; + 0 turns -0.0 into 0.0, which compare equal
        bits = (values.astype(np.float32) + np.float32(0)).view(np.uint32)
        key = np.sort((component.astype(np.uint64) << np.uint64(32)) | bits)
        tied[(key[1:][key[1:] == key[:-1]] >> np.uint64(32)).astype(np.intp)] = True
        return tied
    order = np.argsort(values)
    v, c = values[order], component[order]
    equal = np.flatnonzero(v[1:] == v[:-1])
    if equal.size:
        # the few values that occur more than once: sort them by (value, component)
        candidates = np.zeros(v.size, dtype=bool)
        candidates[equal] = candidates[equal + 1] = True
        v, c = v[candidates], c[candidates]
        order = np.lexsort((c, v))
        v, c = v[order], c[order]
        tied[c[1:][(v[1:] == v[:-1]) & (c[1:] == c[:-1])]] = True
    return tied


def _interior_markers(markers, mask):
    """Markers whose face neighbours in ``mask`` are all markers.

    They never push a voxel onto skimage's heap, so taking them out of the
    mask (and keeping their label) changes only the heap's layout: the same
    partition when no two markers tie (`_ties`), with a smaller heap.
    """
    free = mask & (markers == 0)
    near_free = np.zeros(mask.shape, dtype=bool)
    for axis in range(mask.ndim):
        lower = (slice(None),) * axis + (slice(None, -1),)
        upper = (slice(None),) * axis + (slice(1, None),)
        near_free[lower] |= free[upper]
        near_free[upper] |= free[lower]
    near_free |= markers == 0
    return ~near_free


def _first_labels(markers, image, free):
    """The label each ``free`` voxel receives when skimage pops the markers, 0 where no marker is next to it.

    skimage labels a voxel when it pushes it, with the label of the voxel
    being popped. When every marker of a component lies below every other
    voxel of it, all markers are popped first, in increasing value: a voxel
    next to markers takes the label of its lowest neighbouring marker (no
    two markers of the component tie, `_ties`). The rest of the flood is a
    watershed from these labelled voxels, which enter the heap in the same
    order as long as no two of them tie either (their entry times then
    never decide), so flooding from them gives the same labels with the
    markers' voxels out of the heap.
    """
    best = np.full(markers.shape, np.inf)
    first = np.zeros_like(markers)
    for axis in range(markers.ndim):
        lower = (slice(None),) * axis + (slice(None, -1),)
        upper = (slice(None),) * axis + (slice(1, None),)
        for source, target in ((lower, upper), (upper, lower)):
            neighbour = markers[source]
            better = free[target] & (neighbour != 0) & (image[source] < best[target])
            best[target][better] = image[source][better]
            first[target][better] = neighbour[better]
    return first


def _flood_components(image, seeds, comp, ids, voxels, local, voxel_seed, invert, n_threads):
    """Flood components ``ids`` (of ``comp``), each as if alone in its bounding box.

    ``voxels`` are their flat indices (raster order), ``local`` each voxel's
    index into ``ids``, ``voxel_seed`` its seed label. Components without
    marker ties share canvases (see the module docstring); the others are
    flooded alone in their bounding box.

    Returns
    -------
    batched_voxels, batched_labels : ndarray
        Flat indices and seed labels of the voxels of the batched components.
    alone : list of (box, sub_mask, labels)
        Per other component: its bounding box, its voxels in the box and
        their seed labels.
    """
    shape = comp.shape
    ndim = len(shape)
    n = ids.size
    # runs of consecutive voxels of one component within one row (along the last axis)
    row = voxels // shape[-1]
    col = voxels - row * shape[-1]
    change = np.empty(voxels.size, dtype=bool)
    change[:1] = True
    np.not_equal(voxels[1:], voxels[:-1] + 1, out=change[1:])
    change[1:] |= local[1:] != local[:-1]
    change[1:] |= col[1:] == 0
    starts = np.flatnonzero(change)
    lengths = np.diff(np.append(starts, voxels.size))
    run_local = local[starts]
    run_coords = np.unravel_index(row[starts], shape[:-1]) + (col[starts],)
    del row, col, change
    lo = np.empty((ndim, n), dtype=np.intp)
    hi = np.empty((ndim, n), dtype=np.intp)
    for axis in range(ndim):
        lo[axis] = shape[axis]
        hi[axis] = -1
        np.minimum.at(lo[axis], run_local, run_coords[axis])
        np.maximum.at(hi[axis], run_local, run_coords[axis] + (lengths - 1 if axis == ndim - 1 else 0))
    values = image.reshape(-1)[voxels]
    if invert:
        values = -values
    is_marker = voxel_seed != 0
    alone = _ties(values[is_marker], local[is_marker], n)
    # components whose markers all lie below every other voxel: flooded in two phases (`_first_labels`)
    # accumulators of the values' own dtype: ufunc.at with a cast is ~30x slower
    top_marker = np.full(n, -np.inf, dtype=values.dtype)
    np.maximum.at(top_marker, local[is_marker], values[is_marker])
    low_free = np.full(n, np.inf, dtype=values.dtype)
    np.minimum.at(low_free, local[~is_marker], values[~is_marker])
    two_phase = (top_marker < low_free) & ~alone
    del is_marker, top_marker, low_free

    def flood_alone(j):
        box = tuple(slice(lo[axis, j], hi[axis, j] + 1) for axis in range(ndim))
        sub_mask = comp[box] == ids[j]
        sub_seeds = np.where(sub_mask, seeds[box], 0)
        sub_image = -image[box] if invert else image[box]
        return box, sub_mask, watershed(sub_image, markers=sub_seeds, mask=sub_mask)[sub_mask]

    alone_ids = np.flatnonzero(alone)
    batched_ids = np.flatnonzero(~alone)
    jobs = [lambda j=j: flood_alone(j) for j in alone_ids]
    batched_voxels = batched_labels = np.zeros(0, dtype=np.intp)
    if batched_ids.size:
        # canvas layout: components stacked along axis 0, one empty row apart; the other axes span the
        # smallest 2^k or 3 * 2^k at or above the component's extent (components are grouped by these
        # widths: fewer empty voxels than powers of two, still few canvases)
        extent = hi[:, batched_ids] - lo[:, batched_ids] + 1
        width = np.ones((ndim, batched_ids.size), dtype=np.int64)
        if ndim > 1:
            power = 1 << np.ceil(np.log2(extent[1:])).astype(np.int64)
            width[1:] = np.where(3 * power >= 4 * extent[1:], 3 * power // 4, power)
        group = np.unique(width[1:].T, axis=0, return_inverse=True)[1].reshape(-1)
        order = np.lexsort((batched_ids, group))
        shift = np.zeros(n, dtype=np.int64)
        strides = np.zeros((ndim, n), dtype=np.int64)
        canvases = []
        base = 0
        for g in np.unique(group):
            members = order[group[order] == g]
            row_voxels = int(np.prod(width[1:, members[0]]))
            rows = extent[0, members] + 1
            start = np.cumsum(rows) - rows
            chunk = start // max(1, CANVAS_VOXELS // row_voxels)
            for k in np.unique(chunk):
                part = members[chunk == k]
                j = batched_ids[part]
                offset = start[chunk == k] - start[chunk == k][0]
                canvas_shape = (int(rows[chunk == k].sum()),) + tuple(int(w) for w in width[1:, members[0]])
                canvas_strides = np.cumprod((1,) + canvas_shape[:0:-1])[::-1]
                strides[:, j] = canvas_strides[:, None]
                shift[j] = base + offset * canvas_strides[0] - (lo[:, j] * canvas_strides[:, None]).sum(axis=0)
                canvases.append((base, canvas_shape))
                base += int(np.prod(canvas_shape))
        # canvas positions: runs stay runs (the last axis has stride 1)
        runs = np.flatnonzero(~alone[run_local])
        run_position = shift[run_local[runs]]
        for axis in range(ndim):
            run_position += run_coords[axis][runs] * strides[axis, run_local[runs]]
        in_canvas = _expand_runs(starts[runs], lengths[runs])
        position = _expand_runs(run_position, lengths[runs])
        # what skimage floods (it casts to float64, exactly; float32 halves the first phase's passes)
        canvas_image = np.zeros(base, dtype=np.float32 if values.dtype == np.float32 else np.float64)
        canvas_image[position] = values[in_canvas]
        canvas_seeds = np.zeros(base, dtype=seeds.dtype)
        canvas_seeds[position] = voxel_seed[in_canvas]
        canvas_mask = np.zeros(base, dtype=bool)
        canvas_mask[position] = True
        canvas_local = np.full(base, -1, dtype=np.int64)  # component of each canvas voxel (index into ``ids``)
        canvas_local[position] = local[in_canvas]
        canvas_labels = np.zeros(base, dtype=seeds.dtype)

        def flood_canvas(start, canvas_shape):
            stop = start + int(np.prod(canvas_shape))
            original = markers = canvas_seeds[start:stop].reshape(canvas_shape)
            mask = canvas_mask[start:stop].reshape(canvas_shape)
            image_ = canvas_image[start:stop].reshape(canvas_shape)
            component = canvas_local[start:stop].reshape(canvas_shape)
            split = np.zeros(canvas_shape, dtype=bool)
            split[mask] = two_phase[component[mask]]
            keep = np.zeros(canvas_shape, dtype=bool)
            if split.any():
                first = _first_labels(markers, image_, split & (markers == 0))
                frontier = first > 0
                # float32 keys: a float64 map may show false ties, which only cost the one-phase flood
                tied = _ties(image_[frontier].astype(np.float32), component[frontier], n)
                keep[split] = ~tied[component[split]]
                # the first phase's result becomes the markers; the original markers leave the mask
                markers = np.where(keep, first, markers)
                mask = mask & ~(keep & (original != 0))
            interior = _interior_markers(markers, mask)
            flooded = watershed(image_, markers=markers, mask=mask & ~interior)
            labels = np.where(interior, markers, flooded)
            if keep.any():
                labels = np.where(keep & (original != 0), original, labels)
            canvas_labels[start:stop] = labels.reshape(-1)

        jobs += [lambda start=start, canvas_shape=canvas_shape: flood_canvas(start, canvas_shape)
                 for start, canvas_shape in canvases]
    if n_threads > 1 and len(jobs) > 1:
        with ThreadPoolExecutor(n_threads) as pool:
            results = list(pool.map(lambda job: job(), jobs))
    else:
        results = [job() for job in jobs]
    if batched_ids.size:
        batched_voxels, batched_labels = voxels[in_canvas], canvas_labels[position]
    return batched_voxels, batched_labels, results[:alone_ids.size]
