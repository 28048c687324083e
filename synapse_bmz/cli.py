"""The ``synapse-bmz`` command line: a thin layer over the Python API.

Arguments are parsed before torch or bioimageio are imported, so ``--help``
answers at once. User errors (`SynapseBmzError`) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence


def _floats(text: str) -> List[float]:
    try:
        return [float(v) for v in text.replace("x", ",").split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _ints(text: str) -> List[int]:
    try:
        return [int(v) for v in text.replace("x", ",").split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    from .zoo.config import TTA_MODES

    p = argparse.ArgumentParser(prog="synapse-bmz", description="Synapse segmentation and analysis for EM with bioimage.io model packages.")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command")

    sub.add_parser("models", help="list the installed model packages")

    r = sub.add_parser("run", help="segment volumes with a model package")
    r.add_argument("model", help="package name (see `synapse-bmz models`), folder, .zip or rdf.yaml")
    r.add_argument("inputs", nargs="+", help="mrc/rec, tif, h5 (file.h5:key), zarr, npy, png, or folders of them")
    r.add_argument("-o", "--output", required=True, type=Path, help="output folder (one sub-folder per input)")
    r.add_argument("--tile", type=_ints, help="network input size per spatial axis, z,y,x or y,x (default: largest that fits memory)")
    r.add_argument("--halo", type=_ints, help="context per side between tiles, z,y,x or y,x (default: the package's)")
    r.add_argument("--device", help="cuda, cuda:N or cpu (default: cuda if present)")
    r.add_argument("--batch-size", type=int, help="tiles per forward pass (default: as many as fit)")
    r.add_argument("--voxel-size", type=_floats, help="voxel size in nm, z,y,x or y,x (required when the file has none)")
    r.add_argument("--no-postprocess", action="store_true", help="write the network prediction only")
    r.add_argument("--format", default="tif", choices=["tif", "zarr", "mrc", "h5", "npy"], help="format of the instance labels (prediction is always OME-Zarr)")
    r.add_argument("--weight-format", choices=["torchscript", "pytorch_state_dict", "onnx"], help="force a weight format")
    r.add_argument("--tta", choices=TTA_MODES,
                   help="test-time augmentation: flips averages each tile over its 4 in-plane mirror images "
                        "(4x the compute; default: the package's config.synapse_bmz.test_time_augmentation)")
    r.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--resume", action="store_true",
                   help="continue an interrupted run: finished blocks (done markers in OUT/.NAME.partial) are kept")
    r.add_argument("--skip-existing", action="store_true", help="leave inputs whose output folder exists (continue a folder run)")
    r.add_argument("--cluster", metavar="local[:N]|slurm[:N]|tcp://ADDRESS",
                   help="run blocks on dask.distributed: a local cluster of N worker processes, N SLURM jobs "
                        "(dask-jobqueue, configured by ~/.config/dask/jobqueue.yaml) or an existing scheduler")
    r.add_argument("--worker-memory", help="memory limit per dask worker, e.g. 2GB (default: dask's)")
    r.add_argument("--threads-per-worker", type=int, default=1, help="torch threads per dask worker (default 1)")
    r.add_argument("--neurons", metavar="FILE",
                   help="neuron segmentation on the input's grid (partner packages): adds pre_id/post_id to the "
                        "partner table, drops same-neuron pairs and separates the partners of polyadic synapses")
    r.add_argument("--max-in-memory-voxels", type=int,
                   help="postprocess predictions above this many voxels block by block (default 2^28)")

    r.add_argument("--server", metavar="URL", help="send the jobs to a `synapse-bmz serve` server instead of running here; "
                   "outputs are downloaded into the same folders")
    r.add_argument("--token-file", type=Path, help="with --server: file whose first token is used "
                   "(default: $SYNAPSE_BMZ_TOKEN)")

    s = sub.add_parser("serve", help="serve every model package behind an authenticated HTTP job API")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 in a container)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--models", type=Path, help="folder of packages to serve (default: the shipped packages)")
    s.add_argument("--data-root", type=Path, help="folder whose files jobs may name by relative path (default: uploads only)")
    s.add_argument("--state", type=Path, default=Path("synapse-bmz-state"),
                   help="jobs database and job files (default ./synapse-bmz-state)")
    s.add_argument("--token-file", type=Path, help="'USER TOKEN' lines (default: STATE/tokens, created with one token)")
    s.add_argument("--workers", type=int, help="worker processes (default: one per GPU, else 1)")
    s.add_argument("--device", help="cpu, cuda or cuda:N for all workers (default: one GPU each if present)")
    s.add_argument("--threads-per-worker", type=int, help="CPU threads per worker (default: cores / workers)")
    s.add_argument("--cluster", metavar="local[:N]|slurm[:N]|tcp://ADDRESS",
                   help="run each job's blocks on dask.distributed (as `run --cluster`)")
    s.add_argument("--model-cache", type=int, default=4, help="models kept loaded per worker (default 4)")
    s.add_argument("--max-queued-jobs", type=int, default=1000, help="queued or running jobs per user (default 1000; then 429)")
    s.add_argument("--max-upload-mb", type=float, default=1024.0, help="largest accepted request body (default 1024 MB)")
    s.add_argument("--retention-hours", type=float, default=168.0, help="finished jobs' outputs are kept this long (default 168)")
    s.add_argument("--allow-package-upload", action="store_true", help="accept package zips at POST /models (sha256-checked)")

    k = sub.add_parser("package", help="build a bioimage.io package from a training config's run, or test one")
    k.add_argument("action", choices=["test"], help="`test`: run bioimageio.core's test for every weight format")
    k.add_argument("package", help="package name, folder, .zip or rdf.yaml")

    n = sub.add_parser("analyze", help="distances, morphology, pools: tables and an HTML report")
    n.add_argument("segmentations", nargs="+",
                   help="label images; NAME=PATH names a structure (active_zone, membrane, ribbon, psd), "
                        "otherwise the file name is the name; the one named 'vesicles' holds the vesicles")
    n.add_argument("--raw", help="raw image of the same shape (intensity statistics, slice views)")
    n.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    n.add_argument("--voxel-size", type=_floats, help="voxel size in nm, z,y,x or y,x (when the files have none)")
    n.add_argument("--pool-rules", type=Path, help="YAML pool rules replacing the SynapseNet defaults")
    n.add_argument("--xlsx", action="store_true", help="also write Excel tables")

    m = sub.add_parser("simulate", help="simulated synapse EM with exact ground truth")
    m.add_argument("kind", choices=["tomogram", "ribbon", "cryo", "sstem"])
    m.add_argument("-o", "--output", required=True, type=Path, help="output folder (raw.tif, label tifs, csv tables)")
    m.add_argument("--shape", type=_ints, help="z,y,x voxels (default: the generator's)")
    m.add_argument("--voxel-size", type=_floats, help="z,y,x nm (default: the generator's)")
    m.add_argument("--seed", type=int, default=0)

    t = sub.add_parser("train", help="train a U-Net from a YAML config and write a package")
    t.add_argument("config", type=Path)
    t.add_argument("-o", "--output", type=Path, help="package folder (default: model_packages/<name>)")
    t.add_argument("--work-dir", type=Path, help="checkpoints and loss curves (default: runs/<name>)")
    t.add_argument("--device", help="cuda or cpu (default: cuda if present)")
    t.add_argument("--iterations", type=int, help="override the config's iteration count")
    t.add_argument("--no-resume", action="store_true", help="start afresh even if checkpoints exist")
    t.add_argument("--init-weights", type=Path, metavar="STATE_DICT",
                   help="warm start from these weights (a package's weights.state_dict.pt; U-Net configs)")
    t.add_argument("--quiet", action="store_true")

    d = sub.add_parser("adapt", help="adapt a package to unlabelled data (mean-teacher self-training)")
    d.add_argument("model", help="source package: name, folder, .zip or rdf.yaml (needs pytorch_state_dict weights)")
    d.add_argument("inputs", nargs="+", help="unlabelled volumes or images, or folders of them")
    d.add_argument("-o", "--output", required=True, type=Path, help="folder of the new package (its name is the package name)")
    d.add_argument("--iterations", type=int, default=2000)
    d.add_argument("--confidence", type=float, default=0.9, help="teacher probability needed for a pseudo-label (default 0.9)")
    d.add_argument("--ema", type=float, default=0.99, help="teacher momentum (default 0.99)")
    d.add_argument("--learning-rate", type=float, default=1e-4)
    d.add_argument("--batch-size", type=int, default=4)
    d.add_argument("--patch", type=_ints, help="patch per spatial axis, z,y,x or y,x (default 256x256 or 8x128x128)")
    d.add_argument("--voxel-size", type=_floats, help="voxel size in nm, z,y,x or y,x (required when the files have none)")
    d.add_argument("--license", help="SPDX licence of the new weights (default: the source's); CC-BY-NC-SA-3.0 for Drosophila VNC data")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--device", help="cuda or cpu (default: cuda if present)")
    d.add_argument("--quiet", action="store_true")
    from .partners_cli import add_evaluate_partners_parser

    add_evaluate_partners_parser(sub)
    from .cluster.cli import add_parser as add_cluster_parser

    add_cluster_parser(sub)
    return p


def cmd_models() -> int:
    from .zoo.table import models_table

    print(models_table())
    return 0


def cmd_serve(a: argparse.Namespace) -> int:
    try:
        from .serve.server import build_config, serve
    except ImportError as e:
        from .errors import OptionError

        raise OptionError("serve", f"needs the serve extra: pip install 'synapse-bmz[serve]' ({e.name} is missing)") from None
    if a.threads_per_worker is not None and a.threads_per_worker < 1:
        from .errors import OptionError

        raise OptionError("--threads-per-worker", f"{a.threads_per_worker} must be a positive integer")
    cfg, token_file = build_config(a.models, a.state, a.token_file, a.data_root, a.max_upload_mb, a.retention_hours,
                                   a.allow_package_upload, a.workers, a.device, a.cluster, a.model_cache,
                                   a.max_queued_jobs)
    return serve(cfg, a.host, a.port, token_file, a.threads_per_worker)


def _without_size_warnings(results):
    """Drain ``results`` with the runner's `ObjectSizeWarning` silenced: ``cmd_run`` prints it as one line."""
    import warnings

    from .zoo.object_sizes import ObjectSizeWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ObjectSizeWarning)
        yield from results


