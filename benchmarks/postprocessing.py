"""Vesicle instance segmentation throughput: ours vs the straightforward version.

Usage::

    python benchmarks/postprocessing.py [--quick] [--out PATH]

Builds ideal two-channel predictions (foreground, boundary) of randomly
placed vesicles, runs

- ``reference_segment_vesicles`` (below): the straightforward implementation
  of SynapseNet's algorithm with ``scipy.ndimage.distance_transform_edt``
  and ``skimage.segmentation.watershed`` on the whole volume;
- ``postprocessing.segment_vesicles`` with the same parameters, whole volume
  and block-wise (zarr in, zarr out),

checks that the instances are identical (up to relabelling), and measures
recall of the derived defaults in a dense case of small vesicles. Writes
JSON (default ``benchmarks/results/postprocessing.json``).

Cases (full / ``--quick``):

- main: 128 x 512 x 512 / 64 x 256 x 256, ~500 / ~63 vesicles of radius
  15-25 voxels, at least 2 voxels between vesicle surfaces (the predicted
  boundaries of neighbours do not touch);
- touching: as main but neighbouring vesicles may overlap by 1 voxel, so
  clusters of vesicles share one watershed mask component;
- dense: ~2,000 / ~250 vesicles of radius 9-12 voxels.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# This script is named like the package: import the package, not the script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
VOXEL_NM = 1.5  # isotropic voxel size used for all cases
SEED_VOXELS = 8  # SynapseNet's fixed seed distance (voxels)
MIN_SIZE_VOXELS = 500  # SynapseNet's minimum vesicle size (voxels)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller volume, finishes in < 1 min")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "postprocessing.json",
        help="JSON output path",
    )
    parser.add_argument(
        "--repeats", type=int, default=2,
        help="timing repeats of the reference (best is kept); ours gets one untimed warm-up and one more repeat",
    )
    return parser.parse_args(argv)


def reference_segment_vesicles(foreground, boundary, seed_voxels=SEED_VOXELS, min_size=MIN_SIZE_VOXELS):
    """Straightforward SynapseNet vesicle segmentation (scipy EDT + skimage).

    Distance of interior voxels (foreground > 0.5, boundary < 0.5) to the
    nearest non-interior voxel; seeds = connected components of distance >
    ``seed_voxels``; watershed of -distance inside foreground + boundary >
    0.5; instances below ``min_size`` voxels removed.
    """
    import numpy as np
    from scipy import ndimage
    from skimage.segmentation import watershed

    inside = (foreground > 0.5) & (boundary < 0.5)
    distance = ndimage.distance_transform_edt(inside)
    seeds, _ = ndimage.label(distance > seed_voxels)
    labels = watershed(-distance, markers=seeds, mask=(foreground + boundary) > 0.5)
    sizes = np.bincount(labels.ravel())
    labels[np.isin(labels, np.flatnonzero(sizes < min_size))] = 0
    return labels


def make_case(shape, n, radius_range, gap, seed):
    import numpy as np

    from postprocessing.synthetic import place_balls, vesicle_prediction

    rng = np.random.default_rng(seed)
    centers, radii = place_balls(shape, n, radius_range, rng, gap=gap, max_tries=400_000)
    foreground, boundary, truth = vesicle_prediction(shape, centers, radii)
    return foreground, boundary, truth


def timed(function, repeats=1, warmup=False):
    """Best wall time of ``repeats`` calls (after one untimed call if ``warmup``)."""
    if warmup:
        function()
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def our_params():
    import math

    min_radius_voxels = (3 * MIN_SIZE_VOXELS / (4 * math.pi)) ** (1 / 3)
    return {"seed_distance_nm": SEED_VOXELS * VOXEL_NM, "min_radius_nm": min_radius_voxels * VOXEL_NM}


def run_blockwise(foreground, boundary, block_shape, halo):
    import numpy as np
    import zarr

    from postprocessing import apply_recipe_blockwise

    prediction = zarr.create_array(
        store={}, shape=(2,) + foreground.shape, chunks=(1,) + tuple(block_shape), dtype="float32"
    )
    prediction[0], prediction[1] = foreground, boundary
    out = zarr.create_array(store={}, shape=foreground.shape, chunks=block_shape, dtype="uint32", fill_value=0)
    voxel = (VOXEL_NM,) * 3

    def go():
        return apply_recipe_blockwise("vesicles", prediction, voxel, our_params(), out, block_shape, halo)

    seconds, _ = timed(go)
    return seconds, np.asarray(out[...])


def compare_case(name, shape, n, radius_range, gap, seed, repeats, blockwise):
    from analysis.evaluation import instance_scores
    from postprocessing import segment_vesicles
    from postprocessing.compare import same_partition

    foreground, boundary, truth = make_case(shape, n, radius_range, gap, seed)
    voxels = int(foreground.size)
    print(f"[{name}] {shape}, {int(truth.max())} vesicles of radius {radius_range} voxels, gap {gap}")
    ours_s, ours = timed(
        lambda: segment_vesicles(foreground, boundary, VOXEL_NM, **our_params()), repeats + 1, warmup=True
    )
    reference_s, reference = timed(lambda: reference_segment_vesicles(foreground, boundary), repeats)
    identical = same_partition(ours, reference)
    threads_s, _ = timed(
        lambda: segment_vesicles(foreground, boundary, VOXEL_NM, n_threads=2, **our_params()), repeats + 1
    )
    result = {
        "voxels": voxels,
        "shape": list(shape),
        "n_vesicles": int(truth.max()),
        "ours_s": round(ours_s, 3),
        "reference_s": round(reference_s, 3),
        "speedup": round(reference_s / ours_s, 2),
        "ours_voxels_per_s": round(voxels / ours_s),
        "ours_2_threads_s": round(threads_s, 3),
        "reference_voxels_per_s": round(voxels / reference_s),
        "identical": bool(identical),
        "differing_voxels": 0 if identical else _differing(ours, reference),
        "recall_reference": round(instance_scores(truth, reference)["recall"], 4),
    }
    print(
        f"  ours {ours_s:.2f} s, reference {reference_s:.2f} s, speedup {result['speedup']}x, "
        f"identical {identical}"
    )
    if blockwise:
        block_shape = tuple(min(s, b) for s, b in zip(shape, (128, 256, 256)))
        halo = 52  # > largest vesicle mask component (2 * 25 + 1 voxels)
        blockwise_s, blocks = run_blockwise(foreground, boundary, block_shape, halo)
        result.update(
            blockwise_s=round(blockwise_s, 3),
            blockwise_voxels_per_s=round(voxels / blockwise_s),
            block_shape=list(block_shape),
            halo=halo,
            blockwise_identical=bool(same_partition(blocks, reference)),
        )
        print(f"  block-wise {blockwise_s:.2f} s, identical {result['blockwise_identical']}")
    return result, (foreground, boundary, truth)


def _differing(ours, reference):
    """Voxels whose label differs after mapping each of our labels to its best reference label."""
    import numpy as np

    a, b = ours.ravel().astype(np.int64), reference.ravel().astype(np.int64)
    pairs, counts = np.unique(np.stack([a, b]), axis=1, return_counts=True)
    best = {}
    for (x, y), c in zip(pairs.T, counts):
        if c > best.get(x, (0, 0))[1]:
            best[x] = (y, c)
    agree = sum(c for y, c in best.values())
    return int(a.size - agree)


def dense_recall(shape, n, seed, repeats):
    from analysis.evaluation import instance_scores
    from postprocessing import segment_vesicles

    foreground, boundary, truth = make_case(shape, n, (9, 12), 2.0, seed)
    # Defaults derived from the expected radius (10.5 voxels).
    ours_s, labels = timed(
        lambda: segment_vesicles(foreground, boundary, VOXEL_NM, vesicle_radius_nm=10.5 * VOXEL_NM),
        repeats + 1,
        warmup=True,
    )
    ours = instance_scores(truth, labels)
    reference_s, reference_labels = timed(lambda: reference_segment_vesicles(foreground, boundary), repeats)
    reference = instance_scores(truth, reference_labels)
    print(
        f"[dense] {int(truth.max())} vesicles of radius 9-12 voxels: recall {ours['recall']:.3f} "
        f"(derived defaults) vs {reference['recall']:.3f} (SynapseNet's 8 voxels); "
        f"{ours_s:.2f} s vs {reference_s:.2f} s"
    )
    return {
        "n_vesicles": int(truth.max()),
        "recall": round(ours["recall"], 4),
        "precision": round(ours["precision"], 4),
        "recall_synapsenet_defaults": round(reference["recall"], 4),
        "ours_s": round(ours_s, 3),
        "reference_s": round(reference_s, 3),
    }


def main(argv=None):
    args = parse_args(argv)
    if args.quick:
        shape, n_main, n_dense = (64, 256, 256), 63, 250
    else:
        shape, n_main, n_dense = (128, 512, 512), 500, 2000
    main_case, _ = compare_case("main", shape, n_main, (15, 25), 2.0, 0, args.repeats, True)
    touching, _ = compare_case("touching", shape, n_main, (15, 25), -1.0, 1, args.repeats, False)
    dense = dense_recall(shape, n_dense, 2, args.repeats)
    result = {
        "voxels": main_case["voxels"],
        "ours_s": main_case["ours_s"],
        "reference_s": main_case["reference_s"],
        "speedup": main_case["speedup"],
        "identical": main_case["identical"],
        "blockwise_identical": main_case["blockwise_identical"],
        "dense_recall": dense["recall"],
        "quick": args.quick,
        "timing": (
            f"wall seconds, single thread; ours: best of {args.repeats + 1} after one warm-up call, "
            f"reference: best of {args.repeats}; block-wise: one run (zarr in memory)"
        ),
        "voxel_size_nm": VOXEL_NM,
        "parameters": {"seed_voxels": SEED_VOXELS, "min_size_voxels": MIN_SIZE_VOXELS},
        "main": main_case,
        "touching": touching,
        "dense": dense,
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "command": "python benchmarks/postprocessing.py" + (" --quick" if args.quick else ""),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.out)
    print(
        f"speedup {result['speedup']}x, identical {result['identical']}, "
        f"blockwise_identical {result['blockwise_identical']}, dense_recall {result['dense_recall']} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
