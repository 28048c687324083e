"""The array API every front end calls: ``predict`` and ``segment``.

Arrays in (numpy, dask, zarr, xarray, or a file), an `xarray.DataArray`
prediction and instance labels out. Nothing touches the file system unless
an output store is given. Each function is a plain wrapper that drains a
generator (``predict_events`` / ``segment_events``) yielding
`ProgressEvent` s, so GUIs and services show progress and cancel by closing
the generator (stardist's ``_predict_instances_generator`` pattern)::

    gen = predict_events("vesicles_2d", image, voxel_size_nm=(5.0, 5.0, 5.0))
    for event in gen:
        print(event.stage, event.done, event.total)   # or gen.close() to cancel
    # the generator's return value is the result; predict() does all of this

The same block jobs run serially here or on a dask cluster (``executor=``,
see `synapse_bmz.distributed`); with ``markers=`` finished blocks are
recorded so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Generator, Optional, Sequence, Tuple

import numpy as np

from .errors import InputError, OptionError

__all__ = ["ProgressEvent", "SegmentResult", "FileInput", "load_session", "predict", "predict_events",
           "segment", "segment_events", "measure", "drain"]

#: Predictions up to this many voxels (all channels) are postprocessed in memory.
IN_MEMORY_VOXELS = 1 << 28
#: Block shape of block-wise postprocessing, per spatial axis (voxels).
POSTPROCESS_BLOCK = (128, 512, 512)


@dataclass(frozen=True)
class ProgressEvent:
    """``stage`` (``"statistics"``, ``"predict"``, ``"label"``, ``"relabel"``, ``"measure"``):
    ``done`` of ``total`` units (blocks) finished."""

    stage: str
    done: int
    total: int

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


@dataclass
class SegmentResult:
    """Instances from a prediction.

    Attributes
    ----------
    labels : ndarray or zarr.Array, shape ([Z,] Y, X), uint32
        0 = background, 1..N.
    table : pandas.DataFrame or None
        One row per object (``label``, centroids and sizes in nm), when asked for.
    recipe : str
    params : dict
        Recipe parameters used (sizes in nm).
    voxel_size_nm : tuple of float
    object_size_check : dict or None
        `synapse_bmz.zoo.object_sizes.object_size_check` of the table against
        the package's expected object sizes (its ``message`` says when the
        voxel size may be wrong); None without a table or a package.
    """

    labels: Any
    table: Any
    recipe: str
    params: Dict[str, Any]
    voxel_size_nm: Tuple[float, ...]
    object_size_check: Optional[Dict[str, Any]] = None

    @property
    def n_objects(self) -> int:
        return int(len(self.table)) if self.table is not None else int(np.asarray(self.labels).max(initial=0))


def drain(gen: Generator):
    """Run a progress generator to the end and return its result."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def _draining(events_fn):
    @functools.wraps(events_fn)
    def wrapper(*args, **kwargs):
        return drain(events_fn(*args, **kwargs))

    wrapper.__doc__ = (f"Plain call of `{events_fn.__name__}` (same arguments): drains its progress "
                       f"events and returns the result.\n\n" + (events_fn.__doc__ or ""))
    return wrapper


@dataclass(frozen=True)
class FileInput:
    """A volume file opened lazily where it is used (each dask worker opens its own).

    Parameters
    ----------
    path : str
        Anything `synapse_bmz.io.read_volume` reads (``file.h5:key`` included).
    voxel_size_nm : tuple of float, optional
        Overrides the file's voxel size (nm, (z, y, x) or (y, x)).
    factors : tuple of float, optional
        Model-grid voxels per input voxel; the opened array is then a
        resampled view on the model grid.
    """

    path: str
    voxel_size_nm: Optional[Tuple[float, ...]] = None
    factors: Optional[Tuple[float, ...]] = None

    def volume(self):
        from .io import read_volume

        return read_volume(self.path, self.voxel_size_nm)

    def open(self):
        data = self.volume().data
        if self.factors is not None and any(f != 1.0 for f in self.factors):
            from .runner.resample import ResampledView

            data = ResampledView(data, self.factors)
        return data


def check_device(device: Optional[str]) -> str:
    """``cuda``/``cuda:N``/``cpu`` checked against this machine; default cuda if present."""
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise OptionError("--device", f"{device}: CUDA is not available on this machine (use --device cpu)")
        index = int(device.partition(":")[2] or 0) if device.partition(":")[2].isdigit() or device == "cuda" else -1
        if not 0 <= index < torch.cuda.device_count():
            raise OptionError("--device", f"{device}: no such GPU (this machine has {torch.cuda.device_count()})")
        return device
    raise OptionError("--device", f"{device!r} is not cpu, cuda or cuda:N")


