"""Benchmark the synapse simulators and write benchmarks/results/simulation.json.

Usage: ``python benchmarks/simulation.py [--quick] [--out PATH]``

Measures the wall time to generate a 64 x 256 x 256 room-temperature
tomogram (``generate_s``, the acceptance target is < 30 s on 2 cores) and,
without ``--quick``, the cryo, ribbon and ssTEM variants (median of 3
runs). ``packages`` is left for the scores of model packages trained on
the simulations (filled by later benchmarks).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

DEFAULT_OUT = Path(__file__).parent / "results" / "simulation.json"
TOMOGRAM_SHAPE = (64, 256, 256)


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
    args = parser.parse_args(argv)

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
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, args.out)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