def cmd_run(a: argparse.Namespace) -> int:
    from .runner.run import RunFailure, RunOptions, iter_run

    if a.threads_per_worker is not None and a.threads_per_worker < 1:
        from .errors import OptionError

        raise OptionError("--threads-per-worker", f"{a.threads_per_worker} must be a positive integer")
    opts = RunOptions(tile=a.tile, halo=a.halo, device=a.device, batch_size=a.batch_size,
                      voxel_size_nm=a.voxel_size, postprocess=not a.no_postprocess, label_format=a.format,
                      weight_format=a.weight_format, test_time_augmentation=a.tta,
                      overwrite=a.overwrite, progress=not a.quiet, resume=a.resume, skip_existing=a.skip_existing, cluster=a.cluster,
                      worker_memory=a.worker_memory, threads_per_worker=a.threads_per_worker,
                      in_memory_voxels=a.max_in_memory_voxels, neurons=a.neurons)
    if a.server:
        from .client import iter_remote_run

        results = iter_remote_run(a.server, a.token_file, a.model, a.inputs, a.output, opts)
    else:
        if a.token_file:
            from .errors import OptionError

            raise OptionError("--token-file", "only used with --server")
        results = iter_run(a.model, a.inputs, a.output, opts)
    failures = []
    n_ok = 0
    for res in _without_size_warnings(results):
        if isinstance(res, RunFailure):
            failures.append(res)
            print(f"synapse-bmz: error: {res.message}", file=sys.stderr, flush=True)
            continue
        n_ok += 1
        if res.skipped:
            print(f"{res.input} -> {res.output_dir}: exists, skipped", flush=True)
            continue
        found = f", {res.n_objects} objects -> {res.labels.name}, {res.table.name}" if res.labels else ""
        resumed = (f", resumed: {res.blocks_computed} of {res.blocks_total} blocks computed"
                   if res.blocks_computed < res.blocks_total else "")
        speed = res.voxels / res.predict_s / 1e6 if res.predict_s > 0 else float("nan")
        print(f"{res.input} -> {res.output_dir}: {speed:.2f} M voxels/s{found}{resumed}", flush=True)
        check = getattr(res, "object_size_check", None) or {}
        if check.get("message"):
            print(f"synapse-bmz: warning: {res.input}: {check['message']}", file=sys.stderr, flush=True)
    if failures:
        if len(failures) + n_ok > 1:
            print(f"synapse-bmz: {len(failures)} of {len(failures) + n_ok} inputs failed:", file=sys.stderr)
            for f in failures:
                print(f"  {f.message}", file=sys.stderr)
        return 2 if all(f.user_error for f in failures) else 1
    return 0


