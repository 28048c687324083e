"""How well the EPFL vesicle annotation agrees with itself from one section to the next.

The EPFL FIB-SEM sections are 5 nm apart and a synaptic vesicle is about
40-50 nm across, so neighbouring sections cut mostly the same vesicles. For
every pair of consecutive annotated sections (file names give the z index:
0000-0003, 0045-0048, 0061-0063, 0089-0091, 0161-0164) this scores

- ``annotation``: the annotation of section z against that of z + 1;
- ``prediction``: the package's instances (its network, test-time
  augmentation and recipe, as the card) of z against those of z + 1;

with the card's metric (instance F1 after Hungarian matching, IoU 0.3 / 0.5 /
0.7, counts pooled over pairs: `analysis.evaluation.pooled_instance_report`).
The prediction pair shows how much real tissue change 5 nm brings; the
annotation pair adds the annotators' section-to-section disagreement to it
(object counts jump by up to two thirds between neighbours). Neither is a
strict ceiling of the card figure; they are the scale against which the card's
figure and its 0.80 target are read.

It also takes the card's own figure apart (``errors``: the package against
the annotation of the same section at IoU 0.5, `analysis.evaluation.object_outcomes`):
annotated objects missed outright (no predicted pixel on them) or touched but
not matched, predictions on no annotated pixel, the splits with the area of
each split annotated object over the median annotated area (an annotated blob
many vesicles wide, which the package cuts into vesicles, counts as a split),
recall per annotated area in nm^2, and the highest foreground probability the
network gives the objects it missed outright.

JSON (`benchmarks/results/annotation_agreement.json`): ``annotation`` and
``prediction``, each ``{"all": ..., "training_runs": ..., "held_out_run": ...}``
with ``f1_iou_0_3``, ``f1_iou_0_5``, ``f1_iou_0_7``, ``n_pairs``; ``pairs``:
the per-pair figures with object counts; ``errors``: ``{"held_out_run": ...,
"training_runs": ...}`` over the sections of those runs.

Usage: ``python benchmarks/annotation_agreement.py [--quick] [--out PATH] [--package DIR]``
(``--quick``: the first run of sections only).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def consecutive_pairs(names):
    """Index pairs ``(i, j)`` of file names whose z index (``training0161.png`` -> 161) differs by 1."""
    z = {int(re.search(r"(\d+)\D*$", Path(n).stem).group(1)): i for i, n in enumerate(names)}
    return [(z[k], z[k + 1]) for k in sorted(z) if k + 1 in z]


def _summary(pairs):
    from analysis.evaluation import pooled_instance_report

    r = pooled_instance_report(pairs)
    return {"f1_iou_0_3": round(r[0.3]["f1"], 4), "f1_iou_0_5": round(r[0.5]["f1"], 4),
            "f1_iou_0_7": round(r[0.7]["f1"], 4), "n_pairs": r["n_images"]}


#: annotated object areas (nm^2) reported separately; a 40 nm vesicle cut through its centre is ~1250 nm^2
AREA_BINS_NM2 = (0, 500, 1000, 2000, 4000, 10000, float("inf"))


def error_anatomy(gts, labels, foregrounds, pixel_area_nm2):
    """Where the package's instances differ from the annotation of the same section (IoU 0.5).

    Parameters
    ----------
    gts, labels : sequence of (Y, X) ndarray of int
        Annotated and predicted instances per section.
    foregrounds : sequence of (Y, X) ndarray of float
        The network's foreground probability per section.
    pixel_area_nm2 : float
        Area of one pixel (nm^2).
    """
    import numpy as np
    from scipy import ndimage

    from analysis.evaluation import object_outcomes

    parts = [object_outcomes(g, lab, 0.5) for g, lab in zip(gts, labels)]

    def cat(key):
        return np.concatenate([o[key] for o in parts])

    area = cat("gt_voxels") * pixel_area_nm2
    matched, touched, split = cat("gt_matched"), cat("gt_touched"), cat("gt_split")
    median = float(np.median(area))
    ratios = np.sort(area[split] / median)
    peak = np.concatenate([
        np.asarray(ndimage.maximum(fg, g, o["gt_labels"][~o["gt_touched"]]), dtype=float).reshape(-1)
        for g, fg, o in zip(gts, foregrounds, parts)])
    bins = []
    for lo, hi in zip(AREA_BINS_NM2[:-1], AREA_BINS_NM2[1:]):
        sel = (area >= lo) & (area < hi)
        bins.append({"area_nm2": [lo, None if hi == float("inf") else hi], "n": int(sel.sum()),
                     "recall": round(float(matched[sel].mean()), 4) if sel.any() else None})
    pred_matched, pred_touched = cat("pred_matched"), cat("pred_touched")
    return {
        "n_sections": len(parts), "n_annotated": int(area.size), "n_predicted": int(pred_matched.size),
        "true_positives": int(matched.sum()),
        "missed_outright": int((~touched).sum()), "missed_touched": int((~matched & touched).sum()),
        "false_outright": int((~pred_touched).sum()), "false_touched": int((~pred_matched & pred_touched).sum()),
        "merges": int(cat("pred_merge").sum()), "splits": int(split.sum()),
        "splits_matched": int((split & matched).sum()),
        "median_annotated_area_nm2": round(median, 1),
        "split_area_over_median": [round(float(r), 2) for r in ratios],
        "splits_at_least_twice_the_median_area": int((ratios >= 2).sum()),
        "recall_by_area": bins,
        "missed_outright_max_foreground_median": round(float(np.median(peak)), 3) if peak.size else None,
        "missed_outright_max_foreground_above_0_5": int((peak > 0.5).sum()),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="the first run of consecutive sections only")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "annotation_agreement.json")
    p.add_argument("--package", type=Path, default=REPO / "model_packages" / "vesicles_2d")
    a = p.parse_args(argv)

    import numpy as np
    import torch

    from analysis.evaluation import instance_scores
    from postprocessing.recipes import apply_recipe
    from synapse_bmz.io.atomic import write_atomic
    from synapse_bmz.training.adapt import load_package_network
    from synapse_bmz.training.config import load_train_config
    from synapse_bmz.training.data import load_split
    from synapse_bmz.training.loop import predict_slices

    torch.set_num_threads(max(1, torch.get_num_threads()))
    t0 = time.perf_counter()
    cfg = load_train_config(a.package / "train.yaml")
    train, val = load_split(cfg)
    names = list(train.names) + list(val.names)
    raws = list(train.raw) + list(val.raw)
    gts = list(train.instances) + list(val.instances)
    held_out = set(range(len(train.names), len(names)))
    pairs = consecutive_pairs(names)
    if a.quick:
        pairs = pairs[:1]
    used = sorted({i for q in pairs for i in q})
    net = load_package_network(a.package).model
    pp = cfg.package.postprocessing
    vox = tuple(cfg.data.voxel_size_nm)
    preds = dict(zip(used, predict_slices(net, [raws[i] for i in used], "cpu", net.divisibility,
                                          cfg.package.test_time_augmentation)))
    labels = {i: apply_recipe(pp["recipe"], preds[i], vox, pp.get("params", {})) for i in used}

    rows = []
    for i, j in pairs:
        ga, gb, la, lb = gts[i], gts[j], labels[i], labels[j]
        rows.append({"sections": [names[i], names[j]], "held_out": i in held_out,
                     "annotated_objects": [int(len(np.unique(ga)) - 1), int(len(np.unique(gb)) - 1)],
                     "predicted_objects": [int(len(np.unique(la)) - 1), int(len(np.unique(lb)) - 1)],
                     "annotation_f1_iou_0_5": round(instance_scores(ga, gb, 0.5)["f1"], 4),
                     "prediction_f1_iou_0_5": round(instance_scores(la, lb, 0.5)["f1"], 4)})
    groups = {"all": pairs, "training_runs": [q for q in pairs if q[0] not in held_out],
              "held_out_run": [q for q in pairs if q[0] in held_out]}
    result = {
        kind: {g: _summary([(src[i], src[j]) for i, j in qs]) for g, qs in groups.items() if qs}
        for kind, src in (("annotation", gts), ("prediction", labels))
    }
    pixel_area_nm2 = float(np.prod(vox))
    runs = {"held_out_run": [i for i in used if i in held_out], "training_runs": [i for i in used if i not in held_out]}
    result["errors"] = {run: error_anatomy([gts[i] for i in idx], [labels[i] for i in idx],
                                           [preds[i][0] for i in idx], pixel_area_nm2)
                        for run, idx in runs.items() if idx}
    result.update(pairs=rows, package=str(a.package.relative_to(REPO) if a.package.is_relative_to(REPO) else a.package),
                  test_time_augmentation=cfg.package.test_time_augmentation, quick=a.quick,
                  seconds=round(time.perf_counter() - t0, 1))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(a.out, lambda tmp: tmp.write_text(json.dumps(result, indent=2) + "\n"))
    for r in rows:
        print(f"{r['sections'][0]} -> {r['sections'][1]}: annotation F1 {r['annotation_f1_iou_0_5']:.3f} "
              f"(objects {r['annotated_objects']}), prediction F1 {r['prediction_f1_iou_0_5']:.3f} "
              f"(objects {r['predicted_objects']})")
    for kind in ("annotation", "prediction"):
        for g, s in result[kind].items():
            print(f"{kind:10s} {g:14s} F1 {s['f1_iou_0_3']:.3f} / {s['f1_iou_0_5']:.3f} / {s['f1_iou_0_7']:.3f} "
                  f"at IoU 0.3/0.5/0.7 over {s['n_pairs']} neighbouring pairs")
    for run, e in result["errors"].items():
        print(f"errors {run}: {e['true_positives']} of {e['n_annotated']} annotated found at IoU 0.5; "
              f"missed {e['missed_outright']} outright (median peak foreground "
              f"{e['missed_outright_max_foreground_median']}), {e['missed_touched']} touched; false "
              f"{e['false_outright']} outright, {e['false_touched']} touched; {e['splits']} splits "
              f"({e['splits_matched']} still matched by one piece), "
              f"{e['splits_at_least_twice_the_median_area']} of them annotated objects >= 2x the median area; "
              f"recall by area " + ", ".join(f"{b['area_nm2'][0]}+ nm2: {b['recall']} (n {b['n']})"
                                             for b in e["recall_by_area"]))
    print(f"written: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
