"""Synaptic partners: held-out F-score of both packages, extraction throughput, evaluation time.

Usage::

    python benchmarks/partners.py [--quick] [--no-real] [--card-figures] [--out PATH]
    python benchmarks/partners.py --variant PACKAGE_DIR   # one more polarity package, e.g. trained on VNC_LIKE

- ``f_score_synful`` / ``f_score_polarity``: the shipped ``synaptic_partners``
  and ``synaptic_polarity`` packages on simulated ssTEM neuropil of the test
  seeds in their ``train.yaml`` (never used for training or checkpoint
  choice), through the consumer path: `synapse_bmz.api.predict`
  (bioimageio.core, tiles with the measured halo) then
  `synapse_bmz.partners.partners` with the package's recipe, neuron ids from
  the simulated segmentation, scored by
  `analysis.partner_evaluation.evaluate_partners` (Synful's CREMI setting:
  400 nm on both sites, agreeing neuron pair, same-neuron pairs dropped);
  TP/FP/FN pooled over the seeds. Also without ids and at 100 nm.
- ``extraction_voxels_per_s``: Synful extraction of an ideal prediction (the
  targets of a simulated volume, tiled to ``--extraction-shape``), whole volume;
  ``blockwise_voxels_per_s`` and ``blockwise_identical`` for the block-wise
  path (blocks of ``(16, 256, 256)``) against it.
- ``evaluation_100k_s``: 100 000 predicted vs 100 000 ground-truth partners.
- ``real``: both packages on the Drosophila VNC stack 1 sections
  (``../shared/data/drosophila_vnc/stack1``, 50 x 4.6 x 4.6 nm): the fraction of
  annotated synapses (3D connected components of the synapse masks) with a
  partner's post- or pre-site within 200 nm, and how many partners have
  neither site within 200 nm of any annotated synapse.

Writes JSON (default ``benchmarks/results/partners.json``); one torch thread.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# This script is named like a module of the package: import the package, not the script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

PACKAGES = {"synful": "synaptic_partners", "polarity": "synaptic_polarity"}
NEAR_NM = 200.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one test seed, smaller extraction volume, no real data")
    p.add_argument("--no-real", action="store_true", help="skip the Drosophila VNC stack")
    p.add_argument("--card-figures", action="store_true",
                   help="also write each package's real_data/vnc_overlay.png (the model cards' real-data picture)")
    p.add_argument("--extraction-shape", default="16,1024,1024", help="z,y,x of the throughput volume")
    p.add_argument("--variant", type=Path, metavar="PACKAGE",
                   help="only score this polarity package (e.g. one trained on VNC_LIKE simulation): on the held-out "
                        "seeds of its own simulation and of the shipped package's, and on the VNC stack; the result "
                        "goes into --out under variants/<folder name>, the rest of --out is kept")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "partners.json")
    return p.parse_args(argv)


def score_variant(package: Path) -> dict:
    """A polarity package beside the shipped one: held-out seeds of both simulations, and real data."""
    from synapse_bmz.training.partners import load_partner_config

    shipped = ROOT / "model_packages" / PACKAGES["polarity"] / "train.yaml"
    own_cfg, shipped_cfg = load_partner_config(package / "train.yaml"), load_partner_config(shipped)
    seeds = own_cfg.data.simulation.test_seeds
    own = held_out_scores("polarity", seeds, package=package)

    def test_look(cfg):  # what decides the test volumes (extra_training only adds training volumes)
        sim = cfg.data.simulation
        return sim.shape, sim.simulator_params, cfg.data.voxel_size_nm

    # the same test volumes (e.g. a variant with extra_training only) are scored once
    same = test_look(own_cfg) == test_look(shipped_cfg)
    out = {"own_simulation": own,
           "shipped_simulation": own if same else held_out_scores("polarity", seeds, package=package, config=shipped),
           "real": real_stack("polarity", package=package)}
    # where it was trained is a scratch folder; what reproduces it is its config
    label = variant_label(package)
    for part in out.values():
        part["package"] = label
    return out


def variant_label(package: Path) -> str:
    """``NAME (benchmarks/configs/NAME.yaml)`` when that config exists, else the folder name."""
    config = ROOT / "benchmarks" / "configs" / f"{package.name}.yaml"
    return f"{package.name} ({config.relative_to(ROOT)})" if config.exists() else package.name


def held_out_scores(kind: str, seeds, package=None, config=None):
    import numpy as np

    from analysis.evaluation import scores_from_counts
    from analysis.partner_evaluation import evaluate_partners
    from synapse_bmz import api
    from synapse_bmz.partners import partners
    from synapse_bmz.simulate import simulate_sstem_neuropil
    from synapse_bmz.simulate.partner_targets import ground_truth_partners
    from synapse_bmz.training.partners import load_partner_config

    name = str(package or PACKAGES[kind])
    # the simulation scored on: the package's own train.yaml unless another config is given
    cfg = load_partner_config(Path(config) if config else
                              Path(package or ROOT / "model_packages" / name) / "train.yaml")
    session = api.load_session(name, device="cpu")
    counts = {"ids": [0, 0, 0], "distance_only": [0, 0, 0], "strict": [0, 0, 0]}
    t0 = time.perf_counter()
    for seed in seeds:
        sim = simulate_sstem_neuropil(tuple(cfg.data.simulation.shape), tuple(cfg.data.voxel_size_nm), int(seed),
                                      **cfg.data.simulation.simulator_params)
        pred = api.predict(session, sim.raw, voxel_size_nm=sim.voxel_size_nm)
        gt = ground_truth_partners(sim)
        with_ids = partners(session, pred, neurons=sim.labels["neurons"])
        plain = partners(session, pred)
        for key, (p, g, d) in {"ids": (with_ids, gt, 400.0),
                               "distance_only": (plain, gt.drop(columns=["pre_id", "post_id"]), 400.0),
                               "strict": (with_ids, gt, 100.0)}.items():
            s = evaluate_partners(p, g, max_distance_nm=d)
            counts[key] = [a + b for a, b in zip(counts[key], (s["tp"], s["fp"], s["fn"]))]
    out = {"package": name, "seeds": list(seeds), "predict_and_extract_s": round(time.perf_counter() - t0, 1)}
    for key, (tp, fp, fn) in counts.items():
        s = scores_from_counts(tp, fp, fn)
        out[key] = {"f_score": round(s["f1"], 4), "precision": round(s["precision"], 4),
                    "recall": round(s["recall"], 4), "tp": tp, "fp": fp, "fn": fn}
    out["n_ground_truth_partners"] = counts["ids"][0] + counts["ids"][2]
    return out


def extraction(shape):
    import numpy as np
    import pandas as pd

    from postprocessing.partners import extract_partners, extract_partners_blockwise
    from synapse_bmz.simulate import simulate_sstem_neuropil
    from synapse_bmz.simulate.partner_targets import partner_targets

    sim = simulate_sstem_neuropil((16, 256, 256), seed=3000, n_synapses=14)
    t = partner_targets(sim.labels["neurons"], sim.labels["membrane"], sim.partners, sim.voxel_size_nm)
    tile = t.synful()
    reps = [int(np.ceil(s / n)) for s, n in zip(shape, tile.shape[1:])]
    pred = np.tile(tile, [1] + reps)[(slice(None),) + tuple(slice(0, s) for s in shape)]
    pred = np.ascontiguousarray(pred, np.float32)
    params = {"min_volume_nm3": 40000.0, "max_extent_nm": 600.0}
    voxels = int(np.prod(shape))
    t0 = time.perf_counter()
    whole = extract_partners("synful_partners", pred, sim.voxel_size_nm, params)
    t_whole = time.perf_counter() - t0
    t0 = time.perf_counter()
    blocks = extract_partners_blockwise("synful_partners", pred, sim.voxel_size_nm, params, (16, 256, 256))
    t_block = time.perf_counter() - t0
    try:
        pd.testing.assert_frame_equal(whole, blocks)
        identical = True
    except AssertionError:
        identical = False
    return {"shape": list(shape), "n_partners": int(len(whole)), "whole_s": round(t_whole, 2),
            "blockwise_s": round(t_block, 2), "extraction_voxels_per_s": round(voxels / t_whole),
            "blockwise_voxels_per_s": round(voxels / t_block), "blockwise_identical": identical}


def evaluation_100k():
    import numpy as np
    import pandas as pd

    from analysis.partner_evaluation import evaluate_partners

    rng = np.random.default_rng(0)
    n = 100_000
    post = rng.uniform(0, 200_000, (n, 3))
    pre = post + rng.normal(0, 100, (n, 3))
    cols = ["pre_z_nm", "pre_y_nm", "pre_x_nm", "post_z_nm", "post_y_nm", "post_x_nm"]
    gt = pd.DataFrame(np.hstack([pre, post]), columns=cols)
    pred = gt + rng.normal(0, 30, gt.shape)
    t0 = time.perf_counter()
    s = evaluate_partners(pred, gt)
    return round(time.perf_counter() - t0, 2), round(s["f_score"], 4)


def real_overlay(path: Path, raw, mask, prediction, table, vox, model_vox, kind: str, crop: int = 384) -> dict:
    """A picture of the real-data result: the section with the most annotated synapse area, cropped
    around its largest synapse; raw | annotation outline (cyan) | the package's synapse probability
    (red: post-synaptic for Synful, synapse union for polarity) with partners (yellow, post -> pre dot).

    ``prediction`` is on the package's grid (sections of ``model_vox[0]`` nm), ``raw``/``mask`` on the
    input's (``vox``); both share the in-plane pixel size."""
    import numpy as np
    from PIL import Image, ImageDraw
    from scipy import ndimage

    from synapse_bmz.packaging.card import _to_uint8

    z = int(mask.reshape(mask.shape[0], -1).sum(1).argmax())
    lab, n = ndimage.label(mask[z])
    sizes = np.bincount(lab.ravel())[1:]
    cy, cx = ndimage.center_of_mass(lab == (int(sizes.argmax()) + 1)) if n else (raw.shape[1] / 2, raw.shape[2] / 2)
    y0 = int(np.clip(cy - crop / 2, 0, raw.shape[1] - crop))
    x0 = int(np.clip(cx - crop / 2, 0, raw.shape[2] - crop))
    win = (slice(y0, y0 + crop), slice(x0, x0 + crop))
    zm = int(np.clip(round(z * vox[0] / model_vox[0]), 0, prediction.shape[1] - 1))
    prob = np.clip(np.asarray(prediction[0 if kind == "synful" else 2, zm][win], np.float32), 0, 1)
    grey = _to_uint8(raw[z][win]).astype(np.float32)
    rgb = np.stack([grey] * 3, -1)
    edge = mask[z][win] & ~ndimage.binary_erosion(mask[z][win], iterations=2)
    outlined = rgb.copy()
    outlined[edge] = (0, 230, 255)
    heat = rgb * (1 - prob[..., None] * 0.6) + np.array((255, 40, 40), np.float32) * prob[..., None] * 0.6
    heat[edge] = (0, 230, 255)
    img = Image.fromarray(np.concatenate([rgb, outlined, heat], axis=1).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    shown = 0
    for row in table.itertuples(index=False):
        if int(round(row.post_z_nm / model_vox[0])) != zm:
            continue
        py, px = row.post_y_nm / vox[1] - y0, row.post_x_nm / vox[2] - x0 + 2 * crop
        qy, qx = row.pre_y_nm / vox[1] - y0, row.pre_x_nm / vox[2] - x0 + 2 * crop
        if 0 <= py < crop and 2 * crop <= px < 3 * crop:
            draw.line([(px, py), (qx, qy)], fill=(255, 230, 0), width=2)
            draw.ellipse([qx - 3, qy - 3, qx + 3, qy + 3], fill=(255, 230, 0))
            shown += 1
    path.parent.mkdir(parents=True, exist_ok=True)
    img.quantize(colors=96).save(path, optimize=True)  # a palette keeps the card picture small
    return {"path": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path), "section": z,
            "window_yx": [y0, x0, crop], "max_probability_in_window": round(float(prob.max()), 4),
            "partners_shown": shown}


