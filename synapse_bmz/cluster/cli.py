"""``synapse-bmz cluster``: argument parsing only (the work is `synapse_bmz.cluster.pipeline.run_cluster`).

Wired into `synapse_bmz.cli` with ``add_parser(sub)`` beside the other
sub-parsers and ``cluster_command(a)`` in the dispatch.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

__all__ = ["add_parser", "cluster_command", "config_from_args", "main"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``cluster`` sub-command to an ``add_subparsers()`` object."""
    c = subparsers.add_parser(
        "cluster", help="crops around synapses -> VGG3D features -> UMAP/t-SNE -> KMeans -> tables + HTML report",
        description="Cluster synapses by morphology. Each run writes OUT/run_YYYYmmdd_HHMMSS/ with config.yaml "
                    "(re-run it with --config), log.txt, synapses.csv, clustering.json, presynapse.csv, "
                    "cluster_summary.csv and report.html.")
    c.add_argument("raw", nargs="?", help="EM volume (any format synapse-bmz reads)")
    c.add_argument("--synapses", help="synapse table: SynapseClusterEM csv/xlsx, partner table, or clefts.csv")
    c.add_argument("--config", type=Path, help="a run's config.yaml (or one written by hand); other options override it")
    c.add_argument("-o", "--output", help="folder that receives the timestamped run folders (default cluster_runs)")
    c.add_argument("--voxel-size", help="z,y,x in nm, overrides the file's")
    c.add_argument("--labels", action="append", default=[], metavar="NAME=FILE",
                   help="label volume on the raw grid: segments, vesicles, cleft or mitochondria (repeatable)")
    c.add_argument("--vesicle-table", help="vesicles.csv: pre/post sides of a clefts.csv from the vesicle cloud")
    c.add_argument("--pre-side", choices=["side_1", "side_2"], help="SynapseClusterEM side taken as pre-synaptic")
    c.add_argument("--z-padding", choices=["grey", "edge"],
                   help="beyond the first/last section: grey (default) or repeat the nearest section "
                        "(edge: for volumes much thinner than the cube, e.g. a few FIB-SEM sections)")
    c.add_argument("--features", dest="features_csv", help="cluster the feature_* columns of this CSV (no extraction)")
    c.add_argument("--model", help="feature-extractor package (default vgg3d_features)")
    c.add_argument("--extraction", choices=["standard", "stage_specific"])
    c.add_argument("--layer-num", type=int, help="layer for stage_specific (default 20)")
    c.add_argument("--pooling", choices=["avg", "max", "concat_avg_max", "spp"])
    c.add_argument("--random-weights", action="store_true", default=None, help="untrained network (baseline)")
    c.add_argument("--segmentation-type", type=int, choices=range(11), metavar="0..10")
    c.add_argument("--alpha", type=float, help="blend outside the segmentation mask toward grey (0..1, default 1)")
    c.add_argument("--shift-to-pre-nm", type=float, help="move each cube this far toward the pre-synaptic side")
    c.add_argument("--decide-pre-side", action="store_true", default=None,
                   help="pre side = the side whose segment holds more vesicles (needs segments and vesicles)")
    c.add_argument("--k-range", help="KMeans k from,to (default 2,10); k is chosen by silhouette")
    c.add_argument("--embeddings", help="comma-separated: umap,tsne (default both)")
    c.add_argument("--attention-layers", help="Grad-CAM layers, comma-separated indices or early,middle,late "
                   "(features.3/.20/.27); PNGs of the first synapse of each cluster go to attention/")
    c.add_argument("--seed", type=int)
    c.add_argument("--threads", type=int, help="torch threads (default 1)")
    return c


def config_from_args(a: argparse.Namespace):
    """The run's `ClusterConfig`: ``--config`` first, then every option given on the command line."""
    from ..errors import OptionError
    from .pipeline import ClusterConfig, VolumeSpec, load_cluster_config

    cfg = load_cluster_config(a.config) if a.config else ClusterConfig()
    upd = {k: getattr(a, k) for k in ("output", "features_csv", "model", "extraction", "layer_num", "pooling",
                                       "random_weights", "segmentation_type", "alpha", "shift_to_pre_nm",
                                       "decide_pre_side", "seed", "threads") if getattr(a, k, None) is not None}
    if a.k_range:
        try:
            lo, hi = (int(v) for v in a.k_range.split(","))
        except ValueError:
            raise OptionError("--k-range", f"expected two integers from,to, got {a.k_range!r}") from None
        upd.update(k_min=lo, k_max=hi)
    if a.attention_layers:
        upd["attention_layers"] = [int(v) if v.strip().isdigit() else v.strip()
                                   for v in a.attention_layers.split(",") if v.strip()]
    if a.embeddings:
        upd["embeddings"] = [e.strip() for e in a.embeddings.split(",") if e.strip()]
    if a.raw:
        if not a.synapses:
            raise OptionError("--synapses", "a volume needs its synapse table")
        labels = {}
        for item in a.labels:
            if "=" not in item:
                raise OptionError("--labels", f"expected NAME=FILE, got {item!r}")
            k, v = item.split("=", 1)
            labels[k.strip()] = v.strip()
        vs = None
        if a.voxel_size:
            try:
                vs = [float(v) for v in a.voxel_size.split(",")]
            except ValueError:
                raise OptionError("--voxel-size", f"expected z,y,x in nm, got {a.voxel_size!r}") from None
        spec = dict(raw=a.raw, synapses=a.synapses, voxel_size_nm=vs, labels=labels, vesicle_table=a.vesicle_table)
        if a.pre_side:
            spec["pre_side"] = a.pre_side
        if a.z_padding:
            spec["z_padding"] = a.z_padding
        upd["volumes"] = [VolumeSpec(**spec)]
    try:
        return ClusterConfig.model_validate({**cfg.model_dump(), **upd})
    except Exception as e:  # pydantic's ValidationError: first problem on one line
        errs = getattr(e, "errors", None)
        if errs:
            first = errs()[0]
            raise OptionError("--" + str(first["loc"][0]).replace("_", "-"), first["msg"]) from None
        raise


def cluster_command(a: argparse.Namespace) -> int:
    """Run the clustering and print the run folder; exit status 0."""
    from .pipeline import run_cluster

    run = run_cluster(config_from_args(a))
    print(f"{run.n_synapses} synapses, k = {run.k} (silhouette {run.silhouette:.3f}) -> {run.folder}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Stand-alone entry (``python -m synapse_bmz.cluster.cli cluster ...``) with the CLI's error
    convention: a `SynapseBmzError` is one line on stderr and exit status 2."""
    import sys

    from ..errors import SynapseBmzError

    parser = argparse.ArgumentParser(prog="synapse-bmz")
    add_parser(parser.add_subparsers(dest="command", required=True))
    a = parser.parse_args(argv)
    try:
        return cluster_command(a)
    except SynapseBmzError as e:
        print(f"synapse-bmz: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