def load_session(model, *, device: Optional[str] = None, weight_format: Optional[str] = None):
    """A `ModelSession` from a package name, folder, zip, RDF path, `LoadedModel` or session."""
    from .runner.session import ModelSession
    from .zoo.registry import LoadedModel, load_model

    if isinstance(model, ModelSession):
        return model
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    return ModelSession(loaded, check_device(device), weight_format)


def _input_and_voxel_size(image, voxel_size_nm):
    """(array, voxel size nm, name, FileInput or None) of any accepted input."""
    from .io import Volume
    from .io._units import checked_voxel_size

    if isinstance(image, (str, Path)):
        image = FileInput(str(image), tuple(voxel_size_nm) if voxel_size_nm is not None else None)
    if isinstance(image, FileInput):
        vol = image.volume()
        return vol.data, tuple(vol.voxel_size_nm), vol.path, image
    if isinstance(image, Volume):
        return image.data, tuple(voxel_size_nm or image.voxel_size_nm), image.path, None
    name = "image"
    if hasattr(image, "dims") and hasattr(image, "attrs"):  # xarray.DataArray
        if voxel_size_nm is None:
            voxel_size_nm = image.attrs.get("voxel_size_nm")
        image = image.data
    if not hasattr(image, "shape") or not hasattr(image, "__getitem__"):
        raise InputError(name, f"expected a numpy, dask or zarr array, a Volume or a file, got {type(image).__name__}")
    if voxel_size_nm is None:
        raise OptionError("voxel_size_nm", "required for arrays: the voxel size in nm per axis, (z, y, x) or (y, x)")
    return image, checked_voxel_size(name, voxel_size_nm, len(image.shape), source="voxel_size_nm"), name, None


def _check_dims(shape, session, name) -> None:
    nd = len(session.layout.spatial)
    if len(shape) < nd:
        raise InputError(name, f"model {session.model.name} needs a {nd}D ({', '.join(session.layout.spatial)}) "
                               f"volume, got a {len(shape)}D image of shape {tuple(shape)}")
    if len(shape) > 3:
        raise InputError(name, f"expected a 2D or 3D image, got shape {tuple(shape)}")


def scale_factors(shape, voxel_size_nm, session) -> Tuple[float, ...]:
    """Model-grid voxels per input voxel, per input axis (1 on axes the model does not see)."""
    model_vs = session.layout.voxel_size_nm
    nd = len(session.layout.spatial)
    factors = [1.0] * len(shape)
    if model_vs is None:
        return tuple(factors)
    for i in range(nd):
        ax = len(shape) - nd + i
        f = float(voxel_size_nm[ax]) / float(model_vs[i])
        # within 5 % the network does not care, and resampling would only blur
        factors[ax] = 1.0 if abs(f - 1.0) < 0.05 else f
    return tuple(factors)


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _open_or_create(out, shape, chunks, voxel_size_nm, axes, attrs, dtype="float32", resume=False):
    """The output array: in memory (None), a new/resumed OME-Zarr store at a path, or the caller's array."""
    if out is None:
        return np.zeros(shape, dtype)
    if isinstance(out, (str, Path)):
        import zarr

        from .errors import OutputError
        from .io import create_zarr_output

        path = Path(out)
        if path.exists() and resume:
            arr = zarr.open_array(store=str(path), path="0", mode="r+")
            if tuple(arr.shape) != tuple(shape) or tuple(arr.chunks) != tuple(chunks):
                raise OutputError(f"{path}: cannot resume: the store has shape {arr.shape} chunks {arr.chunks}, "
                                  f"this run needs {tuple(shape)} chunks {tuple(chunks)}")
            return arr
        return create_zarr_output(path, shape, dtype, chunks, voxel_size_nm, axes=axes, attrs=attrs)
    if tuple(out.shape) != tuple(shape):
        raise OptionError("out", f"has shape {tuple(out.shape)}, the prediction needs {tuple(shape)}")
    return out