def real_stack(kind: str, card_figures: bool = False, package=None):
    """Both packages on the Drosophila VNC stack 1 sections, against its synapse masks."""
    import edt
    import numpy as np
    from scipy import ndimage

    from synapse_bmz import api
    from synapse_bmz.io.slices import read_slice
    from synapse_bmz.partners import partners
    from synapse_bmz.paths import shared_data_dir

    stack = Path(shared_data_dir()) / "drosophila_vnc" / "stack1"
    if not (stack / "raw").is_dir():
        return {"skipped": f"{stack} not found"}
    files = sorted(p for p in (stack / "raw").iterdir() if p.suffix.lower() in (".tif", ".tiff", ".png"))
    raw = np.stack([read_slice(f) for f in files])
    masks = []
    for f in files:
        cand = [p for p in (stack / "synapses").iterdir() if p.stem == f.stem]
        m = read_slice(cand[0])
        masks.append(m if m.dtype == bool else m > 127)
    mask = np.stack(masks)
    vox = (50.0, 4.6, 4.6)
    name = str(package or PACKAGES[kind])
    session = api.load_session(name, device="cpu")
    t0 = time.perf_counter()
    pred = api.predict(session, raw, voxel_size_nm=vox)
    table = partners(session, pred)
    elapsed = time.perf_counter() - t0
    # the prediction is on the model grid (45 nm sections): nm positions -> input voxels
    dist = edt.edt(~mask, anisotropy=vox, black_border=False)
    synapses, n_syn = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    hit = set()
    outside = 0
    for row in table.itertuples(index=False):
        near_any = False
        for site in ((row.post_z_nm, row.post_y_nm, row.post_x_nm), (row.pre_z_nm, row.pre_y_nm, row.pre_x_nm)):
            idx = tuple(int(np.clip(round(c / v), 0, s - 1)) for c, v, s in zip(site, vox, mask.shape))
            if dist[idx] <= NEAR_NM:
                near_any = True
                # which synapse: the labelled voxel nearest to the site within its neighbourhood
                r = [max(1, int(NEAR_NM / v)) for v in vox]
                win = tuple(slice(max(i - k, 0), i + k + 1) for i, k in zip(idx, r))
                ids = np.unique(synapses[win])
                hit.update(int(i) for i in ids if i)
        outside += not near_any
    res = {"package": name, "sections": len(files), "shape": list(raw.shape),
           "voxel_size_nm": list(vox), "n_annotated_synapses": int(n_syn), "n_partners": int(len(table)),
           "fraction_synapses_with_partner": round(len(hit) / n_syn, 4) if n_syn else None,
           "partners_outside_synapses": int(outside), "near_nm": NEAR_NM, "seconds": round(elapsed, 1)}
    # the synapse probability the recipe thresholds, over the annotated synapses and elsewhere
    model_vox = tuple(float(v) for v in pred.attrs["voxel_size_nm"])
    prob = np.asarray(pred.data[0 if kind == "synful" else 2], np.float32)
    zi = np.clip(np.rint(np.arange(prob.shape[0]) * model_vox[0] / vox[0]).astype(int), 0, mask.shape[0] - 1)
    on_grid = mask[zi]
    res["probability_p99_in_synapses"] = round(float(np.percentile(prob[on_grid], 99)), 4) if on_grid.any() else None
    res["probability_p99_elsewhere"] = round(float(np.percentile(prob[~on_grid], 99)), 4)
    if card_figures:
        res["overlay"] = real_overlay(ROOT / "model_packages" / PACKAGES[kind] / "real_data" / "vnc_overlay.png",
                                      raw, mask, np.asarray(pred.data), table, vox, model_vox, kind)
    return res


