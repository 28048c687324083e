"""Synapse clustering on real EM: the annotated synapses of Drosophila VNC stack 1 and the EPFL PSDs.

What it does, with the shipped ``vgg3d_features`` package and ``synapse-bmz
cluster``'s pipeline (`synapse_bmz.cluster.pipeline.run_cluster`):

- **drosophila_vnc stack 1** (ssTEM, 50 x 4.6 x 4.6 nm, 16 sections): each
  3D connected component of the synapse masks (T-bar + cleft) is a synapse,
  its centroid the crop centre; the masks are the ``cleft`` labels and the
  mitochondria masks the ``mitochondria`` labels. The 80^3 cube at 5 nm is
  400 nm deep, so it spans 8 sections: the extractor's linear resampling
  along z blends neighbouring sections (each 50 nm section covers 10 cube
  planes). Cubes are grey-padded beyond the first and last section.
- **EPFL hippocampus** (FIB-SEM, 5 nm isotropic, 27 sections in runs of 1-4
  consecutive ones): each run is its own volume; each 3D connected component
  of the PSD masks in a run is a synapse, the pre-synaptic point the centroid
  of the annotated vesicles within 500 nm (`synapses_from_tables`), so the
  cube is shifted 100 nm toward the vesicle cloud. A run is at most 20 nm
  deep against the cube's 400 nm: crops use ``z_padding='edge'`` (the nearest
  section repeated along z), so these features see in-plane morphology only
  (``z_extruded_fraction`` in the table says how much was repeated).

Each data set is clustered on its own (segmentation type 0, raw), with
Grad-CAM maps (early, middle, late); then the features of both are clustered
together to see whether the clusters follow the data set (ARI of cluster vs
source). Per cluster it reports the synapse size (annotated mask, nm^3), the
crop's mean intensity, and for EPFL the number of cloud vesicles.

    python benchmarks/clustering_real.py [--quick] [--out benchmarks/results/clustering_real.json]
                                         [--runs DIR] [--card-figures DIR]

``--card-figures DIR`` also renders figures of the reports (headless Chromium
via playwright) as PNGs for the package card. ``--quick``: 4 synapses per data
set, t-SNE only, no attention maps. Needs ``../shared/data``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"
VNC_VOXEL_NM = (50.0, 4.6, 4.6)
EPFL_VOXEL_NM = (5.0, 5.0, 5.0)


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    a = np.asarray(Image.open(path))
    return a[..., 0] if a.ndim == 3 else a


def vnc_inputs(work: Path, limit=None) -> dict:
    """Raw, cleft and mitochondria tifs and the synapse table of drosophila_vnc stack 1."""
    import tifffile

    from analysis.synapse_crops import synapses_from_mask
    from synapse_bmz.io import write_volume

    root = DATA / "drosophila_vnc" / "stack1"
    raw = np.stack([tifffile.imread(p) for p in sorted((root / "raw").glob("*.tif"))])
    syn = np.stack([_read_png(p) > 0 for p in sorted((root / "synapses").glob("*.png"))])
    mito = np.stack([_read_png(p) > 127 for p in sorted((root / "mitochondria").glob("*.png"))])
    # 200 voxels: drops annotation specks, keeps every synapse drawn on at least one section
    cleft, table = synapses_from_mask(syn, VNC_VOXEL_NM, min_volume_nm3=200 * float(np.prod(VNC_VOXEL_NM)),
                                      id_prefix="vnc_syn")
    if limit:
        table = table.iloc[:limit]
    d = work / "vnc"
    d.mkdir(parents=True, exist_ok=True)
    write_volume(d / "raw.tif", raw, VNC_VOXEL_NM)
    write_volume(d / "cleft.tif", cleft, VNC_VOXEL_NM)
    write_volume(d / "mitochondria.tif", mito.astype(np.uint8), VNC_VOXEL_NM)
    table.to_csv(d / "synapses.csv", index=False)
    return {"name": "drosophila_vnc_stack1", "raw": str(d / "raw.tif"), "synapses": str(d / "synapses.csv"),
            "labels": {"cleft": str(d / "cleft.tif"), "mitochondria": str(d / "mitochondria.tif")}}


def _runs(names):
    """Consecutive section numbers grouped: [[0, 1, 2, 3], [13], ...]."""
    nums = sorted(int(n) for n in names)
    runs = [[nums[0]]]
    for n in nums[1:]:
        (runs[-1].append(n) if n == runs[-1][-1] + 1 else runs.append([n]))
    return runs


def epfl_inputs(work: Path, limit=None) -> list:
    """One volume per run of consecutive EPFL sections: raw, PSD and vesicle tifs, synapse table with sides."""
    from analysis.synapse_crops import synapses_from_mask, synapses_from_tables
    from synapse_bmz.io import write_volume

    root = DATA / "epfl_hippocampus"
    files = {p.stem.replace("training", ""): p.name for p in (root / "slices").glob("training*.png")}
    specs, total = [], 0
    for run in _runs(files):
        names = [files[f"{n:04d}"] for n in run]
        raw = np.stack([_read_png(root / "slices" / f) for f in names])
        psd = np.stack([_read_png(root / "PSD" / f) > 127 for f in names])
        ves = np.stack([_read_png(root / "vesicles" / f) > 127 for f in names])
        mito = np.stack([_read_png(root / "mitochondrion" / f) > 127 for f in names])
        tag = f"{run[0]:04d}" + (f"-{run[-1]:04d}" if len(run) > 1 else "")
        voxel_nm3 = float(np.prod(EPFL_VOXEL_NM))
        psd_lab, table = synapses_from_mask(psd, EPFL_VOXEL_NM, min_volume_nm3=100 * voxel_nm3, id_prefix=f"epfl_{tag}_psd")
        if not len(table):
            continue
        ves_lab, ves_table = synapses_from_mask(ves, EPFL_VOXEL_NM, min_volume_nm3=4 * voxel_nm3, id_prefix="v")
        table = synapses_from_tables(table, ves_table, cloud_radius_nm=500.0)
        if limit:
            table = table.iloc[: max(0, limit - total)]
            if not len(table):
                break
        total += len(table)
        d = work / f"epfl_{tag}"
        d.mkdir(parents=True, exist_ok=True)
        # OME-Zarr keeps a single section a (1, Y, X) volume
        paths = {k: d / f"{k}.ome.zarr" for k in ("raw", "cleft", "vesicles", "mitochondria")}
        for k, arr in (("raw", raw), ("cleft", psd_lab), ("vesicles", ves_lab), ("mitochondria", mito.astype(np.uint8))):
            write_volume(paths[k], arr, EPFL_VOXEL_NM)
        table.to_csv(d / "synapses.csv", index=False)
        specs.append({"name": f"epfl_{tag}", "raw": str(paths["raw"]), "synapses": str(d / "synapses.csv"),
                      "z_padding": "edge", "labels": {k: str(paths[k]) for k in ("cleft", "vesicles", "mitochondria")}})
    return specs


def _describe(folder: Path) -> dict:
    """Per cluster: size, synapse volume, mean crop intensity, cloud vesicles; flags; k and silhouette."""
    t = pd.read_csv(folder / "synapses.csv")
    info = json.loads((folder / "clustering.json").read_text())
    clusters = {}
    for c, g in t.groupby("cluster"):
        row = {"n_synapses": int(len(g)), "sources": g["source"].value_counts().to_dict()}
        for col, key in (("synapse_volume_nm3", "synapse_volume_nm3_median"),
                         ("n_cloud_vesicles", "cloud_vesicles_median"),
                         ("vesicle_cloud_volume_nm3", "vesicle_cloud_volume_nm3_median")):
            if col in g and g[col].notna().any():
                row[key] = round(float(g[col].median()), 1)
        clusters[str(c)] = row
    out = {"n_synapses": int(len(t)), "k": info["k"], "silhouette": round(info["silhouette"][str(info["k"])], 4),
           "elbow_k": info["elbow_k"], "n_at_border": int(t["at_border"].sum()),
           "z_extruded_fraction_mean": round(float(t.get("z_extruded_fraction", pd.Series([0.0])).mean()), 3),
           "seconds": info["seconds"], "clusters": clusters, "run_folder": str(folder)}
    return out


def _screenshots(report: Path, ids, out_dir: Path, prefix: str) -> list:
    """PNG of each named figure of a report, rendered in headless Chromium (the report's own pixels)."""
    from playwright.sync_api import sync_playwright

    written = []
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run",
            "--use-angle=swiftshader", "--enable-unsafe-swiftshader"])
        try:
            page = b.new_page(viewport={"width": 1100, "height": 900})
            page.goto(report.as_uri(), wait_until="load")
            page.wait_for_timeout(1500)
            for fid in ids:
                el = page.query_selector(f"div.figure#{fid}")
                if el is None:
                    continue
                path = out_dir / f"{prefix}_{fid}.png"
                el.screenshot(path=str(path))
                written.append(str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path))
        finally:
            b.close()
    return written