def predict_events(model, image, voxel_size_nm: Optional[Sequence[float]] = None, *,
                   tile: Optional[Sequence[int]] = None, halo: Optional[Sequence[int]] = None,
                   device: Optional[str] = None, batch_size: Optional[int] = None,
                   weight_format: Optional[str] = None, memory_budget_bytes: Optional[float] = None,
                   out=None, out_attrs: Optional[dict] = None, markers=None, resume: bool = False,
                   executor=None, threads_per_worker: Optional[int] = None,
                   test_time_augmentation: Optional[str] = None):
    """Predict a volume with a model package, block by block, yielding progress.

    Parameters
    ----------
    model : str, Path, LoadedModel or ModelSession
        Package name, folder, zip or RDF; a session is reused (weights stay loaded).
    image : array-like ([Z,] Y, X), xarray.DataArray, Volume, FileInput or path
        Raw intensities. numpy, dask and zarr arrays are read block by block.
    voxel_size_nm : sequence of float, optional
        nm per axis, (z, y, x) or (y, x); required for bare arrays (a
        DataArray may carry ``attrs["voxel_size_nm"]``, files their header).
        The volume is viewed on the model's training grid when they differ.
    tile, halo : sequence of int, optional
        Network input size / context per model spatial axis (voxels, model
        grid). Halos below the package's minimum and tiles without room for
        it are refused (`OptionError`).
    device : str, optional
        ``cpu``, ``cuda``, ``cuda:N`` (default: cuda if present).
    batch_size : int, optional
        Tiles per forward pass.
    out : None, str/Path or array-like
        None: an in-memory numpy result. A path: a new OME-Zarr store
        (chunks = the tiles' write regions), or the existing one with
        ``resume``. An array: written in place, shape ``(C, *model-grid shape)``.
    out_attrs : dict, optional
        Extra metadata for a new store.
    markers : DoneMarkers, optional
        Records finished blocks; with ``resume`` they are skipped.
    executor : SerialExecutor or DaskExecutor, optional
        Where the blocks run (default: serially in this process). A dask
        executor needs a file input (path/FileInput) or a zarr array and a
        zarr output store.
    threads_per_worker : int, optional
        Torch threads per dask worker.
    test_time_augmentation : {"none", "flips"}, optional
        ``flips``: each tile's prediction averaged over its 4 in-plane mirror
        images (`synapse_bmz.runner.flips`, 4x the compute). Default: the
        package's ``config.synapse_bmz.test_time_augmentation``.

    Yields
    ------
    ProgressEvent
        ``statistics`` once, then ``predict`` per finished batch of tiles.

    Returns
    -------
    xarray.DataArray, dims ``("c", "z", "y", "x")`` or ``("c", "y", "x")``
        float32 model output on the model grid. Coordinates: ``c`` = channel
        names, spatial axes in nm. ``attrs``: ``voxel_size_nm`` (model grid),
        ``input_voxel_size_nm``, ``scale_factors``, ``model``, ``weights_sha256``,
        ``weight_format``, ``normalisation``, ``tile_plan``, ``test_time_augmentation``,
        ``blocks_computed``. Backed by dask over the store when ``out`` is a store.
    """
    from .distributed.executors import SerialExecutor
    from .runner.flips import checked_tta
    from .runner.predict import PredictJob, batch_groups, make_plan
    from .runner.resample import ResampledView
    from .runner.statistics import volume_statistics
    from .runner.tiling import tile_grid

    session = load_session(model, device=device, weight_format=weight_format)
    tta = session.test_time_augmentation if test_time_augmentation is None else checked_tta(
        test_time_augmentation, "test_time_augmentation")
    data, vs, name, file_input = _input_and_voxel_size(image, voxel_size_nm)
    _check_dims(data.shape, session, name)
    factors = scale_factors(data.shape, vs, session)
    yield ProgressEvent("statistics", 0, 1)
    stats = volume_statistics(data, name)
    yield ProgressEvent("statistics", 1, 1)
    grid_data = data if all(f == 1.0 for f in factors) else ResampledView(data, factors)
    shape = tuple(grid_data.shape)
    model_vs = tuple(v / f for v, f in zip(vs, factors))
    nd = len(session.layout.spatial)
    plan = make_plan(session, shape, device=session.device, tile=tile, halo=halo,
                     batch_size=batch_size, budget_bytes=memory_budget_bytes)
    grid = tile_grid(shape, nd, plan)
    channels = session.output_channels
    axes = "c" + "zyx"[-len(shape):]
    out_shape = (len(channels),) + shape
    chunks = (len(channels),) + grid.block_shape
    info = {
        "model": session.model.name,
        "rdf": str(session.model.rdf_path),
        "weights_sha256": session.model.weights_sha256,
        "weight_format": session.weight_format,
        "device": session.device,
        "input_shape": list(data.shape),
        "input_voxel_size_nm": list(vs),
        "scale_factors": list(factors),
        "normalisation": {"mean": stats.mean, "std": stats.std, "scope": "whole volume"},
        "tile_plan": asdict(plan),
        "test_time_augmentation": tta,
        "channels": channels,
    }
    arr = _open_or_create(out, out_shape, chunks, model_vs, axes, {**info, **(out_attrs or {}), "kind": "prediction"},
                          resume=resume)
    executor = executor or SerialExecutor()
    distributed = getattr(executor, "name", "serial") != "serial"
    if distributed and isinstance(arr, np.ndarray):
        raise OptionError("--cluster", "a cluster run writes into a zarr store: give an output path")
    if file_input is not None and distributed:
        source = FileInput(file_input.path, file_input.voxel_size_nm, factors)
    else:
        source = grid_data
    done = markers.done() if (markers is not None and resume) else set()
    groups = batch_groups(grid, plan.batch_size, skip=done)
    # a plain pass keeps the key it had before test-time augmentation existed (stores resume across versions)
    key = "predict-" + _digest(info["rdf"], info["weights_sha256"], name, shape, asdict(plan), stats.mean, stats.std,
                               *(() if tta == "none" else (tta,)))
    job = PredictJob(key=key, model_rdf=str(session.model.rdf_path), device=session.device,
                     weight_format=session.weight_format, stats=stats, plan=plan, shape=shape, source=source,
                     out=arr, markers=markers, threads=threads_per_worker, session=None if distributed else session,
                     test_time_augmentation=tta)
    total, finished = len(grid), len(done)
    yield ProgressEvent("predict", finished, total)
    for group, _ in executor.run(job, groups):
        finished += len(group)
        yield ProgressEvent("predict", finished, total)
    info.update(voxel_size_nm=list(model_vs), blocks_total=total, blocks_computed=total - len(done))
    if isinstance(out, (str, Path)):
        info["store"] = str(out)
    return _as_dataarray(arr, channels, model_vs, {**info, **(out_attrs or {})})


