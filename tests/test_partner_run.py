"""``synapse-bmz run synaptic_partners`` writes the partner table beside the prediction, and
``evaluate-partners`` scores it against the simulator's partner table."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

COLUMNS = ["pre_z_nm", "pre_y_nm", "pre_x_nm", "post_z_nm", "post_y_nm", "post_x_nm", "score"]


@pytest.mark.parametrize("model", ["synaptic_partners", "synaptic_polarity"])
def test_run_writes_partner_tables_and_evaluate_scores_them(tmp_path, model):
    from synapse_bmz import simulate as sim

    sim.write_simulation(sim.simulate_sstem_neuropil(seed=7, shape=(12, 192, 192)), tmp_path / "sim")
    run = subprocess.run([sys.executable, "-m", "synapse_bmz", "run", model, str(tmp_path / "sim" / "raw.tif"),
                          "-o", str(tmp_path / "out"), "--quiet"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    out = tmp_path / "out" / "raw"
    csv = pd.read_csv(out / "partners.csv")
    assert list(csv.columns[:7]) == COLUMNS
    pd.testing.assert_frame_equal(csv, pd.read_parquet(out / "partners.parquet"), check_dtype=False)
    ev = subprocess.run([sys.executable, "-m", "synapse_bmz", "evaluate-partners", str(out / "partners.csv"),
                         str(tmp_path / "sim" / "partners.csv"), "-o", str(tmp_path / "scores.json")],
                        capture_output=True, text=True, timeout=120)
    assert ev.returncode == 0, ev.stderr
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["tp"] + scores["fp"] == len(csv)
    assert f"f-score {scores['f_score']:.4f}" in ev.stdout