def cluster_both(folders: dict, out: Path, k_max: int, embeddings, threads: int):
    """Cluster the features of every data set's run together (no extraction again): do the clusters follow
    the data set? ``source`` becomes the data set (the report colours by it), ``volume`` keeps the volume."""
    from analysis.clustering import adjusted_rand
    from synapse_bmz.cluster.pipeline import ClusterConfig, run_cluster

    both = pd.concat([pd.read_csv(folders[k] / "synapses.csv").assign(dataset=k) for k in folders], ignore_index=True)
    feats = [c for c in both.columns if c.startswith("feature_")]
    table = pd.concat([both[["synapse_id"]], both["source"].rename("volume"), both["dataset"].rename("source"),
                       both[feats]], axis=1)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "features.csv"
    table.to_csv(path, index=False)
    run = run_cluster(ClusterConfig(output=str(out), features_csv=str(path), k_min=2, k_max=k_max,
                                    embeddings=list(embeddings), threads=threads))
    t = pd.read_csv(run.folder / "synapses.csv")
    return run, {"n_synapses": int(len(t)), "k": run.k, "silhouette": round(run.silhouette, 4),
                 "ari_cluster_vs_dataset": round(float(adjusted_rand(t["source"], t["cluster"])), 4),
                 "clusters": {str(c): g["source"].value_counts().to_dict() for c, g in t.groupby("cluster")},
                 "run_folder": str(run.folder)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "clustering_real.json")
    p.add_argument("--runs", type=Path, help="keep the cluster run folders here (default: a temporary folder)")
    p.add_argument("--card-figures", type=Path, help="write report figures as PNGs here (for the package card)")
    p.add_argument("--model", default="vgg3d_features")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    if not (DATA / "drosophila_vnc").is_dir() or not (DATA / "epfl_hippocampus").is_dir():
        print(f"skipped: {DATA} (drosophila_vnc, epfl_hippocampus) is absent")
        return 0
    from synapse_bmz.cluster.pipeline import ClusterConfig, VolumeSpec, run_cluster

    limit = 4 if a.quick else None
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "inputs"
        runs = a.runs or Path(tmp) / "runs"
        t0 = time.time()
        vnc = vnc_inputs(work, limit)
        epfl = epfl_inputs(work, limit)
        prep_s = time.time() - t0
        common = dict(model=a.model, threads=a.threads, segmentation_type=0, k_min=2,
                      k_max=4 if a.quick else 8, embeddings=["tsne"] if a.quick else ["umap", "tsne"],
                      attention_layers=[] if a.quick else ["early", "middle", "late"], report_crops_per_cluster=3)
        result = {"inputs_seconds": round(prep_s, 1)}
        folders = {}
        for key, vols, extra in (("drosophila_vnc", [vnc], {}), ("epfl", epfl, {"shift_to_pre_nm": 100.0})):
            cfg = ClusterConfig(output=str(runs / key), volumes=[VolumeSpec(**v) for v in vols], **common, **extra)
            run = run_cluster(cfg)
            folders[key] = run.folder
            result[key] = _describe(run.folder)
            print(f"{key}: {run.n_synapses} synapses, k = {run.k} (silhouette {run.silhouette:.3f}), "
                  f"{result[key]['seconds']} s")
        run, result["both"] = cluster_both(folders, runs / "both", common["k_max"], common["embeddings"], a.threads)
        print(f"both: k = {run.k}, ARI(cluster, data set) = {result['both']['ari_cluster_vs_dataset']}")
        if a.card_figures:
            a.card_figures.mkdir(parents=True, exist_ok=True)
            figs = []
            for key, folder in folders.items():
                k = result[key]["k"]
                ids = ["umap_2d_cluster" if not a.quick else "tsne_2d_cluster", "silhouette"] + \
                      [f"crops_cluster_{c}" for c in range(k)] + ["attention"]
                figs += _screenshots(folder / "report.html", ids, a.card_figures, key)
            figs += _screenshots(run.folder / "report.html", ["umap_2d_source" if not a.quick else "tsne_2d_source"],
                                 a.card_figures, "both")
            result["card_figures"] = figs
        if a.runs is None:
            for key in list(folders) + ["both"]:
                result[key].pop("run_folder", None)
    result["_meta"] = {"quick": a.quick, "model": a.model, "threads": a.threads, "python": platform.python_version(),
                       "machine": platform.machine(), "command": "python benchmarks/clustering_real.py"
                       + (" --quick" if a.quick else "")}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = a.out.with_name(f".{a.out.name}.partial")
    tmp_out.write_text(json.dumps(result, indent=2, default=str))
    tmp_out.replace(a.out)
    print(f"-> {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