def _as_dataarray(arr, channels, voxel_size_nm, attrs):
    import xarray as xr

    dims = ("c",) + tuple("zyx"[-(arr.ndim - 1):])
    if not isinstance(arr, np.ndarray):
        try:
            import dask.array as da

            arr = da.from_zarr(arr)
        except ImportError:  # without dask the store is read into memory
            arr = np.asarray(arr[...])
    coords = {"c": list(channels)}
    for d, n, v in zip(dims[1:], arr.shape[1:], voxel_size_nm):
        coords[d] = np.arange(n) * float(v)
    return xr.DataArray(arr, dims=dims, coords=coords, attrs=dict(attrs))


predict = _draining(predict_events)


def _recipe_of(model, recipe, params):
    """(recipe name, params, context_nm, model spatial ndim or None) from a model or a recipe name."""
    cfg_params, context, nd = {}, None, None
    if recipe is None:
        session = load_session(model)
        cfg = session.model.config
        if cfg is None or cfg.postprocessing is None:
            raise OptionError("model", f"{session.model.name} has no postprocessing recipe "
                                       "(config.synapse_bmz.postprocessing)")
        recipe = cfg.postprocessing.recipe
        cfg_params = dict(cfg.postprocessing.params)
        context = getattr(cfg.postprocessing, "context_nm", None)
        nd = len(session.layout.spatial)
    return recipe, {**cfg_params, **(params or {})}, context, nd


def prediction_source(prediction, voxel_size_nm=None):
    """The array blocks read from, and the voxel size, of a prediction.

    Parameters
    ----------
    prediction : xarray.DataArray or array-like
        (C, [Z,] Y, X). A DataArray from `predict` whose ``attrs["store"]`` names its OME-Zarr
        store is read from that store's level ``0`` directly, so workers get a plain zarr array
        and no dask graph.
    voxel_size_nm : sequence of float, optional
        Overrides the DataArray's ``attrs["voxel_size_nm"]``; nm per spatial axis, (z, y, x).

    Returns
    -------
    (array-like, tuple of float or None)
    """
    if not (hasattr(prediction, "dims") and hasattr(prediction, "attrs")):
        return prediction, voxel_size_nm
    if voxel_size_nm is None:
        voxel_size_nm = prediction.attrs.get("voxel_size_nm")
    if prediction.attrs.get("store"):
        import zarr

        return zarr.open_array(store=prediction.attrs["store"], path="0", mode="r"), voxel_size_nm
    return prediction.data, voxel_size_nm


