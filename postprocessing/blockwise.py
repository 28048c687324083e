"""Block-wise recipes for arrays larger than memory, stitched by anchors.

Approach
--------
The spatial volume is cut into blocks of ``block_shape``. Each block is
read with ``halo`` extra voxels on every side (clipped at the volume
border), the recipe runs on that padded block, and only the block's own
voxels are written. An instance's id is its *anchor*: one plus the global
raster index of its first voxel (in raster order) in the padded block. Every
block that sees an instance completely computes the same anchor, so an
instance cut by block faces receives one id on both sides without any
merging step. A second pass renumbers the anchors to 1..N in raster order of
their first voxel.

Assumption
----------
The result equals the whole-volume result (up to relabelling) when every
object *and the region that decides it* extends at most ``halo`` voxels
beyond any block it touches, e.g. each connected component of the vesicle
mask (foreground + boundary > 0.5) is smaller than ``halo`` in every axis.
Objects larger than that may be split or cut at block faces. Compartments
are only exact when they fit in the halo.

``ribbon`` selects one structure in the whole volume and runs as a
multi-pass algorithm (``_ribbon_blockwise``): exact global connected
components of the ribbon and PD channels stitched across block faces (any
size), the largest ribbon and the closest PD chosen from streamed
per-component statistics, then the distance-limited steps block by block.
It needs ``halo[i] * voxel[i] >= contact_distance_nm + membrane_distance_nm``
and the chosen PD within the halo of the ribbon (both checked, ValueError
otherwise), and does not accept ``vesicles``. Its output is the whole-volume
labels themselves (1 = ribbon, 2 = PD, 3 = membrane), not renumbered.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np

from .blocks import Block, BlockGrid, context_voxels
from .recipes import RECIPES, apply_recipe, recipe_context_nm

__all__ = ["apply_recipe_blockwise", "iter_blocks", "label_block", "relabel_block", "recipe_grid", "NOT_BLOCKWISE"]

#: Recipes that cannot run block-wise (none: ``ribbon`` has its own passes).
NOT_BLOCKWISE: frozenset[str] = frozenset()

# In-place stitching writes anchors to the uint32 output; they must stay below this.
_MAX_ID = np.iinfo(np.uint32).max


def iter_blocks(shape: Sequence[int], block_shape: Sequence[int], halo: Sequence[int]):
    """Yield ``(inner, outer)`` slice tuples of all blocks in raster order
    (``write`` and ``read`` regions of a `BlockGrid`)."""
    for block in BlockGrid(shape, block_shape, np.broadcast_to(halo, (len(shape),)).tolist()):
        yield block.write, block.read


def recipe_grid(name: str, params: dict | None, shape: Sequence[int], voxel_size_nm: Sequence[float],
                block_shape: Sequence[int], context_nm: float | None = None) -> BlockGrid:
    """The block grid a recipe runs on: context from ``recipe_context_nm`` (or
    ``context_nm``) converted with the voxel size of the recipe's spatial axes.

    For a 2D recipe on a stack (``len(voxel_size_nm) < len(shape)``) the
    leading axes get no context: sections are segmented independently.
    """
    ctx = recipe_context_nm(name, params) if context_nm is None else float(context_nm)
    nd = len(voxel_size_nm)
    lead = len(shape) - nd
    context = (0,) * lead + context_voxels(ctx, voxel_size_nm)
    return BlockGrid(shape, block_shape, list(context))


def _anchor_ids(labels: np.ndarray, outer: tuple[slice, ...], shape: Sequence[int]) -> np.ndarray:
    """Look-up table local label -> global anchor id (0 for background)."""
    flat = labels.ravel()
    nonzero = np.flatnonzero(flat)
    size = int(flat.max(initial=0)) + 1
    first = np.full(size, flat.size, dtype=np.int64)
    np.minimum.at(first, flat[nonzero], nonzero)
    lut = np.zeros(size, dtype=np.int64)
    present = first < flat.size
    present[0] = False
    local = np.unravel_index(first[present], labels.shape)
    global_coords = tuple(c + sl.start for c, sl in zip(local, outer))
    lut[present] = np.ravel_multi_index(global_coords, tuple(shape)) + 1
    return lut


def _labels_of_region(name, block, voxel_size_nm, params):
    """Recipe labels of a read region; a 2D recipe runs section by section."""
    nd = len(voxel_size_nm)
    if block.ndim - 1 == nd:
        return apply_recipe(name, block, voxel_size_nm, params)
    labels = np.zeros(block.shape[1:], np.int64)
    offset = 0
    for idx in np.ndindex(*block.shape[1:-nd]):
        lab = apply_recipe(name, block[(slice(None),) + idx], voxel_size_nm, params).astype(np.int64)
        labels[idx] = np.where(lab > 0, lab + offset, 0)
        offset = int(labels[idx].max(initial=offset))
    return labels


def label_block(name: str, prediction, voxel_size_nm: Sequence[float], params: dict | None,
                block: Block, shape: Sequence[int], anchors_out) -> np.ndarray:
    """Run the recipe on one block's read region and write anchor ids of its own voxels.

    Parameters
    ----------
    prediction : array-like, shape (C, *shape)
        Channel-first probabilities (numpy-sliceable: numpy, zarr, dask).
    voxel_size_nm : sequence of float
        Voxel size (nm) of the recipe's spatial axes (the last ones).
    block : Block
        From `recipe_grid`.
    shape : sequence of int
        Spatial shape of the whole volume.
    anchors_out : writable array-like, ``shape``, int64/uint64 (or uint32 if small)
        Receives, in ``block.write``, the anchor of every instance: one plus
        the global raster index of its first voxel in the read region. Every
        block that sees an instance whole computes the same anchor.

    Returns
    -------
    ndarray of int64
        The sorted anchors present in the block's own voxels.
    """
    region = np.asarray(prediction[(slice(None),) + block.read], dtype=np.float32)
    labels = _labels_of_region(name, region, voxel_size_nm, params)
    lut = _anchor_ids(labels, block.read, shape)
    ids = lut[labels[block.own]]
    anchors_out[block.write] = ids.astype(anchors_out.dtype, copy=False)
    return np.unique(ids[ids > 0])


def relabel_block(anchors_in, anchors: np.ndarray, block: Block, out) -> None:
    """Write labels 1..N (position of each anchor in the sorted ``anchors``) for one block."""
    ids = np.asarray(anchors_in[block.write]).astype(np.int64)
    new = np.searchsorted(anchors, ids) + 1
    out[block.write] = np.where(ids > 0, new, 0).astype(np.uint32)


def apply_recipe_blockwise(
    name: str,
    prediction,
    voxel_size_nm: Sequence[float],
    params: dict | None,
    out,
    block_shape: Sequence[int],
    halo: Sequence[int] | None = None,
    *,
    n_workers: int = 1,
):
    """Run a recipe block by block and stitch instances across block faces.

    Parameters
    ----------
    name : str
        Recipe name (see ``recipes.RECIPES``); ``"ribbon"`` runs its own
        multi-pass algorithm (see module docstring).
    prediction : array-like, shape (C, Z, Y, X) or (C, Y, X)
        Channel-first probabilities supporting numpy slicing (numpy, zarr,
        dask, h5py). Only one padded block is in memory at a time.
    voxel_size_nm : sequence of float
        Voxel size in nm per spatial axis.
    params : dict or None
        Recipe parameters (sizes in nm).
    out : writable array-like, spatial shape, uint32
        Receives the labels 1..N (raster order of each instance's first
        voxel), 0 = background. With ``n_workers > 1`` the block shape
        should be a multiple of ``out``'s chunks so that writes do not
        share chunks.
    block_shape : sequence of int
        Block size in voxels per spatial axis.
    halo : sequence of int or int, optional
        Extra context in voxels per spatial axis on each side of a block;
        must exceed the size of the objects (see module docstring). Default:
        the recipe's declared context (``recipes.recipe_context_nm``) in voxels.
    n_workers : int, optional
        Blocks processed concurrently by threads. Default 1 (serial).

    Returns
    -------
    out
        The same ``out`` object.

    Raises
    ------
    KeyError
        Unknown recipe.
    ValueError
        Non-block-wise recipe, shapes that do not match, or (ribbon) a
        halo too small for the distance-limited steps.
    """
    if name not in RECIPES:
        raise KeyError(f"unknown recipe {name!r}; available recipes: {', '.join(sorted(RECIPES))}")
    if name in NOT_BLOCKWISE:
        raise ValueError(f"recipe {name!r} selects structures in the whole volume; use apply_recipe")
    shape = tuple(prediction.shape[1:])
    ndim = len(shape)
    if tuple(out.shape) != shape:
        raise ValueError(f"`out` (shape {tuple(out.shape)}) must have the spatial shape of `prediction` {shape}")
    block_shape = tuple(int(b) for b in np.broadcast_to(block_shape, (ndim,)))
    if halo is None:
        halo = context_voxels(recipe_context_nm(name, params), voxel_size_nm)
    halo = tuple(int(h) for h in np.broadcast_to(halo, (ndim,)))
    if np.prod(shape, dtype=np.float64) >= _MAX_ID:
        raise ValueError(f"volume of shape {shape} has too many voxels for uint32 anchor ids")
    if name == "ribbon":
        from ._ribbon_blockwise import segment_ribbon_blockwise

        return segment_ribbon_blockwise(
            prediction, voxel_size_nm, out, block_shape, halo, n_workers=n_workers, **(params or {})
        )
    grid = BlockGrid(shape, block_shape, list(halo))

    def run(block):
        return label_block(name, prediction, voxel_size_nm, params, block, shape, out)

    if n_workers > 1:
        with ThreadPoolExecutor(n_workers) as pool:
            found = list(pool.map(run, grid))
    else:
        found = [run(block) for block in grid]
    anchors = np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)

    def renumber(block):
        relabel_block(out, anchors, block, out)

    if n_workers > 1:
        with ThreadPoolExecutor(n_workers) as pool:
            list(pool.map(renumber, grid))
    else:
        for block in grid:
            renumber(block)
    return out