def cmd_package(a: argparse.Namespace) -> int:
    from .packaging.checks import core_test_all_weight_formats

    failed = 0
    for fmt, status in core_test_all_weight_formats(a.package).items():
        print(f"{fmt}: {status}")
        failed += status != "passed"
    return 1 if failed else 0


def cmd_analyze(a: argparse.Namespace) -> int:
    from .analyze import analyze_files

    paths = analyze_files(a.segmentations, a.output, raw=a.raw, voxel_size_nm=a.voxel_size,
                          pool_rules=a.pool_rules, xlsx=a.xlsx)
    for key, path in paths.items():
        print(f"{key}: {path}")
    return 0


def cmd_simulate(a: argparse.Namespace) -> int:
    from . import simulate as sim

    kw = {"seed": a.seed}
    if a.shape:
        kw["shape"] = tuple(a.shape)
    if a.voxel_size:
        kw["voxel_size_nm"] = tuple(a.voxel_size)
    if a.kind == "sstem":
        result = sim.simulate_sstem_neuropil(**kw)
    elif a.kind == "cryo":
        result = sim.simulate_cryo_tomogram(**kw)
    else:
        result = sim.simulate_tomogram(ribbon=a.kind == "ribbon", **kw)
    for path in sim.write_simulation(result, a.output):
        print(path)
    return 0


