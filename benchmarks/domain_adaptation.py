"""Domain adaptation demo: a mitochondria package trained on EPFL FIB-SEM, adapted to Drosophila ssTEM.

1. Dice of the source package on the labelled Drosophila stack 1
   (``drosophila_vnc/stack1/raw`` against ``stack1/mitochondria`` > 127),
   predicted through ``synapse-bmz run`` (resampled from 4.6 nm to the
   package's 5 nm, whole-volume normalisation).
2. ``synapse_bmz.training.adapt.adapt_package`` on the *unlabelled*
   ``drosophila_vnc/stack2/raw`` (mean teacher, confidence 0.95: at 0.9 the pseudo-labels reinforced the
   source model's under-segmentation of ssTEM mitochondria, see the session notes).
3. Dice of the adapted package on stack 1 again.

Stack 1 is never seen during adaptation. Writes
``benchmarks/results/domain_adaptation.json`` with both Dice values and the
run's settings. The adapted package (licence CC-BY-NC-SA-3.0, inherited from
the Drosophila data) goes to ``--adapted`` (default: a folder under runs/).

``--quick``: 5 adaptation iterations on 2 sections of stack 2 and evaluation
on 2 sections of stack 1 cropped to 256 x 256 - a smoke test of the path,
not a measurement. Without a trained mitochondria package the script says so
and exits 0 (train it first: ``synapse-bmz train model_packages/mitochondria_2d/train.yaml``).

Usage: ``python benchmarks/domain_adaptation.py [PACKAGE] [--quick] [--out PATH] [--iterations N]``
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from synapse_bmz.paths import shared_data_dir  # noqa: E402  ($SYNAPSE_BMZ_DATA, default ../shared/data)

DATA = shared_data_dir() / "drosophila_vnc"
VOXEL_SIZE_NM = [50.0, 4.6, 4.6]


def _crop_stack(src: Path, dest: Path, n: int, size: int) -> Path:
    """First ``n`` sections of a slice folder, top-left ``size`` x ``size``, as a new folder."""
    import imageio.v3 as iio

    dest.mkdir(parents=True)
    for f in sorted(src.iterdir())[:n]:
        iio.imwrite(dest / f.name, iio.imread(f)[:size, :size])
    return dest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("package", nargs="?", default=str(REPO / "model_packages" / "mitochondria_2d"))
    p.add_argument("--quick", action="store_true", help="tiny smoke run, not a measurement")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "domain_adaptation.json")
    p.add_argument("--adapted", type=Path, default=REPO / "runs" / "mitochondria_2d_drosophila")
    p.add_argument("--iterations", type=int, default=2000)
    p.add_argument("--confidence", type=float, default=0.95)
    p.add_argument("--device", default=None)
    a = p.parse_args(argv)

    pkg = Path(a.package)
    if not (pkg / "rdf.yaml").exists():
        print(f"skipped: no trained package at {pkg} (train it first: "
              f"synapse-bmz train model_packages/mitochondria_2d/train.yaml)")
        return 0
    if not DATA.is_dir():
        print(f"skipped: Drosophila data not found at {DATA}")
        return 0

    from synapse_bmz.training.adapt import adapt_package
    from synapse_bmz.training.evaluate import evaluate_package_dice

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        raw, mask = DATA / "stack1" / "raw", DATA / "stack1" / "mitochondria"
        unlabelled, iterations = DATA / "stack2" / "raw", a.iterations
        adapted = a.adapted
        if a.quick:
            raw, mask = _crop_stack(raw, tmp / "raw", 2, 256), _crop_stack(mask, tmp / "mito", 2, 256)
            unlabelled, iterations, adapted = _crop_stack(unlabelled, tmp / "unlabelled", 2, 512), 5, tmp / "adapted"
        t0 = time.perf_counter()
        before = evaluate_package_dice(pkg, raw, mask, voxel_size_nm=VOXEL_SIZE_NM, device=a.device)
        rdf = adapt_package(pkg, [unlabelled], adapted, voxel_size_nm=VOXEL_SIZE_NM, iterations=iterations,
                            confidence=a.confidence, device=a.device, license="CC-BY-NC-SA-3.0",
                            data_description="Drosophila larva VNC ssTEM stack 2 (Gerhard et al. 2013, "
                                             "doi:10.6084/m9.figshare.856713), unlabelled.")
        after = evaluate_package_dice(rdf, raw, mask, voxel_size_nm=VOXEL_SIZE_NM, device=a.device)
    result = {
        "source_package": str(pkg), "adapted_package": None if a.quick else str(rdf.parent),
        "unlabelled": str(unlabelled) if not a.quick else "stack2/raw, 2 sections, 512 x 512",
        "evaluated_on": "drosophila_vnc stack1 mitochondria (> 127)" + (", 2 sections, 256 x 256" if a.quick else ""),
        "iterations": iterations, "confidence": a.confidence, "quick": a.quick,
        "dice_before": round(before["dice"], 4), "dice_after": round(after["dice"], 4),
        "iou_before": round(before["iou"], 4), "iou_after": round(after["iou"], 4),
        "seconds": round(time.perf_counter() - t0, 1), "platform": platform.platform(),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"Dice on Drosophila stack 1 mitochondria: before {result['dice_before']:.3f}, "
          f"after adaptation {result['dice_after']:.3f}" + (" (quick smoke run)" if a.quick else ""))
    print(f"written: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
