"""Seeded watershed that only works inside the mask components holding seeds.

``seeded_watershed`` gives the partition of
``skimage.segmentation.watershed(image, markers, mask=mask)`` (connectivity
1; see *Exactness* below), but:

- a mask component without a seed stays background (as in skimage) at the
  cost of one look-up, without flooding;
- a mask component with exactly one seed label is filled with that label
  without flooding (every voxel of a connected mask component that holds a
  single marker receives that marker, whatever the image);
- only components with two or more seed labels are flooded, each inside its
  own bounding box.

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
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import ndimage
from skimage.segmentation import watershed

__all__ = ["seeded_watershed"]


def _seed_component_pairs(seed_flat, comp_flat, n_seeds):
    """Return (seed label, component) pairs of all seed voxels inside the mask."""
    idx = np.flatnonzero(seed_flat)
    s = seed_flat[idx].astype(np.int64)
    c = comp_flat[idx].astype(np.int64)
    inside = c > 0
    s, c = s[inside], c[inside]
    comp_of_seed = np.zeros(n_seeds + 1, dtype=np.int64)
    comp_of_seed[s] = c
    if np.array_equal(comp_of_seed[s], c):
        present = np.zeros(n_seeds + 1, dtype=bool)
        present[s] = True
        labels = np.flatnonzero(present)
        return labels, comp_of_seed[labels]
    # A seed label spans several mask components: enumerate the pairs.
    pairs = np.unique(np.stack([s, c], axis=1), axis=0)
    return pairs[:, 0], pairs[:, 1]


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
    seeds = np.asarray(seeds)
    comp, n_comp = ndimage.label(mask)
    out = np.zeros(mask.shape, dtype=np.uint32)
    if n_comp == 0 or not seeds.any():
        return out
    seed_flat = seeds.ravel()
    n_seeds = int(seed_flat.max())
    seed_labels, seed_comps = _seed_component_pairs(seed_flat, comp.ravel(), n_seeds)
    per_comp = np.bincount(seed_comps, minlength=n_comp + 1)
    single = per_comp[seed_comps] == 1
    # Instance sizes, indexed by seed label.
    sizes = np.zeros(n_seeds + 1, dtype=np.int64)
    comp_sizes = np.bincount(comp.ravel(), minlength=n_comp + 1)
    np.add.at(sizes, seed_labels[single], comp_sizes[seed_comps[single]])
    multi = np.flatnonzero(per_comp >= 2)
    flooded = []
    if multi.size:
        boxes = ndimage.find_objects(comp)

        def flood(c):
            box = boxes[c - 1]
            sub_mask = comp[box] == c
            sub_seeds = np.where(sub_mask, seeds[box], 0)
            sub_image = -image[box] if invert else image[box]
            return box, sub_mask, watershed(sub_image, markers=sub_seeds, mask=sub_mask)

        if n_threads > 1:
            with ThreadPoolExecutor(n_threads) as pool:
                flooded = list(pool.map(flood, multi))
        else:
            flooded = [flood(c) for c in multi]
        for box, sub_mask, sub in flooded:
            sizes += np.bincount(sub[sub_mask], minlength=n_seeds + 1)
    keep = sizes >= min_size
    keep[0] = False
    seed_lut = np.zeros(n_seeds + 1, dtype=np.uint32)
    seed_lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.uint32)
    comp_lut = np.zeros(n_comp + 1, dtype=np.uint32)
    comp_lut[seed_comps[single]] = seed_lut[seed_labels[single]]
    np.take(comp_lut, comp, out=out)
    for box, sub_mask, sub in flooded:
        out[box][sub_mask] = seed_lut[sub[sub_mask]]
    return out
