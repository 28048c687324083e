"""``synapse-bmz run``: the array API (`synapse_bmz.api`) plus writers, per input file.

For each input: `api.predict` into an OME-Zarr store, `api.segment` with the
package's recipe, labels mapped back to the input grid and written with an
object table and provenance. Everything is written into ``OUT/.NAME.partial/``
and renamed to ``OUT/NAME/`` when complete, so nothing half-written sits under
the final name. The partial folder holds done markers per block: a killed run
started again with ``resume`` recomputes only unfinished blocks; without
``resume`` a stale partial folder is removed before the run starts, so
leftovers never pile up.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import secrets
import shutil
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Union

import numpy as np

from .. import __version__
from ..errors import OptionError, OutputError, SynapseBmzError
from ..io.atomic import process_alive
from ..zoo.object_sizes import ObjectSizeWarning, object_size_check
from ..zoo.registry import LoadedModel, load_model

LABEL_FORMATS = ("tif", "zarr", "mrc", "h5", "npy")
PARTIAL_SUFFIX = ".partial"


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
    #: ``none`` / ``flips`` (`synapse_bmz.runner.flips`); None: the package's default
    test_time_augmentation: Optional[str] = None
    overwrite: bool = False
    progress: bool = True
    memory_budget_bytes: Optional[float] = None
    recipe_params: Dict[str, object] = field(default_factory=dict)
    resume: bool = False
    skip_existing: bool = False
    cluster: Optional[str] = None
    worker_memory: Optional[str] = None
    threads_per_worker: int = 1
    in_memory_voxels: Optional[int] = None
    postprocess_block: Optional[Sequence[int]] = None
    #: neuron segmentation on the input's grid (partner packages): pre_id/post_id, same-neuron pairs
    #: dropped, and the recipe's ``split_by_neuron`` separates the partners of a polyadic synapse
    neurons: Optional[str] = None
    #: how the input is named in ``provenance.json`` and the prediction's attributes (default: its
    #: path); the service gives the name under its data root, so outputs do not reveal its folders
    input_label: Optional[str] = None
    #: how the model is named there in place of its rdf.yaml path (default: the path)
    model_label: Optional[str] = None


@dataclass
class RunResult:
    """Where one input's outputs went and what was found."""

    input: str
    output_dir: Path
    prediction: Optional[Path]
    labels: Optional[Path]
    table: Optional[Path]
    n_objects: Optional[int]
    voxels: int
    predict_s: float
    total_s: float
    skipped: bool = False
    blocks_computed: int = 0
    blocks_total: int = 0
    #: `synapse_bmz.zoo.object_sizes.object_size_check` of the objects found (None without postprocessing);
    #: its ``message`` says when the voxel size may be wrong
    object_size_check: Optional[dict] = None


@dataclass
class RunFailure:
    """One input that failed: a one-line reason."""

    input: str
    message: str
    user_error: bool
    error: Optional[BaseException] = field(default=None, repr=False)


class RunFailed(SynapseBmzError):
    """Some inputs of a folder run failed; the others are complete."""

    def __init__(self, failures: List[RunFailure], n_ok: int):
        self.failures = failures
        super().__init__(f"{len(failures)} of {len(failures) + n_ok} inputs failed")


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


def partial_dir_for(out_dir: Path) -> Path:
    """``OUT/.NAME.partial``: where an unfinished run of ``OUT/NAME`` lives."""
    return out_dir.parent / f".{out_dir.name}{PARTIAL_SUFFIX}"


def _clean_leftovers(out_dir: Path) -> None:
    """Remove hidden temporaries of earlier, killed writes of ``out_dir`` (``.NAME.tmp-*``, ``.NAME.old-*``)."""
    for p in out_dir.parent.glob(f".{out_dir.name}.tmp-*"):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    for p in out_dir.parent.glob(f".{out_dir.name}.old-*"):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def _fingerprint(model: LoadedModel, input_path: str, options: RunOptions) -> dict:
    """What must be equal for a partial run to be resumable."""
    return {
        "input": _stamp(input_path),
        "model": model.name,
        "weights_sha256": model.weights_sha256,
        "tile": list(options.tile) if options.tile else None,
        "halo": list(options.halo) if options.halo else None,
        "batch_size": options.batch_size,
        "voxel_size_nm": list(options.voxel_size_nm) if options.voxel_size_nm else None,
        "weight_format": options.weight_format,
        "test_time_augmentation": options.test_time_augmentation,
        "postprocess": options.postprocess,
        "recipe_params": options.recipe_params,
        "label_format": options.label_format,
        "in_memory_voxels": options.in_memory_voxels,
        "postprocess_block": list(options.postprocess_block) if options.postprocess_block else None,
        "neurons": _stamp(options.neurons) if options.neurons else None,
    }


