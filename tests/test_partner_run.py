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


def test_run_with_neurons_attaches_ids_and_splits_polyadic_partners(tmp_path):
    """--neurons: the partner table gets pre_id/post_id from the segmentation, no pair joins a neuron to
    itself, and (the package's split_by_neuron) no two partners share a post-synaptic component and neuron."""
    from synapse_bmz import simulate as sim

    s = sim.simulate_sstem_neuropil(seed=7, shape=(12, 192, 192))
    sim.write_simulation(s, tmp_path / "sim")
    cmd = [sys.executable, "-m", "synapse_bmz", "run", "synaptic_partners", str(tmp_path / "sim" / "raw.tif"),
           "-o", str(tmp_path / "out"), "--quiet", "--neurons", str(tmp_path / "sim" / "neurons.tif")]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    out = tmp_path / "out" / "raw"
    t = pd.read_csv(out / "partners.csv")
    assert len(t) and t.pre_id.notna().all() and t.post_id.notna().all()
    assert not ((t.pre_id == t.post_id) & (t.pre_id > 0)).any()
    assert set(t.post_id) <= set(map(int, __import__("numpy").unique(s.labels["neurons"])))
    assert json.loads((out / "provenance.json").read_text())["neurons"].endswith("neurons.tif")


def test_neurons_errors_are_one_line(tmp_path):
    import numpy as np

    from synapse_bmz.io import write_volume

    write_volume(tmp_path / "raw.tif", np.zeros((12, 64, 64), np.float32), (45.0, 4.6, 4.6))
    write_volume(tmp_path / "seg.tif", np.zeros((12, 64, 60), np.uint16), (45.0, 4.6, 4.6))
    for model, seg, needle in (("synaptic_partners", "seg.tif", "neuron segmentation of shape (12, 64, 60)"),
                               ("vesicles_3d", "seg.tif", "--neurons")):
        r = subprocess.run([sys.executable, "-m", "synapse_bmz", "run", model, str(tmp_path / "raw.tif"), "-o",
                            str(tmp_path / "out"), "--quiet", "--neurons", str(tmp_path / seg)],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not (tmp_path / "out" / "raw").exists()
