"""``synapse-bmz run``: a model package over files or folders, end to end.

For each input: read lazily with its voxel size, view it on the model's
training grid, compute whole-volume statistics, predict tile by tile into a
zarr store, apply the package's postprocessing recipe, measure the objects,
and move the finished output folder into place (nothing half-written is
left under the final name).
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from .. import __version__
from ..errors import InputError, OutputError
from ..zoo.registry import LoadedModel, load_model
from .predict import make_plan, predict_into
from .resample import ResampledView, labels_to_grid
from .session import ModelSession
from .statistics import volume_statistics

LABEL_FORMATS = ("tif", "zarr", "mrc", "h5", "npy")
# predictions up to this many voxels are postprocessed in memory; larger ones block-wise
IN_MEMORY_POSTPROCESS_VOXELS = 1 << 28


@dataclass
class RunOptions:
    """Options of ``synapse-bmz run``; sizes per spatial axis in voxels, (z, y, x) order."""

    tile: Optional[Sequence[int]] = None
    halo: Optional[Sequence[int]] = None
    device: Optional[str] = None
    batch_size: Optional[int] = None
    voxel_size_nm: Optional[Sequence[float]] = None
    postprocess: bool = True
    label_format: str = "tif"
    weight_format: Optional[str] = None
    overwrite: bool = False
    progress: bool = True
    memory_budget_bytes: Optional[float] = None
    recipe_params: Dict[str, object] = field(default_factory=dict)


@dataclass
class RunResult:
    """Where one input's outputs went and what was found."""

    input: str
    output_dir: Path
    prediction: Path
    labels: Optional[Path]
    table: Optional[Path]
    n_objects: Optional[int]
    voxels: int
    predict_s: float
    total_s: float


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def output_dir_for(out_root: Path, input_path: str) -> Path:
    """``OUT/<input name without extension>``; h5 keys become ``name_key``."""
    base, _, key = str(input_path).partition(".h5:") if ".h5:" in str(input_path) else (str(input_path), "", "")
    name = Path(base.rstrip("/")).name
    for suffix in (".ome.zarr", ".ome.tif", ".ome.tiff", ".zarr", ".mrc", ".rec", ".tif", ".tiff", ".h5", ".hdf5", ".npy", ".png"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    if key:
        name = f"{name}_{key.strip('/').replace('/', '_')}"
    return out_root / name


def _check_dims(volume, session: ModelSession) -> None:
    nd = len(session.layout.spatial)
    if volume.data.ndim < nd:
        raise InputError(volume.path, f"model {session.model.name} needs a {nd}D ({', '.join(session.layout.spatial)}) "
                                      f"volume, got a {volume.data.ndim}D image of shape {tuple(volume.data.shape)}")
    if volume.data.ndim > 3:
        raise InputError(volume.path, f"expected a 2D or 3D image, got shape {tuple(volume.data.shape)}")


def _scale_factors(volume, session: ModelSession) -> tuple:
    """Model-grid voxels per input voxel, per input axis (1 on axes the model does not see)."""
    model_vs = session.layout.voxel_size_nm
    nd = len(session.layout.spatial)
    factors = [1.0] * volume.data.ndim
    if model_vs is None:
        return tuple(factors)
    for i in range(nd):
        ax = volume.data.ndim - nd + i
        f = float(volume.voxel_size_nm[ax]) / float(model_vs[i])
        # within 5 % the network does not care, and resampling would only blur
        factors[ax] = 1.0 if abs(f - 1.0) < 0.05 else f
    return tuple(factors)


def run_one(session: ModelSession, input_path: str, out_root: Path, options: RunOptions) -> RunResult:
    """Run one input through the session; see the module docstring for the steps."""
    from ..io import atomic_output, create_zarr_output, read_volume

    t_start = time.perf_counter()
    _make_output_root(Path(out_root))
    out_dir = output_dir_for(Path(out_root), input_path)
    if out_dir.exists() and not options.overwrite:
        raise OutputError(f"{out_dir}: output exists (pass --overwrite to replace it)")
    volume = read_volume(input_path, options.voxel_size_nm)
    _check_dims(volume, session)
    factors = _scale_factors(volume, session)
    data = volume.data if all(f == 1.0 for f in factors) else ResampledView(volume.data, factors)
    model_grid_vs = tuple(v / f for v, f in zip(volume.voxel_size_nm, factors))
    stats = volume_statistics(volume.data, volume.path)
    session.set_statistics(stats)
    device = session.device
    plan = make_plan(session, data.shape, device=device, tile=options.tile, halo=options.halo,
                     batch_size=options.batch_size, budget_bytes=options.memory_budget_bytes)
    model = session.model
    cfg = model.config
    channels = session.output_channels
    provenance = {
        "synapse_bmz_version": __version__,
        "model": model.name,
        "rdf": str(model.rdf_path),
        "weights_sha256": model.weights_sha256,
        "weight_format": session.weight_format,
        "device": device,
        "input": str(input_path),
        "input_shape": list(volume.data.shape),
        "input_voxel_size_nm": list(volume.voxel_size_nm),
        "model_grid_voxel_size_nm": list(model_grid_vs),
        "normalisation": {"mean": stats.mean, "std": stats.std, "scope": "whole volume"},
        "tile_plan": asdict(plan),
        "channels": channels,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    with atomic_output(out_dir) as tmp:
        tmp.mkdir()
        pred_path = tmp / "prediction.ome.zarr"
        axes = "c" + "zyx"[-data.ndim:]
        chunks = (len(channels),) + tuple(min(n, c) for n, c in zip(data.shape, (32, 256, 256)[-data.ndim:]))
        pred = create_zarr_output(pred_path, (len(channels),) + tuple(data.shape), "float32", chunks,
                                  model_grid_vs, axes=axes, attrs={**provenance, "kind": "prediction"})
        t0 = time.perf_counter()
        predict_into(session, data, pred, plan, progress=options.progress)
        predict_s = time.perf_counter() - t0
        labels_name = table_name = None
        n_objects = None
        if options.postprocess and cfg is not None and cfg.postprocessing is not None:
            labels_name, table_name, n_objects = _postprocess(
                pred, cfg, session, volume, factors, model_grid_vs, tmp, options, provenance)
        provenance["predict_s"] = round(predict_s, 3)
        (tmp / "provenance.json").write_text(json.dumps(provenance, indent=2))
    return RunResult(
        input=str(input_path), output_dir=out_dir, prediction=out_dir / "prediction.ome.zarr",
        labels=out_dir / labels_name if labels_name else None,
        table=out_dir / table_name if table_name else None, n_objects=n_objects,
        voxels=int(np.prod(volume.data.shape)), predict_s=predict_s,
        total_s=time.perf_counter() - t_start,
    )


def _postprocess(pred, cfg, session, volume, factors, model_grid_vs, tmp: Path, options: RunOptions, provenance):
    """Apply the package's recipe, map labels to the input grid, write labels and the object table."""
    from analysis.morphology import object_table
    from postprocessing.recipes import apply_recipe

    from ..io import write_volume

    recipe = cfg.postprocessing.recipe
    params = {**cfg.postprocessing.params, **options.recipe_params}
    nd = len(session.layout.spatial)
    model_vs = tuple(model_grid_vs[-nd:])
    shape = tuple(pred.shape[1:])
    if len(shape) > nd:
        # a 2D model on a stack: sections were predicted independently, so are their instances
        labels = np.zeros(shape, np.uint32)
        offset = 0
        for z in range(shape[0]):
            lab = apply_recipe(recipe, np.asarray(pred[:, z]), model_vs, params).astype(np.uint32)
            labels[z] = np.where(lab > 0, lab + offset, 0)
            offset = int(labels[z].max()) or offset
    elif int(np.prod(pred.shape)) <= IN_MEMORY_POSTPROCESS_VOXELS:
        labels = apply_recipe(recipe, np.asarray(pred[...]), model_vs, params).astype(np.uint32)
    else:
        from postprocessing.blockwise import apply_recipe_blockwise

        from ..io import create_zarr_output

        lab_store = create_zarr_output(tmp / "labels_model_grid.ome.zarr", shape, "uint32", None, model_grid_vs,
                                       axes="zyx"[-len(shape):])
        apply_recipe_blockwise(recipe, pred, model_vs, params, lab_store,
                               block_shape=tuple(min(s, 256) for s in shape), halo=tuple(session.layout.halo))
        labels = np.asarray(lab_store[...])
    labels = labels_to_grid(labels, volume.data.shape, factors)
    provenance["postprocessing"] = {"recipe": recipe, "params": params}
    fmt = options.label_format
    if fmt not in LABEL_FORMATS:
        raise OutputError(f"--format {fmt}: unknown label format (choose from {', '.join(LABEL_FORMATS)})")
    labels_name = f"{cfg.task}.{fmt}" if fmt != "zarr" else f"{cfg.task}.ome.zarr"
    write_volume(tmp / labels_name, labels, volume.voxel_size_nm, metadata={**provenance, "kind": "instances"})
    raw = None
    if int(np.prod(volume.data.shape)) <= IN_MEMORY_POSTPROCESS_VOXELS:
        raw = np.asarray(volume.data[...])
    if labels.ndim > nd:
        table = _per_section_table(labels, tuple(volume.voxel_size_nm), raw)
    else:
        table = object_table(labels, tuple(volume.voxel_size_nm), raw=raw)
    table_name = f"{cfg.task}.csv"
    table.to_csv(tmp / table_name, index=False)
    return labels_name, table_name, int(len(table))


def _make_output_root(out_root: Path) -> None:
    try:
        out_root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{out_root}: cannot create output folder: {e.strerror or e}") from None


def _per_section_table(labels: np.ndarray, voxel_size_nm: tuple, raw):
    """Objects of a 2D model on a stack are 2D profiles: measure each section in 2D
    (``area_nm2``) and record its ``section`` and ``centroid_z_nm``."""
    import pandas as pd

    from analysis.morphology import object_table

    tables = []
    for z in range(labels.shape[0]):
        if not labels[z].any():
            continue
        t = object_table(labels[z], voxel_size_nm[1:], raw=None if raw is None else raw[z])
        t.insert(1, "section", z)
        t.insert(2, "centroid_z_nm", z * voxel_size_nm[0])
        tables.append(t)
    return pd.concat(tables, ignore_index=True) if tables else object_table(labels[0], voxel_size_nm[1:])


def run(model_source, inputs: Sequence[str], out_root: Path, options: Optional[RunOptions] = None) -> List[RunResult]:
    """Run a model package on files or folders of files.

    Parameters
    ----------
    model_source : str, Path or LoadedModel
        Package name, folder, zip or RDF path.
    inputs : sequence of str
        Files (``file.h5:key`` allowed) or folders; folders expand with
        `synapse_bmz.io.list_inputs`.
    out_root : Path
        One sub-folder per input is written here.
    options : RunOptions

    Returns
    -------
    list of RunResult
    """
    from ..io import list_inputs

    options = options or RunOptions()
    out_root = Path(out_root)
    _make_output_root(out_root)
    expanded: List[str] = []
    for item in inputs:
        expanded.extend(str(p) for p in list_inputs(item))
    model = model_source if isinstance(model_source, LoadedModel) else load_model(model_source)
    session = ModelSession(model, options.device or default_device(), options.weight_format)
    return [run_one(session, p, out_root, options) for p in expanded]
