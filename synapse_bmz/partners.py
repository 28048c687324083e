"""Partner tables from a partner package's prediction, and the partner evaluation command.

``partners_events`` is to partner packages (``synaptic_partners``,
``synaptic_polarity``) what `synapse_bmz.api.segment_events` is to the
others: the package's recipe (``config.synapse_bmz.postprocessing``, a key of
`postprocessing.partners.PARTNER_RECIPES`) turns the prediction into one row
per partner pair, in memory for small predictions and block by block on the
block engine above ``in_memory_voxels`` (the same table either way).

``evaluate_partner_files`` is the ``synapse-bmz evaluate-partners`` command's
one function: two partner tables in, scores printed and written as JSON
(`analysis.partner_evaluation`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .api import IN_MEMORY_VOXELS, POSTPROCESS_BLOCK, ProgressEvent, _draining, _recipe_of
from .errors import InputError, OptionError

__all__ = ["partners_events", "partners", "write_partner_tables", "evaluate_partner_files",
           "is_partner_recipe"]


def is_partner_recipe(name: Optional[str]) -> bool:
    """Whether a recipe name makes a partner table (`postprocessing.partners.PARTNER_RECIPES`)."""
    from postprocessing.partners import PARTNER_RECIPES

    return name in PARTNER_RECIPES


def partners_events(model, prediction, *, voxel_size_nm: Optional[Sequence[float]] = None,
                    params: Optional[dict] = None, recipe: Optional[str] = None, neurons=None,
                    in_memory_voxels: int = IN_MEMORY_VOXELS, block_shape: Optional[Sequence[int]] = None,
                    executor=None, work: Optional[Path] = None, markers_root: Optional[Path] = None,
                    resume: bool = False):
    """Partner table of a prediction with the package's partner recipe, yielding progress.

    Parameters
    ----------
    model : str, Path, LoadedModel or ModelSession, or None with ``recipe``
        Supplies the recipe and its parameters (``config.synapse_bmz.postprocessing``).
    prediction : xarray.DataArray or array-like, shape (C, Z, Y, X)
        From `synapse_bmz.api.predict` (voxel size from its attrs), numpy, dask or zarr.
    voxel_size_nm : sequence of 3 float, optional
        nm per spatial axis of the prediction if not in its attrs.
    params : dict, optional
        Override recipe parameters (sizes in nm).
    recipe : str, optional
        ``synful_partners`` or ``polarity_partners`` instead of the model's.
    neurons : (Z, Y, X) array-like of int, optional
        Neuron segmentation on the prediction's grid (``pre_id``/``post_id``).
    in_memory_voxels : int
        Larger predictions (all channels) are processed block by block on the
        block engine (`synapse_bmz.runner.blockjobs.PartnerJob`; the recipe's
        context in nm or the package's ``context_nm``): each block keeps the
        partners whose post-site lies in its write region, so the table is the
        whole-volume one.
    block_shape : sequence of int, optional
        Blocks of the block-wise path (default `synapse_bmz.api.POSTPROCESS_BLOCK`).
    executor : SerialExecutor or DaskExecutor, optional
        Runs the blocks (default: serially in this process).
    work : Path, optional
        Folder for a zarr copy of an in-memory ``neurons`` that dask workers read.
    markers_root : Path, optional
        Done markers of stage ``"partners"``, each holding its block's partners.
    resume : bool
        Read the finished blocks' partners from their markers; compute the rest.

    Yields
    ------
    ProgressEvent
        Stage ``"partners"``.

    Returns
    -------
    pandas.DataFrame
        `postprocessing.partners.PARTNER_COLUMNS`, positions in nm on the
        prediction's grid, sorted by post-site.

    Raises
    ------
    OptionError
        The recipe is not a partner recipe, or the voxel size is missing.
    """
    import pandas as pd

    from postprocessing.partners import extract_partners, partner_grid, sort_partners

    from .api import _digest, prediction_source
    from .distributed.executors import SerialExecutor
    from .distributed.markers import DoneMarkers
    from .runner.blockjobs import PartnerJob, partner_table

    name, params, context_nm, _ = _recipe_of(model, recipe, params)
    if not is_partner_recipe(name):
        raise OptionError("model", f"recipe {name!r} does not make partner tables; partner recipes: "
                                   "synful_partners, polarity_partners")
    arr, voxel_size_nm = prediction_source(prediction, voxel_size_nm)
    if voxel_size_nm is None:
        raise OptionError("voxel_size_nm", "required: the prediction's voxel size in nm per spatial axis")
    vs = tuple(float(v) for v in voxel_size_nm)
    shape = tuple(arr.shape[1:])
    if len(vs) != 3 or len(shape) != 3:
        raise OptionError("voxel_size_nm", f"partner recipes need 3D predictions (C, Z, Y, X) and a (z, y, x) "
                                           f"voxel size; got shape {tuple(arr.shape)}, voxel size {vs}")
    if int(np.prod(arr.shape)) <= in_memory_voxels:
        yield ProgressEvent("partners", 0, 1)
        table = extract_partners(name, np.asarray(arr[...], np.float32), vs, params, neurons=neurons)
        yield ProgressEvent("partners", 1, 1)
        return table
    block = tuple(min(int(b), s) for b, s in zip(block_shape or POSTPROCESS_BLOCK, shape))
    grid = partner_grid(name, params, shape, vs, block, context_nm)
    executor = executor or SerialExecutor()
    if neurons is not None and getattr(executor, "name", "serial") != "serial":
        neurons = _neurons_for_workers(neurons, work, grid.block_shape)
    markers = DoneMarkers(markers_root, "partners") if markers_root is not None else None
    found = markers.payloads() if (markers is not None and resume) else {}
    total = len(grid)
    job = PartnerJob(key="partners-" + _digest(name, params, shape, grid.block_shape, grid.context), recipe=name,
                     params=dict(params or {}), voxel_size_nm=vs, grid=grid, prediction=arr, neurons=neurons,
                     markers=markers)
    yield ProgressEvent("partners", len(found), total)
    for group, payloads in executor.run(job, [[b] for b in range(total) if b not in found]):
        found.update(zip(group, payloads))
        yield ProgressEvent("partners", len(found), total)
    return sort_partners(pd.concat([partner_table(found[b]) for b in range(total)], ignore_index=True))


def _neurons_for_workers(neurons, work: Optional[Path], block_shape: Sequence[int]):
    """A segmentation dask workers can read: zarr as it is; anything else copied into ``work``."""
    import zarr

    if isinstance(neurons, zarr.Array):
        return neurons
    if work is None:
        raise OptionError("--cluster", "block-wise partner extraction on a cluster with --neurons needs a work folder")
    path = Path(work) / "neurons.zarr"
    data = np.asarray(neurons[...])
    out = zarr.create_array(store=str(path), shape=data.shape, chunks=tuple(block_shape), dtype=data.dtype,
                            fill_value=0, overwrite=True)
    out[...] = data
    return zarr.open_array(store=str(path), mode="r")


partners = _draining(partners_events)


def write_partner_tables(table, folder, name: str = "partners") -> tuple:
    """Write ``NAME.csv`` and ``NAME.parquet`` into ``folder`` atomically; returns both paths."""
    from .io.atomic import write_atomic

    folder = Path(folder)
    csv = write_atomic(folder / f"{name}.csv", lambda tmp: table.to_csv(tmp, index=False))
    parquet = write_atomic(folder / f"{name}.parquet", lambda tmp: table.to_parquet(tmp, index=False))
    return csv, parquet


def evaluate_partner_files(pred, gt, *, out: Optional[Path] = None, max_distance_nm: float = 400.0,
                           match_on: str = "both", use_neuron_ids: Optional[bool] = None,
                           drop_same_neuron: bool = False, merge_radius_nm: Optional[float] = None,
                           ignore_segment_ids: Sequence[int] = (), neurons_file: Optional[Path] = None,
                           direction: str = "both", sweep: bool = False) -> dict:
    """``synapse-bmz evaluate-partners``: score a predicted against a ground-truth partner table.

    Parameters
    ----------
    pred, gt : path
        Partner tables (.csv, .parquet, .json; `analysis.partner_evaluation.read_partner_table`).
    out : path, optional
        JSON with the scores (and ``pr_curve`` with ``sweep``, ``per_neuron`` with ``neurons_file``).
    neurons_file : path, optional
        Text file of neuron ids (whitespace or comma separated): evaluate neuron by
        neuron over them (``direction``: input, output or both synapses) and sum the counts.
    others
        As in `analysis.partner_evaluation.evaluate_partners`.

    Returns
    -------
    dict
        The scores written to ``out``.

    Raises
    ------
    InputError
        Unreadable tables or neuron list (the message names the file).
    OptionError
        Bad option values.
    """
    from analysis.partner_evaluation import (evaluate_partners, evaluate_partners_per_neuron, partner_pr_curve,
                                             read_partner_table)

    tables = []
    for path in (pred, gt):
        try:
            tables.append(read_partner_table(path))
        except ValueError as e:
            raise InputError(path, str(e).split(": ", 1)[-1]) from None
    options = dict(max_distance_nm=max_distance_nm, match_on=match_on, use_neuron_ids=use_neuron_ids,
                   drop_same_neuron=drop_same_neuron, merge_radius_nm=merge_radius_nm,
                   ignore_segment_ids=list(ignore_segment_ids) or None)
    try:
        if neurons_file is not None:
            try:
                ids = [int(float(t)) for t in Path(neurons_file).read_text().replace(",", " ").split()]
            except (OSError, ValueError) as e:
                raise InputError(neurons_file, f"cannot read neuron ids: {e}") from None
            res = evaluate_partners_per_neuron(*tables, ids, direction=direction, **options)
            result = {k: v for k, v in res.items() if k != "per_neuron"}
            result["per_neuron"] = res["per_neuron"].to_dict("records")
        else:
            result = evaluate_partners(*tables, **options)
        if sweep:
            result["pr_curve"] = partner_pr_curve(*tables, **options).to_dict("records")
    except ValueError as e:
        if isinstance(e, InputError):
            raise
        raise OptionError("evaluate-partners", str(e)) from None
    result = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in result.items()}
    if out is not None:
        from .io.atomic import write_atomic

        write_atomic(Path(out), lambda tmp: tmp.write_text(json.dumps(result, indent=2, default=int)))
    return result
