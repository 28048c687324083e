"""Choose a simulation-trained vesicle package's recipe on real EPFL sections other than the held-out run.

The 23 annotated EPFL FIB-SEM sections other than training0161-0164, stacked
as one 5 nm volume in the window `benchmarks/simulation.py` scores
(``epfl_volume``), are predicted once through `synapse_bmz.api.predict`;
the ``vesicles`` recipe is then grid-searched (`synapse_bmz.api.segment`
with parameter overrides) for the best per-section instance F1 (IoU >= 0.5,
Hungarian, `analysis.evaluation.pooled_instance_scores`), as
`synapse_bmz.training.evaluate.evaluate_package_instances_per_section`
scores. The held-out run training0161-0164 is scored once, after the choice,
with ``--held-out``. A setting only helps users if the simulated tomograms
the package was made for keep their figure: check with
``python benchmarks/accuracy.py`` after applying it.

Usage: ``python scripts/tune_vesicles_3d_recipe.py [PACKAGE] [--held-out]`` (default model_packages/vesicles_3d)
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "scripts"))

from tune_vesicle_recipe import grid_search  # noqa: E402

GRID = {"mode": ["distance", "components"],
        "vesicle_radius_nm": [20.0, 25.0],
        "foreground_threshold": [0.3, 0.5],
        "boundary_threshold": [0.5, 0.7],
        "mask_threshold": [0.3, 0.5]}


def _scorer(package, raw, mask):
    """A function params -> per-section instance scores, predicting ``raw`` once."""
    import numpy as np

    from analysis.evaluation import pooled_instance_scores
    from synapse_bmz import api
    from synapse_bmz.training.evaluate import _predict, _to_input_grid
    from synapse_bmz.training.targets import instances_from_mask

    from simulation import EPFL_VOXEL_SIZE_NM

    session, pred = _predict(package, raw, voxel_size_nm=EPFL_VOXEL_SIZE_NM, device="cpu")
    gts = [instances_from_mask(g) for g in mask]

    def score(params):
        labels = _to_input_grid(np.asarray(api.segment(session, pred, params=params, table=False).labels[...]), pred)
        return pooled_instance_scores(zip(gts, labels), 0.5)

    return score


def _line(s) -> str:
    return f"F1 {s['f1']:.3f} (P {s['precision']:.3f}, R {s['recall']:.3f}, {s['tp'] + s['fn']} annotated)"


def main(argv=None) -> int:
    import argparse

    import numpy as np

    from simulation import EPFL_HELD_OUT, epfl_section_names, epfl_volume

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package", nargs="?", type=Path, default=REPO / "model_packages" / "vesicles_3d")
    ap.add_argument("--held-out", action="store_true",
                    help="also score training0161-0164 (once, after the choice; never to choose)")
    a = ap.parse_args(argv)
    raw, mask, _ = epfl_volume()
    held = np.isin(epfl_section_names(), EPFL_HELD_OUT)
    score = _scorer(a.package, raw[~held], mask[~held])
    details = {}

    def f1_of(params):
        if params["mode"] == "components" and params["vesicle_radius_nm"] != GRID["vesicle_radius_nm"][0]:
            return None  # the radius only sets the size filter there; one value is enough
        s = details[repr(params)] = score(params)
        print(f"  {_line(s)}: {params}", flush=True)
        return s["f1"]

    best = grid_search(GRID, f1_of, label="selection")[0][1]
    print(f"best on the {int((~held).sum())} EPFL sections other than {', '.join(EPFL_HELD_OUT)}: {best}")
    print(f"  there: {_line(details[repr(best)])}; the package's own recipe: {_line(score({}))}")
    if a.held_out:
        held_score = _scorer(a.package, raw[held], mask[held])
        print(f"held-out {', '.join(EPFL_HELD_OUT)} with {best}: {_line(held_score(best))}")
        print(f"held-out with the package's own recipe: {_line(held_score({}))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
