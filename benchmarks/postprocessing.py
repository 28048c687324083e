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

The 2D package recipe (``model_packages/vesicles_2d``: ``mode:
predicted_distance``, seeds at the maxima of the network's distance
channel) is measured the same way against ``reference_predicted_distance``
(scipy maximum filter / dilation / labelling + whole-image skimage
watershed of ``-distance`` + size filter) on one 5 nm image of vesicles of
radius 3.5-6 px (``predicted_distance_separated``, gap 2 px, and
``predicted_distance_touching``, gap -1 px so neighbours share one
foreground component) with the package's parameters, and
``predicted_distance_touching_maxima`` with the mode's default maxima
seeding (``PD_MAXIMA_PARAMS``), 8192 x 8192 / 2048 x 2048 pixels (one random
tile repeated 4 x 4). The distance
channel is the ideal target (`synapse_bmz.training.targets.normalised_distance`)
smoothed and with 1 % noise, so no two pixels tie and the partitions must
be identical.
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


#: the vesicles_2d recipe at 5 nm pixels: the package's parameters (model_packages/vesicles_2d/rdf.yaml) and
#: the mode's default seeding (maxima within half the vesicle radius, seed threshold 0.5)
PD_VOXEL_NM = 5.0


def _package_params() -> dict:
    """The shipped vesicles_2d recipe parameters, read from its RDF so the benchmark cannot drift from it."""
    import yaml

    rdf = Path(__file__).resolve().parents[1] / "model_packages" / "vesicles_2d" / "rdf.yaml"
    params = yaml.safe_load(rdf.read_text())["config"]["synapse_bmz"]["postprocessing"]["params"]
    return {k: float(v) if isinstance(v, (int, float)) else v for k, v in params.items()}


PD_PARAMS = _package_params()
PD_MAXIMA_PARAMS = {**PD_PARAMS, "seed_threshold": 0.5, "seed_separation_nm": 15.0}


def reference_predicted_distance(foreground, distance, voxel_size_nm=PD_VOXEL_NM, params=PD_PARAMS):
    """Straightforward predicted-distance vesicle segmentation (scipy + whole-image skimage watershed).

    Seeds: pixels inside ``foreground > mask_threshold`` with ``distance >
    seed_threshold`` that are the maximum of ``distance`` within
    ``seed_separation_nm`` (box); maxima within that distance of each other
    are one seed (binary dilation by half the box, then labelling).
    Watershed of ``-distance`` inside the mask; instances smaller than a
    disk of ``min_radius_nm`` removed.
    """
    import math

    import numpy as np
    from scipy import ndimage
    from skimage.segmentation import watershed

    half = int(params["seed_separation_nm"] // voxel_size_nm)
    mask = foreground > params["mask_threshold"]
    peaks = mask & (distance > params["seed_threshold"])
    if params["seed_separation_nm"] > 0:
        peaks &= distance >= ndimage.maximum_filter(distance, size=2 * half + 1, mode="nearest")
        grown = ndimage.binary_dilation(peaks, structure=np.ones((2 * (half // 2) + 1,) * distance.ndim, bool))
        seeds = np.where(peaks, ndimage.label(grown)[0], 0)
    else:
        seeds = ndimage.label(peaks)[0]
    labels = watershed(-distance, markers=seeds, mask=mask)
    min_size = math.pi * (params["min_radius_nm"] / voxel_size_nm) ** 2
    sizes = np.bincount(labels.ravel())
    labels[np.isin(labels, np.flatnonzero(sizes < min_size))] = 0
    return labels


def compare_predicted_distance(name, shape, n, gap, seed, repeats, params=PD_PARAMS):
    """Our ``mode="predicted_distance"`` vs `reference_predicted_distance` on one 2D image."""
    import numpy as np
    from scipy import ndimage

    from analysis.evaluation import instance_scores
    from postprocessing import segment_vesicles
    from postprocessing.compare import same_partition
    from synapse_bmz.training.targets import normalised_distance

    # one tile of randomly placed vesicles (placement is quadratic in their number), repeated to ``shape``
    tile = tuple(s // repeat for s, repeat in zip(shape, (4, 4)))
    foreground, boundary, truth = make_case(tile, n // 16, (3.5, 6.0), gap, seed)
    foreground, boundary = np.tile(foreground, (4, 4)), np.tile(boundary, (4, 4))
    offsets = np.arange(16, dtype=np.uint32).reshape(4, 4) * np.uint32(truth.max())
    truth = np.where(np.tile(truth, (4, 4)) > 0, np.tile(truth, (4, 4)) + np.kron(offsets, np.ones(tile, np.uint32)), 0)
    rng = np.random.default_rng(seed)
    distance = ndimage.gaussian_filter(normalised_distance(truth), 0.7)
    distance = (distance + rng.normal(0, 0.01, shape)).astype(np.float32)
    pixels = int(foreground.size)
    components = ndimage.label(foreground > PD_PARAMS["mask_threshold"])[1]
    print(f"[{name}] {shape}, {int(truth.max())} vesicles of radius 3.5-6 px at {PD_VOXEL_NM} nm, gap {gap}, "
          f"{components} foreground components")
    ours_s, ours = timed(lambda: segment_vesicles(foreground, boundary, PD_VOXEL_NM, distance=distance, **params),
                         repeats + 1, warmup=True)
    reference_s, reference = timed(lambda: reference_predicted_distance(foreground, distance, params=params), repeats)
    identical = same_partition(ours, reference)
    result = {
        "pixels": pixels, "shape": list(shape), "voxel_size_nm": PD_VOXEL_NM, "n_vesicles": int(truth.max()),
        "n_foreground_components": int(components), "params": params,
        "ours_s": round(ours_s, 3), "reference_s": round(reference_s, 3),
        "speedup": round(reference_s / ours_s, 2), "ours_pixels_per_s": round(pixels / ours_s),
        "identical": bool(identical), "differing_pixels": 0 if identical else _differing(ours, reference),
        # on the first tile: a dense IoU matrix of all ~190 000 objects would not fit in memory
        "f1_ideal_iou_0.5_first_tile": round(instance_scores(truth[:tile[0], :tile[1]], ours[:tile[0], :tile[1]])["f1"], 4),
    }
    print(f"  ours {ours_s:.2f} s, reference {reference_s:.2f} s, speedup {result['speedup']}x, identical {identical}")
    return result


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
    pd_shape, pd_n = ((2048, 2048), 12_000) if args.quick else ((8192, 8192), 190_000)  # ~1 vesicle per 350 px
    pd_separated = compare_predicted_distance("predicted_distance_separated", pd_shape, pd_n, 2.0, 3, args.repeats)
    pd_touching = compare_predicted_distance("predicted_distance_touching", pd_shape, pd_n, -1.0, 4, args.repeats)
    pd_maxima = compare_predicted_distance("predicted_distance_touching_maxima", pd_shape, pd_n, -1.0, 4, args.repeats,
                                           PD_MAXIMA_PARAMS)
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
        # the vesicles_2d package's recipe (mode predicted_distance) against its straightforward version
        "predicted_distance_separated": pd_separated,
        "predicted_distance_touching": pd_touching,
        "predicted_distance_touching_maxima": pd_maxima,
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "command": "python benchmarks/postprocessing.py" + (" --quick" if args.quick else ""),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.out)
    print(
        f"speedup {result['speedup']}x, identical {result['identical']}, "
        f"blockwise_identical {result['blockwise_identical']}, dense_recall {result['dense_recall']}; "
        f"predicted_distance speedup {pd_separated['speedup']}x separated, {pd_touching['speedup']}x touching "
        f"-> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