def segment_events(model, prediction, *, voxel_size_nm: Optional[Sequence[float]] = None,
                   params: Optional[dict] = None, recipe: Optional[str] = None, out=None,
                   work=None, markers_root=None, resume: bool = False, executor=None,
                   in_memory_voxels: int = IN_MEMORY_VOXELS, block_shape: Optional[Sequence[int]] = None,
                   table: bool = True, raw=None):
    """Instances from a prediction with the package's postprocessing recipe, yielding progress.

    Parameters
    ----------
    model : str, Path, LoadedModel or ModelSession, or None with ``recipe``
        Supplies the recipe (``config.synapse_bmz.postprocessing``), its
        parameters and whether the model is 2D (then sections of a stack are
        segmented independently).
    prediction : xarray.DataArray or array-like, shape (C, [Z,] Y, X)
        Channel-first probabilities (from `predict`; its voxel size is taken
        from ``attrs``), numpy, dask or zarr.
    voxel_size_nm : sequence of float, optional
        Of the prediction's spatial axes (nm), if not in its attrs.
    params : dict, optional
        Override recipe parameters (sizes in nm).
    recipe : str, optional
        Recipe name, instead of the model's.
    out : None, or writable array-like of the spatial shape (uint32)
        Where the labels go (a zarr array for large volumes).
    work : None or str/Path
        Folder for the block-wise intermediate (anchor ids, zarr); in memory
        if None.
    markers_root : str or Path, optional
        Done markers of the block-wise stages (resume with ``resume``).
    executor : optional
        As in `predict_events`; block-wise stages run on it.
    in_memory_voxels : int
        Predictions with at most this many voxels (all channels) are
        segmented whole; larger ones block by block with the recipe's declared
        context (``postprocessing.recipes.recipe_context_nm``) and a global
        relabel, so ids are 1..N in raster order of each object's first voxel
        whatever the executor.
    block_shape : sequence of int, optional
        Block size of the block-wise path (default `POSTPROCESS_BLOCK`).
    table : bool
        Also measure every object (`measure`).
    raw : array-like, optional
        Raw intensities on the same grid, for intensity columns.

    Yields
    ------
    ProgressEvent

    Returns
    -------
    SegmentResult
    """
    from postprocessing.recipes import apply_recipe

    from .distributed.executors import SerialExecutor

    recipe, params, context_nm, model_nd = _recipe_of(model, recipe, params)
    arr, voxel_size_nm = prediction_source(prediction, voxel_size_nm)
    if voxel_size_nm is None:
        raise OptionError("voxel_size_nm", "required: the prediction's voxel size in nm per spatial axis")
    shape = tuple(arr.shape[1:])
    vs = tuple(float(v) for v in voxel_size_nm)
    if len(vs) != len(shape):
        raise OptionError("voxel_size_nm", f"{vs} needs one entry per spatial axis of shape {shape}")
    nd = model_nd or len(shape)
    rvs = vs[-nd:]
    n_voxels = int(np.prod(arr.shape))
    if n_voxels <= in_memory_voxels:
        yield ProgressEvent("label", 0, 1)
        pred = np.asarray(arr[...], dtype=np.float32)
        if len(shape) > nd:
            from postprocessing.blockwise import _labels_of_region

            labels = _labels_of_region(recipe, pred, rvs, params).astype(np.uint32)
        else:
            labels = apply_recipe(recipe, pred, rvs, params)
        if out is not None:
            out[...] = labels
            labels = out
        yield ProgressEvent("label", 1, 1)
    else:
        labels = yield from _segment_blockwise(recipe, params, context_nm, arr, shape, rvs, out, work,
                                               markers_root, resume, executor or SerialExecutor(), block_shape)
    tab = None
    if table:
        yield ProgressEvent("measure", 0, 1)
        tab = measure(np.asarray(labels[...]), vs, raw=None if raw is None else np.asarray(raw[...]),
                      per_section=len(shape) > nd)
        yield ProgressEvent("measure", 1, 1)
    size_check = None
    if tab is not None and model is not None:
        from .zoo.object_sizes import object_size_check

        size_check = object_size_check(load_session(model).model.config, tab, vs, params)
    return SegmentResult(labels=labels, table=tab, recipe=recipe, params=params, voxel_size_nm=vs,
                         object_size_check=size_check)