def main(argv=None):
    a = parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from synapse_bmz.training.partners import load_partner_config

    if a.variant:
        res = json.loads(a.out.read_text()) if a.out.is_file() else {}
        res.setdefault("variants", {})[a.variant.resolve().name] = score_variant(a.variant.resolve())
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=2))
        print(json.dumps(res["variants"][a.variant.resolve().name]))
        return 0

    seeds = load_partner_config(ROOT / "model_packages" / "synaptic_partners" / "train.yaml").data.simulation.test_seeds
    seeds = seeds[:1] if a.quick else seeds
    shape = (16, 256, 512) if a.quick else tuple(int(s) for s in a.extraction_shape.split(","))
    res = {"hardware": f"{platform.processor() or platform.machine()}, 1 torch thread", "quick": a.quick}
    for kind in PACKAGES:
        res[kind] = held_out_scores(kind, seeds)
        print(kind, json.dumps(res[kind]), flush=True)
    res["extraction"] = extraction(shape)
    print("extraction", json.dumps(res["extraction"]), flush=True)
    res["evaluation_100k_s"], res["evaluation_100k_f_score"] = evaluation_100k()
    if not (a.quick or a.no_real):
        res["real"] = {kind: real_stack(kind, a.card_figures) for kind in PACKAGES}
        print("real", json.dumps(res["real"]), flush=True)
    res["f_score_synful"] = res["synful"]["ids"]["f_score"]
    res["f_score_polarity"] = res["polarity"]["ids"]["f_score"]
    res["extraction_voxels_per_s"] = res["extraction"]["extraction_voxels_per_s"]
    res["blockwise_identical"] = res["extraction"]["blockwise_identical"]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2))
    print(json.dumps({k: res[k] for k in ("f_score_synful", "f_score_polarity", "extraction_voxels_per_s",
                                          "blockwise_identical", "evaluation_100k_s")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
