"""Benchmark of the analysis package on a synthetic vesicle volume.

Volume: 128 x 512 x 512 voxels (1 nm isotropic), ~2,000 digitised spheres of
radius 9-12 voxels and a plate-like active zone (``analysis.synthetic``).

Measured, in one run:
- ``distances_s``: vesicle-to-active-zone distances with end points
  (``analysis.distances.distances_to_structure``);
- ``distances_reference_s``: SynapseNet's approach, one whole-volume
  ``scipy.ndimage.distance_transform_edt(return_indices=True)`` plus the
  minimum inside each vesicle; ``distances_max_diff_voxels`` compares both
  on the closest voxel-centre distance;
- ``pairwise_s``: nearest-neighbour boundary distances of all vesicles;
  ``pairwise_max_error_voxels``: largest deviation from an exhaustive search
  (every voxel of every other vesicle near a sample of vesicles);
  ``pairwise_max_error_vs_analytic_voxels``: deviation from the analytic
  sphere gap for spheres fully inside the volume;
- ``morphology_s``: ``analysis.morphology.object_table`` with surface areas.

Usage: ``python benchmarks/analysis.py [--quick] [--out PATH]``
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.distances import distances_to_structure, nearest_neighbor_distances, surface_gap_nm  # noqa: E402
from analysis.morphology import object_table  # noqa: E402
from analysis.synthetic import random_vesicle_volume  # noqa: E402


def _timed(func, *args, **kwargs):
    start = time.perf_counter()
    result = func(*args, **kwargs)
    return result, time.perf_counter() - start


def _reference_distances(vesicles: np.ndarray, structure: np.ndarray, spacing: tuple) -> np.ndarray:
    """SynapseNet-style: whole-volume scipy EDT with indices, minimum per vesicle."""
    dist, _indices = ndimage.distance_transform_edt(~structure, sampling=spacing, return_indices=True)
    index = np.arange(1, int(vesicles.max()) + 1)
    return np.asarray(ndimage.minimum(dist, vesicles, index))


def _pairwise_errors(vesicles, table, spacing, n_sample, rng):
    """Exhaustive check around sampled vesicles: any closer voxel must lie in the padded box."""
    slices = ndimage.find_objects(vesicles)
    errors = []
    for row in rng.choice(len(table), size=min(n_sample, len(table)), replace=False):
        label = int(table["label"].iloc[row])
        reach = int(np.ceil(table["distance_nm"].iloc[row] / min(spacing))) + 3
        box = tuple(slice(max(s.start - reach, 0), min(s.stop + reach, n)) for s, n in zip(slices[label - 1], vesicles.shape))
        crop = vesicles[box]
        offset = np.array([s.start for s in box])
        mine = (np.argwhere(crop == label) + offset) * spacing
        others = np.argwhere((crop != 0) & (crop != label))
        d, idx = cKDTree((others + offset) * spacing).query(mine)
        k = np.argmin(d)
        reference = surface_gap_nm(mine[k] - (others[idx[k]] + offset) * spacing, np.array(spacing))
        errors.append(abs(table["distance_nm"].iloc[row] - reference) / min(spacing))
    return float(max(errors))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 x 256 x 256 with 250 vesicles (< 1 minute)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "analysis.json")
    args = parser.parse_args(argv)
    shape, n_vesicles = ((64, 256, 256), 250) if args.quick else ((128, 512, 512), 2000)
    spacing = (1.0, 1.0, 1.0)
    data = random_vesicle_volume(shape, n_vesicles, (9.0, 12.0), seed=0)
    vesicles, az = data["vesicles"], data["active_zone"]

    ours, t_dist = _timed(distances_to_structure, vesicles, az, spacing)
    reference, t_ref = _timed(_reference_distances, vesicles, az, spacing)
    ends = ours[[f"object_point_{a}_nm" for a in "zyx"]].to_numpy() - ours[[f"structure_point_{a}_nm" for a in "zyx"]].to_numpy()
    centre_distance = np.linalg.norm(ends, axis=1)
    dist_diff = float(np.max(np.abs(centre_distance - reference[ours["label"].to_numpy() - 1])))

    pairs, t_pair = _timed(nearest_neighbor_distances, vesicles, spacing)
    pair_err = _pairwise_errors(vesicles, pairs, spacing, 100 if args.quick else 200, np.random.default_rng(1))
    centers, radii = data["centers"], data["radii"]
    inside = np.all((centers - radii[:, None] >= 0) & (centers + radii[:, None] <= np.array(shape) - 1), axis=1)
    gaps = np.linalg.norm(centers[:, None] - centers[None], axis=-1) - radii[:, None] - radii[None]
    np.fill_diagonal(gaps, np.inf)
    nearest_inside = inside & inside[np.argmin(gaps, axis=1)]
    analytic_err = float(np.max(np.abs(pairs["distance_nm"].to_numpy() - gaps.min(axis=1))[nearest_inside]) / min(spacing))

    _, t_morph = _timed(object_table, vesicles, spacing)

    result = {
        "n_vesicles": int(len(ours)),
        "volume_shape": list(shape),
        "voxel_size_nm": list(spacing),
        "distances_s": round(t_dist, 3),
        "distances_reference_s": round(t_ref, 3),
        "distances_speedup": round(t_ref / t_dist, 2),
        "distances_max_diff_voxels": dist_diff,
        "pairwise_s": round(t_pair, 3),
        "pairwise_max_error_voxels": round(pair_err, 4),
        "pairwise_max_error_vs_analytic_voxels": round(analytic_err, 3),
        "morphology_s": round(t_morph, 3),
        "quick": args.quick,
        "machine": f"{platform.machine()}, {platform.python_version()}",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.out)
    print(f"{result['n_vesicles']} vesicles in {shape}")
    print(f"vesicle->active zone: {t_dist:.2f} s (scipy whole-volume EDT: {t_ref:.2f} s, {result['distances_speedup']}x), max diff {dist_diff:.3g} voxels")
    print(f"nearest-neighbour distances: {t_pair:.2f} s, max error {pair_err:.3g} voxels (exhaustive), {analytic_err:.2f} voxels (analytic)")
    print(f"morphology table: {t_morph:.2f} s")
    print(f"written to {args.out}")
    return result


if __name__ == "__main__":
    main()