segment = _draining(segment_events)


def _segment_blockwise(recipe, params, context_nm, arr, shape, rvs, out, work, markers_root, resume,
                       executor, block_shape):
    from postprocessing.blockwise import recipe_grid

    from .distributed.markers import DoneMarkers
    from .runner.blockjobs import LabelJob, RelabelJob

    if block_shape is None:
        block_shape = POSTPROCESS_BLOCK[-len(shape):]
    block_shape = tuple(min(int(b), s) for b, s in zip(np.broadcast_to(block_shape, (len(shape),)), shape))
    if recipe == "ribbon":
        # one structure per volume: exact global passes of its own, in this process
        from postprocessing.blockwise import apply_recipe_blockwise

        labels = out if out is not None else np.zeros(shape, np.uint32)
        yield ProgressEvent("label", 0, 1)
        apply_recipe_blockwise(recipe, arr, rvs, params, labels, block_shape)
        yield ProgressEvent("label", 1, 1)
        return labels
    grid = recipe_grid(recipe, params, shape, rvs, block_shape, context_nm)
    distributed = getattr(executor, "name", "serial") != "serial"
    if work is not None:
        import zarr

        path = Path(work) / "anchors.zarr"
        if path.exists() and resume:
            anchors_arr = zarr.open_array(store=str(path), mode="r+")
        else:
            anchors_arr = zarr.create_array(store=str(path), shape=shape, chunks=grid.block_shape,
                                            dtype="int64", fill_value=0, overwrite=True)
    else:
        if distributed:
            raise OptionError("--cluster", "block-wise postprocessing on a cluster needs a work folder")
        anchors_arr = np.zeros(shape, np.int64)
    if out is None:
        if distributed:
            raise OptionError("--cluster", "block-wise postprocessing on a cluster needs an output store")
        out = np.zeros(shape, np.uint32)
    label_markers = DoneMarkers(markers_root, "label") if markers_root is not None else None
    relabel_markers = DoneMarkers(markers_root, "relabel") if markers_root is not None else None
    key = _digest(recipe, params, shape, grid.block_shape, grid.context)
    job = LabelJob(key="label-" + key, recipe=recipe, params=params, voxel_size_nm=rvs, grid=grid,
                   prediction=arr, anchors=anchors_arr, markers=label_markers)
    done = label_markers.done() if (label_markers is not None and resume) else set()
    found = label_markers.payloads() if (label_markers is not None and resume) else {}
    total = len(grid)
    finished = len(done)
    yield ProgressEvent("label", finished, total)
    groups = [[b] for b in range(total) if b not in done]
    for group, result in executor.run(job, groups):
        found[group[0]] = result
        finished += 1
        yield ProgressEvent("label", finished, total)
    anchors = np.unique(np.concatenate([found[b] for b in range(total)])) if total else np.zeros(0, np.int64)
    rjob = RelabelJob(key="relabel-" + key, grid=grid, anchors_in=anchors_arr, table=anchors, out=out,
                      markers=relabel_markers)
    done = relabel_markers.done() if (relabel_markers is not None and resume) else set()
    finished = len(done)
    yield ProgressEvent("relabel", finished, total)
    for group, _ in executor.run(rjob, [[b] for b in range(total) if b not in done]):
        finished += 1
        yield ProgressEvent("relabel", finished, total)
    return out


def measure(labels: np.ndarray, voxel_size_nm: Sequence[float], raw=None, per_section: bool = False):
    """Object table of a label image (`analysis.morphology.object_table`), in nm.

    Parameters
    ----------
    labels : ndarray ([Z,] Y, X) of int
    voxel_size_nm : sequence of float
        nm per axis of ``labels``.
    raw : ndarray, optional
        Same shape; adds intensity columns.
    per_section : bool
        Objects of a 2D model on a stack are 2D profiles: measure each section
        in 2D (``area_nm2``) and record its ``section`` and ``centroid_z_nm``.
    """
    import pandas as pd

    from analysis.morphology import object_table

    vs = tuple(float(v) for v in voxel_size_nm)
    if not per_section:
        return object_table(labels, vs, raw=raw)
    tables = []
    for z in range(labels.shape[0]):
        if tables and not labels[z].any():
            continue
        t = object_table(labels[z], vs[1:], raw=None if raw is None else raw[z])
        t.insert(1, "section", z)
        t.insert(2, "centroid_z_nm", z * vs[0])
        tables.append(t)
    return pd.concat(tables, ignore_index=True)