def cmd_train(a: argparse.Namespace) -> int:
    import yaml

    try:
        model_kind = (yaml.safe_load(Path(a.config).read_text()) or {}).get("model")
    except (OSError, yaml.YAMLError, AttributeError):
        model_kind = None  # the trainers report an unreadable config in their own words
    if a.init_weights is not None and model_kind == "vgg3d":
        from .errors import OptionError

        raise OptionError("--init-weights", "warm starts are for U-Net and partner configs (not vgg3d)")
    if model_kind == "vgg3d":  # the SynapseClusterEM feature extractor: supervised on simulated synapse classes
        from .training.vgg3d import main as train_vgg3d

        return train_vgg3d([str(a.config)] + (["--out", str(a.output)] if a.output else []))
    from .training.partners import is_partner_config

    if is_partner_config(a.config):  # Synful / polarity targets: their own trainer, the same package builder
        from .training.partners import train_and_package as train_partners

        rdf = train_partners(a.config, out_dir=a.output, work_dir=a.work_dir, iterations=a.iterations,
                             progress=not a.quiet, init_weights=a.init_weights)
        print(f"package written: {rdf}")
        return 0
    from .training.pipeline import train_and_package

    rdf = train_and_package(a.config, out_dir=a.output, work_dir=a.work_dir, device=a.device,
                            iterations=a.iterations, resume=not a.no_resume, progress=not a.quiet,
                            init_weights=a.init_weights)
    print(f"package written: {rdf}")
    return 0


def cmd_adapt(a: argparse.Namespace) -> int:
    from .training.adapt import adapt_package

    rdf = adapt_package(a.model, a.inputs, a.output, voxel_size_nm=a.voxel_size, iterations=a.iterations,
                        confidence=a.confidence, ema=a.ema, learning_rate=a.learning_rate, batch_size=a.batch_size,
                        patch=a.patch, seed=a.seed, device=a.device, license=a.license, progress=not a.quiet)
    print(f"package written: {rdf}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    if a.version:
        from . import __version__

        print(__version__)
        return 0
    if a.command is None:
        parser.print_help()
        return 2
    import signal

    from .errors import Cancelled, SynapseBmzError

    def _stop(signum, frame):
        raise Cancelled(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM,)}
    try:
        if a.command == "models":
            return cmd_models()
        if a.command == "run":
            return cmd_run(a)
        if a.command == "serve":
            return cmd_serve(a)
        if a.command == "package":
            return cmd_package(a)
        if a.command == "analyze":
            return cmd_analyze(a)
        if a.command == "simulate":
            return cmd_simulate(a)
        if a.command == "train":
            return cmd_train(a)
        if a.command == "adapt":
            return cmd_adapt(a)
        if a.command == "cluster":
            from .cluster.cli import cluster_command

            return cluster_command(a)
        if a.command == "evaluate-partners":
            from .partners_cli import cmd_evaluate_partners

            return cmd_evaluate_partners(a)
    except (Cancelled, KeyboardInterrupt) as e:
        why = str(e) if isinstance(e, Cancelled) else "SIGINT"
        from .io.zarr_io import settle_pending_writes

        settle_pending_writes()  # else asyncio reports zarr writes destroyed mid-flight after our one line
        hint = "; finished blocks are kept: run the same command with --resume to continue" if a.command == "run" else ""
        print(f"synapse-bmz: stopped by {why}{hint}", file=sys.stderr)
        return 143 if why == "SIGTERM" else 130
    except SynapseBmzError as e:
        print("synapse-bmz: error: " + " ".join(str(e).split()), file=sys.stderr)
        return 2
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    parser.error(f"unknown command {a.command}")
    return 2