def _stamp(path: str) -> list:
    from ..io.inputs import locate

    try:
        _, file, _ = locate(path)
        st = file.stat()
        return [str(file.resolve()), st.st_size, int(st.st_mtime)]
    except Exception:  # unreadable inputs fail later with their own message
        return [str(path)]


def _prepare_partial(out_dir: Path, fingerprint: dict, resume: bool) -> tuple:
    """Create (or, with ``resume``, reuse) the partial folder; returns (path, resumed)."""
    partial = partial_dir_for(out_dir)
    _clean_leftovers(out_dir)
    resumed = False
    if partial.exists():
        lock = partial / "lock"
        if lock.exists():
            try:
                pid = int(lock.read_text().strip() or 0)
            except ValueError:
                pid = 0
            if pid and pid != os.getpid() and process_alive(pid):
                raise OutputError(f"{partial}: another run (pid {pid}) is writing this output")
        previous = None
        try:
            previous = json.loads((partial / "run.json").read_text())
        except (OSError, ValueError):
            pass
        if resume and previous == fingerprint:
            resumed = True
        elif resume and previous is not None:
            changed = sorted(k for k in fingerprint if previous.get(k) != fingerprint.get(k))
            raise OptionError("--resume", f"{partial} was started with different {', '.join(changed)}; "
                                          "run without --resume to start over")
        else:
            shutil.rmtree(partial)
    if not resumed:
        partial.mkdir()
        (partial / "run.json").write_text(json.dumps(fingerprint, indent=2))
    (partial / "lock").write_text(str(os.getpid()))
    return partial, resumed


