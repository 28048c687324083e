"""``synapse-bmz cluster``: crops -> VGG3D features -> standardisation -> UMAP / t-SNE -> KMeans -> tables + report.

Every run writes a timestamped folder ``OUT/run_YYYYmmdd_HHMMSS/`` (built as
``.run_....partial`` and renamed when complete) with:

- ``config.yaml``: the full configuration with resolved paths; ``synapse-bmz
  cluster --config that/config.yaml`` repeats the run into a new folder;
- ``log.txt``: every stage with its timing;
- ``synapses.csv``: one row per synapse: the synapse table, crop flags
  (``at_border``, ``padded_fraction``), ``vesicle_cloud_volume_nm3``,
  ``feature_000..``, ``umap_2d_{0,1}``, ``umap_3d_{0,1,2}``, ``tsne_2d_*``,
  ``tsne_3d_*`` and ``cluster``;
- ``clustering.json``: chosen k, silhouette and inertia (elbow) per k;
- ``presynapse.csv``: within- vs between-group feature distances per pre-synaptic neuron;
- ``cluster_summary.csv``: synapses and vesicle-cloud volume (nm^3) per cluster;
- ``gifs/``: animated GIFs (through z) of each cluster's representative crops;
- ``attention/`` (with ``attention_layers``): Grad-CAM PNGs and ``top_regions.csv``;
- ``report.html``: the interactive report (`synapse_bmz.cluster.report`).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Dict, List, Literal, Optional, Union

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import InputError, OptionError, OutputError

__all__ = ["VolumeSpec", "ClusterConfig", "load_cluster_config", "run_cluster", "ClusterRun"]


class VolumeSpec(BaseModel):
    """One EM volume and its synapses."""

    model_config = ConfigDict(extra="forbid")
    name: Optional[str] = None
    raw: str
    synapses: str
    voxel_size_nm: Optional[List[float]] = None    # overrides the file's (nm, z, y, x)
    labels: Dict[str, str] = Field(default_factory=dict)  # segments / vesicles / cleft / mitochondria -> file
    vesicle_table: Optional[str] = None            # adds pre/post sides to a cleft table
    pre_side: Literal["side_1", "side_2"] = "side_1"
    #: beyond the first/last section: grey padding, or the nearest section repeated ("edge", for sparse-z data)
    z_padding: Literal["grey", "edge"] = "grey"


class ClusterConfig(BaseModel):
    """Everything a clustering run depends on; written to ``config.yaml`` of the run."""

    model_config = ConfigDict(extra="forbid")
    output: str = "cluster_runs"
    volumes: List[VolumeSpec] = Field(default_factory=list)
    features_csv: Optional[str] = None      # cluster precomputed features (columns feature_*) instead
    model: str = "vgg3d_features"
    extraction: Literal["standard", "stage_specific"] = "standard"
    layer_num: int = 20
    pooling: Literal["avg", "max", "concat_avg_max", "spp"] = "avg"
    random_weights: bool = False
    segmentation_type: int = Field(default=0, ge=0, le=10)
    alpha: float = Field(default=1.0, ge=0.0, le=1.0)
    shift_to_pre_nm: float = 0.0
    decide_pre_side: bool = False
    k_min: int = Field(default=2, ge=2)
    k_max: int = Field(default=10, ge=2)
    embeddings: List[Literal["umap", "tsne"]] = Field(default_factory=lambda: ["umap", "tsne"])
    batch_size: int = Field(default=4, ge=1)
    seed: int = 0
    threads: int = Field(default=1, ge=1)
    report_crops_per_cluster: int = Field(default=3, ge=0)
    #: Grad-CAM layers (indices into ``features`` or early/middle/late); empty = no attention maps
    attention_layers: List[Union[int, str]] = Field(default_factory=list)
    attention_per_cluster: int = Field(default=1, ge=1)
    attention_slices: int = Field(default=3, ge=1)


def load_cluster_config(path) -> ClusterConfig:
    """Read a run's ``config.yaml`` (or one written by hand); one-line error naming the file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        return ClusterConfig.model_validate(raw)
    except (OSError, yaml.YAMLError) as e:
        raise InputError(path, f"cannot read: {' '.join(str(e).split())}") from None
    except ValidationError as e:
        first = e.errors()[0]
        raise InputError(path, f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None


class ClusterRun(BaseModel):
    """What `run_cluster` produced."""

    folder: Path
    n_synapses: int
    k: int
    silhouette: float


def _run_folder(out: Path) -> Path:
    stamp = _dt.datetime.now().strftime("run_%Y%m%d_%H%M%S")
    folder, i = out / stamp, 1
    while folder.exists() or (out / f".{folder.name}.partial").exists():
        folder, i = out / f"{stamp}_{i}", i + 1
    return folder


def _resolved(cfg: ClusterConfig, base: Path) -> ClusterConfig:
    """Paths made absolute, so the saved config re-runs from any working directory."""
    def ab(p):
        return str((base / p).resolve()) if p is not None and "://" not in str(p) else p

    vols = [v.model_copy(update={"raw": ab(v.raw), "synapses": ab(v.synapses), "vesicle_table": ab(v.vesicle_table),
                                 "labels": {k: ab(p) for k, p in v.labels.items()}}) for v in cfg.volumes]
    return cfg.model_copy(update={"volumes": vols, "features_csv": ab(cfg.features_csv), "output": ab(cfg.output)})


def _crops_of_volume(v: VolumeSpec, cfg: ClusterConfig, crop_vs, crop_shape, log):
    from analysis.synapse_crops import crop_synapses, read_synapse_table, synapses_from_tables

    from ..io import read_volume

    vol = read_volume(v.raw, voxel_size_nm=tuple(v.voxel_size_nm) if v.voxel_size_nm else None)
    vs = tuple(float(x) for x in vol.voxel_size_nm)
    if len(vs) != 3:
        raise InputError(v.raw, f"clustering needs a 3D volume, got voxel size {vs}")
    try:
        if v.vesicle_table:
            syn = synapses_from_tables(v.synapses, v.vesicle_table)
        else:
            syn = read_synapse_table(v.synapses, voxel_size_nm=vs, pre_side=v.pre_side)
        labels = {}
        for key, path in v.labels.items():
            lab = read_volume(path, voxel_size_nm=vs)
            labels[key] = lab.to_numpy()
        res = crop_synapses(vol.data, vs, syn, labels=labels, segmentation_type=cfg.segmentation_type,
                            alpha=cfg.alpha, crop_shape=crop_shape, crop_voxel_size_nm=crop_vs,
                            shift_to_pre_nm=cfg.shift_to_pre_nm, decide_pre_side=cfg.decide_pre_side,
                            z_padding=v.z_padding)
    except ValueError as e:
        raise InputError(v.synapses, str(e)) from None
    name = v.name or Path(v.raw).stem
    res.table.insert(0, "source", name)
    log.info("%s: %d synapses cropped (%d at the border, padded)", name, len(res.table), int(res.table.at_border.sum()))
    return res


def run_cluster(cfg: ClusterConfig, *, base_dir: Optional[Path] = None) -> ClusterRun:
    """Run the whole clustering pipeline into a new timestamped folder under ``cfg.output``.

    Parameters
    ----------
    cfg : ClusterConfig
    base_dir : Path, optional
        Relative paths of `cfg` are resolved against it (default: the working directory).

    Returns
    -------
    ClusterRun
    """
    import torch

    from analysis.clustering import (
        choose_k, embed, per_cluster_summary, presynapse_distances, standardise,
    )

    cfg = _resolved(cfg, Path(base_dir or Path.cwd()))
    if cfg.k_max < cfg.k_min:
        raise OptionError("--k-range", f"k_max {cfg.k_max} < k_min {cfg.k_min}")
    if not cfg.volumes and not cfg.features_csv:
        raise OptionError("volumes", "give at least one volume with its synapse table, or a features CSV")
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.output)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{out}: cannot create the output folder: {e.strerror}") from None
    folder = _run_folder(out)
    partial = out / f".{folder.name}.partial"
    partial.mkdir()
    log = logging.getLogger(f"synapse_bmz.cluster.{folder.name}")
    log.setLevel(logging.INFO)
    log.propagate = False
    handler = logging.FileHandler(partial / "log.txt")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    try:
        (partial / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        t0 = time.time()
        crops = None
        if cfg.features_csv:
            table = pd.read_csv(cfg.features_csv)
            fcols = [c for c in table.columns if c.startswith("feature_")]
            if not fcols:
                raise InputError(cfg.features_csv, "no feature_* columns")
            feats = table[fcols].to_numpy(float)
            table = table.drop(columns=fcols)
            log.info("read %d x %d features from %s", *feats.shape, cfg.features_csv)
        else:
            from .features import extract_features

            model, crop_vs, crop_shape = _extractor(cfg)
            parts = [_crops_of_volume(v, cfg, crop_vs, crop_shape, log) for v in cfg.volumes]
            crops = np.concatenate([p.crops for p in parts])
            table = pd.concat([p.table for p in parts], ignore_index=True)
            t1 = time.time()
            feats = extract_features(model, crops, cfg.batch_size)
            log.info("features: %d x %d (%s, %s pooling%s) in %.1f s", *feats.shape, cfg.extraction, cfg.pooling,
                     f", layer {cfg.layer_num}" if cfg.extraction == "stage_specific" else "", time.time() - t1)
        x = standardise(feats)
        try:
            choice = choose_k(x, range(cfg.k_min, cfg.k_max + 1), seed=cfg.seed)
        except ValueError as e:
            raise OptionError("--k-range", str(e)) from None
        log.info("k = %d by silhouette (%.3f); elbow at k = %d", choice.k, choice.silhouette[choice.k], choice.elbow_k)
        emb = {}
        for method in cfg.embeddings:
            for dim in (2, 3):
                if len(x) <= dim + 1:
                    continue
                t1 = time.time()
                e = embed(x, method, dim, seed=cfg.seed)
                for i in range(dim):
                    emb[f"{method}_{dim}d_{i}"] = e[:, i]
                log.info("%s %dD in %.1f s", method, dim, time.time() - t1)
        table = table.reset_index(drop=True)
        feat_df = pd.DataFrame(feats, columns=[f"feature_{i:03d}" for i in range(feats.shape[1])])
        table = pd.concat([table, feat_df, pd.DataFrame(emb)], axis=1)
        table["cluster"] = choice.labels
        table.to_csv(partial / "synapses.csv", index=False)
        pre_col = "pre_label" if "pre_label" in table.columns else None
        pre = presynapse_distances(x, table[pre_col]) if pre_col else presynapse_distances(x, [None] * len(x))
        pre.to_csv(partial / "presynapse.csv", index=False)
        summary = per_cluster_summary(table)
        summary.to_csv(partial / "cluster_summary.csv", index=False)
        info = {"k": choice.k, "elbow_k": choice.elbow_k, "silhouette": choice.silhouette, "inertia": choice.inertia,
                "n_synapses": int(len(x)), "n_features": int(x.shape[1]), "seconds": round(time.time() - t0, 2)}
        (partial / "clustering.json").write_text(json.dumps(info, indent=2))
        attention, top = [], None
        if cfg.attention_layers and crops is not None:
            attention, top = _attention(model, crops, table, cfg, partial / "attention", log)
        gifs = _gifs(crops, table, cfg, partial / "gifs", log) if crops is not None else []
        from .report import write_report

        write_report(partial / "report.html", table, choice, pre, summary, crops, cfg, attention,
                     gifs=gifs, top_regions=top)
        log.info("done in %.1f s: %s", time.time() - t0, folder)
        handler.close()
        log.removeHandler(handler)
        partial.rename(folder)
    except BaseException:
        handler.close()
        log.removeHandler(handler)
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return ClusterRun(folder=folder, n_synapses=int(len(x)), k=choice.k, silhouette=choice.silhouette[choice.k])


def _attention(model, crops, table, cfg: ClusterConfig, folder: Path, log) -> list:
    """Grad-CAM PNGs of the first synapses of each cluster and the top attended regions (middle layer)."""
    from .gradcam import multi_layer_cam, top_attended_regions, write_cam_png

    folder.mkdir()
    written, maps, ids = [], [], []
    for c in sorted(table["cluster"].unique()):
        for i in np.flatnonzero(table["cluster"].to_numpy() == c)[: cfg.attention_per_cluster]:
            try:
                cams = multi_layer_cam(model, crops[i], cfg.attention_layers)
            except ValueError as e:
                raise OptionError("--attention-layers", str(e)) from None
            sid = str(table["synapse_id"][i])
            path = write_cam_png(folder / f"cluster{c}_{_safe(sid)}.png", crops[i], cams, cfg.attention_slices)
            written.append((int(c), sid, list(cams), path))
            maps.append(list(cams.values())[len(cams) // 2])
            ids.append(sid)
    top = top_attended_regions(np.stack(maps), _crop_voxel_size(cfg), ids, n_top=min(5, len(maps)))
    top.to_csv(folder / "top_regions.csv", index=False)
    log.info("attention maps (layers %s) of %d synapses", cfg.attention_layers, len(written))
    return written, top


def _safe(sid: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in sid)


def _gifs(crops, table, cfg: ClusterConfig, folder: Path, log) -> list:
    """Animated GIFs (through z) of the representative crops of each cluster: ``gifs/cluster{c}_{id}.gif``."""
    from .gif import grey_window, write_crop_gif

    if not cfg.report_crops_per_cluster:
        return []
    window = grey_window(crops)
    written = []
    for c in sorted(table["cluster"].unique()):
        for i in np.flatnonzero(table["cluster"].to_numpy() == c)[: cfg.report_crops_per_cluster]:
            sid = str(table["synapse_id"][i])
            path = write_crop_gif(folder / f"cluster{c}_{_safe(sid)}.gif", crops[i], window)
            written.append((int(c), sid, path))
    log.info("%d crop GIFs", len(written))
    return written


def _crop_voxel_size(cfg: ClusterConfig):
    from ..zoo.registry import read_rdf, resolve_package

    return tuple(read_rdf(resolve_package(cfg.model))["config"]["synapse_bmz"]["voxel_size_nm"])


def _extractor(cfg: ClusterConfig):
    from .features import load_extractor

    model, vs, shape = load_extractor(cfg.model, extraction=cfg.extraction, layer_num=cfg.layer_num,
                                      pooling=cfg.pooling, random_weights=cfg.random_weights, seed=cfg.seed)
    return model, vs, shape