def _finalize(partial: Path, out_dir: Path) -> None:
    """Drop the run's bookkeeping and rename the partial folder onto ``out_dir``."""
    for name in ("blocks", "anchors.zarr", "labels_model_grid.ome.zarr", "run.json", "lock"):
        p = partial / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{secrets.token_hex(4)}"
        os.replace(out_dir, old)
        os.replace(partial, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(partial, out_dir)


class _Progress:
    """A tqdm bar per stage, fed by the API's progress events."""

    def __init__(self, enabled: bool, label: str):
        # bars only on a terminal: logs and pipes get the one summary line per input
        self.enabled = enabled and sys.stderr.isatty()
        self.label, self.bar, self.stage = label, None, None

    def __call__(self, event) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if event.stage != self.stage:
            self.close()
            self.stage = event.stage
            self.bar = tqdm(total=event.total, desc=f"{self.label} {event.stage}", unit="block", file=sys.stderr)
        self.bar.n = event.done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _drive(gen, progress: Callable) -> object:
    try:
        while True:
            try:
                progress(next(gen))
            except StopIteration as stop:
                return stop.value
    finally:
        gen.close()  # a raising callback (cancel) stops the generator's work now, not at garbage collection


def run_one(session, input_path: str, out_root: Path, options: RunOptions, executor=None,
            on_event: Optional[Callable] = None) -> RunResult:
    """Run one input through the session into ``OUT/NAME/`` (see the module docstring).

    ``on_event`` receives every `api.ProgressEvent` (the service records them;
    raising from it, e.g. `Cancelled`, stops the run and keeps finished blocks).
    """
    from .. import api
    from ..distributed.markers import DoneMarkers

    t_start = time.perf_counter()
    out_root = Path(out_root)
    _make_output_root(out_root)
    out_dir = output_dir_for(out_root, input_path)
    if out_dir.exists() and not options.overwrite:
        if options.skip_existing:
            return RunResult(input=str(input_path), output_dir=out_dir, prediction=None, labels=None, table=None,
                             n_objects=None, voxels=0, predict_s=0.0, total_s=0.0, skipped=True)
        raise OutputError(f"{out_dir}: output exists (pass --overwrite to replace it, --skip-existing to keep it)")
    if options.label_format not in LABEL_FORMATS:
        raise OptionError("--format", f"{options.label_format}: unknown label format (choose from {', '.join(LABEL_FORMATS)})")
    model = session.model
    cfg = model.config
    if cfg is not None and cfg.task == "features":
        from ..errors import ModelError

        raise ModelError(f"{model.name}: a feature extractor (output: batch x features), not a segmentation "
                         "network; use `synapse-bmz cluster RAW --synapses TABLE -o OUT`")
    source = api.FileInput(str(input_path), tuple(options.voxel_size_nm) if options.voxel_size_nm else None)
    input_label = options.input_label or str(input_path)
    volume = source.volume()  # reads the header now, so a bad input fails before any folder is made
    neurons = _neurons_for(model, volume, options.neurons) if options.neurons else None
    partial, resumed = _prepare_partial(out_dir, _fingerprint(model, input_path, options), options.resume)
    bar = _Progress(options.progress, out_dir.name)

    def progress(event):
        bar(event)
        if on_event is not None:
            on_event(event)

    progress.close = bar.close
    markers_root = partial / "blocks"
    try:
        t0 = time.perf_counter()
        pred = _drive(api.predict_events(
            session, source, tile=options.tile, halo=options.halo, batch_size=options.batch_size,
            memory_budget_bytes=options.memory_budget_bytes, out=partial / "prediction.ome.zarr",
            out_attrs={"synapse_bmz_version": __version__, "input": input_label,
                       **({"rdf": options.model_label} if options.model_label else {})},
            markers=DoneMarkers(markers_root, "predict"), resume=resumed, executor=executor,
            threads_per_worker=options.threads_per_worker,
            test_time_augmentation=options.test_time_augmentation), progress)
        predict_s = time.perf_counter() - t0
        # the store's path names the unfinished folder (renamed when done): the output's own name instead
        provenance = {"synapse_bmz_version": __version__, **{k: v for k, v in pred.attrs.items() if k != "store"},
                      "input": input_label, "prediction": "prediction.ome.zarr",
                      "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                      "executor": getattr(executor, "name", "serial"), "resumed": resumed}
        labels_name = table_name = None
        n_objects = None
        if options.postprocess and cfg is not None and cfg.postprocessing is not None:
            labels_name, table_name, n_objects = _postprocess(
                session, pred, volume, partial, markers_root, resumed, executor, options, provenance, progress,
                neurons=neurons)
        provenance["predict_s"] = round(predict_s, 3)
        (partial / "provenance.json").write_text(json.dumps(provenance, indent=2, default=str))
    except BaseException:
        # finished blocks stay for --resume; a run that finished none leaves nothing behind
        (partial / "lock").unlink(missing_ok=True)
        if not any(markers_root.rglob("*.npy")):
            shutil.rmtree(partial, ignore_errors=True)
        raise
    finally:
        progress.close()
    _finalize(partial, out_dir)
    return RunResult(
        input=str(input_path), output_dir=out_dir, prediction=out_dir / "prediction.ome.zarr",
        labels=out_dir / labels_name if labels_name else None,
        table=out_dir / table_name if table_name else None, n_objects=n_objects,
        voxels=int(np.prod(volume.data.shape)), predict_s=predict_s,
        total_s=time.perf_counter() - t_start, blocks_computed=int(pred.attrs["blocks_computed"]),
        blocks_total=int(pred.attrs["blocks_total"]),
        object_size_check=provenance.get("object_size_check"),
    )


def _postprocess(session, pred, volume, partial: Path, markers_root: Path, resumed: bool, executor,
                 options: RunOptions, provenance: dict, progress, neurons=None) -> tuple:
    """`api.segment` on the model grid, labels mapped to the input grid, labels + table written."""
    from .. import api
    from ..io import create_zarr_output, write_volume
    from .resample import labels_to_grid

    cfg = session.model.config
    threshold = api.IN_MEMORY_VOXELS if options.in_memory_voxels is None else options.in_memory_voxels
    shape = tuple(pred.shape[1:])
    blockwise = int(np.prod(pred.shape)) > threshold
    out = None
    if blockwise:
        import zarr

        path = partial / "labels_model_grid.ome.zarr"
        block = options.postprocess_block or api.POSTPROCESS_BLOCK[-len(shape):]
        block = tuple(min(int(b), s) for b, s in zip(block, shape))
        if path.exists() and resumed:
            out = zarr.open_array(store=str(path), path="0", mode="r+")
        else:
            out = create_zarr_output(path, shape, "uint32", block, pred.attrs["voxel_size_nm"],
                                     axes="zyx"[-len(shape):])
    result = _drive(api.segment_events(
        session, pred, params=options.recipe_params, out=out, work=partial if blockwise else None,
        markers_root=markers_root, resume=resumed, executor=executor, in_memory_voxels=threshold,
        block_shape=options.postprocess_block, table=False), progress)
    factors = tuple(pred.attrs["scale_factors"])
    labels = labels_to_grid(np.asarray(result.labels[...]), volume.data.shape, factors)
    provenance["postprocessing"] = {"recipe": result.recipe, "params": result.params,
                                    "blockwise": blockwise}
    fmt = options.label_format
    labels_name = f"{cfg.task}.{fmt}" if fmt != "zarr" else f"{cfg.task}.ome.zarr"
    write_volume(partial / labels_name, labels, volume.voxel_size_nm, metadata={**provenance, "kind": "instances"})
    raw = None
    if int(np.prod(volume.data.shape)) <= api.IN_MEMORY_VOXELS:
        raw = np.asarray(volume.data[...])
    nd = len(session.layout.spatial)
    table = api.measure(labels, tuple(volume.voxel_size_nm), raw=raw, per_section=labels.ndim > nd)
    table_name = f"{cfg.task}.csv"
    table.to_csv(partial / table_name, index=False)
    from ..partners import is_partner_recipe

    if is_partner_recipe(result.recipe):  # partner packages also get the partner table (partners.csv/.parquet)
        from ..partners import partners_events, write_partner_tables

        if neurons is not None and tuple(neurons.shape) != tuple(pred.shape[1:]):
            raise OptionError("--neurons", f"the prediction is on the package's grid {tuple(pred.shape[1:])}, "
                                           f"not the input's {tuple(neurons.shape)} (voxel size differs from the "
                                           "package's): resample the input and its segmentation first")
        if neurons is not None:
            provenance["neurons"] = str(options.neurons)
        ptable = _drive(partners_events(session, pred, params=options.recipe_params, in_memory_voxels=threshold,
                                        block_shape=options.postprocess_block, neurons=neurons, executor=executor,
                                        work=partial, markers_root=markers_root, resume=resumed), progress)
        write_partner_tables(ptable, partial)
    check = object_size_check(cfg, table, volume.voxel_size_nm, result.params)
    provenance["object_size_check"] = check
    if check["message"]:
        warnings.warn(f"{provenance['input']}: {check['message']}", ObjectSizeWarning, stacklevel=2)
    return labels_name, table_name, int(len(table))


def _neurons_for(model: LoadedModel, volume, path: str):
    """The neuron segmentation of ``--neurons``, lazily read; one-line errors for a package without a
    partner recipe and for a grid that is not the input's."""
    from ..io import read_volume
    from ..partners import is_partner_recipe

    recipe = model.config.postprocessing.recipe if model.config and model.config.postprocessing else None
    if not is_partner_recipe(recipe):
        raise OptionError("--neurons", f"{model.name} makes no partner table (recipe {recipe!r}); a neuron "
                                       "segmentation is used by synaptic_partners and synaptic_polarity")
    seg = read_volume(path)
    shape = tuple(volume.data.shape)[-3:]
    if tuple(seg.data.shape) != shape:
        from ..errors import InputError

        raise InputError(path, f"neuron segmentation of shape {tuple(seg.data.shape)}, the input has {shape}")
    return seg.data


def _make_output_root(out_root: Path) -> None:
    if out_root.exists() and not out_root.is_dir():
        raise OutputError(f"{out_root}: is a file; the output must be a folder")
    try:
        out_root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{out_root}: cannot create output folder: {e.strerror or e}") from None


def iter_run(model_source, inputs: Sequence[str], out_root: Path,
             options: Optional[RunOptions] = None) -> Iterator[Union[RunResult, RunFailure]]:
    """Run a model package on files or folders of files, yielding each input's outcome as it finishes.

    A failing input does not stop the others: it is yielded as a `RunFailure`
    with a one-line reason. Interrupts (``KeyboardInterrupt``, `Cancelled`)
    propagate at once, leaving the current input's partial folder for ``resume``.
    """
    from .. import api
    from ..distributed.executors import make_executor
    from ..errors import Cancelled
    from ..io import list_inputs

    options = options or RunOptions()
    out_root = Path(out_root)
    _make_output_root(out_root)
    expanded: List[str] = []
    for item in inputs:
        expanded.extend(str(p) for p in list_inputs(item))
    session = api.load_session(model_source, device=options.device, weight_format=options.weight_format)
    from .predict import check_tile_options

    check_tile_options(session, options.tile, options.halo, options.batch_size)
    with make_executor(options.cluster, threads_per_worker=options.threads_per_worker,
                       memory_limit=options.worker_memory) as executor:
        for path in expanded:
            try:
                yield run_one(session, path, out_root, options, executor)
            except (KeyboardInterrupt, Cancelled):
                raise
            except SynapseBmzError as e:
                yield RunFailure(path, str(e), True, e)
            except Exception as e:  # one bad file must not end a folder run; the reason is reported
                if os.environ.get("SYNAPSE_BMZ_DEBUG"):
                    traceback.print_exc()
                msg = f"{type(e).__name__}: {e}".splitlines()[0]
                yield RunFailure(path, f"{path}: {msg}", False, e)


def run(model_source, inputs: Sequence[str], out_root: Path, options: Optional[RunOptions] = None) -> List[RunResult]:
    """Run a model package on files or folders of files.

    Parameters
    ----------
    model_source : str, Path, LoadedModel or ModelSession
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

    Raises
    ------
    SynapseBmzError
        The first failure's error when there is one input; `RunFailed` listing
        all failures when several inputs were given and some failed.
    """
    results, failures = [], []
    for item in iter_run(model_source, inputs, out_root, options):
        (failures if isinstance(item, RunFailure) else results).append(item)
    if failures:
        if len(failures) == 1 and not results:
            raise failures[0].error
        raise RunFailed(failures, len(results))
    return results
