"""Partner tables through the API layer (in memory == block-wise) and the evaluate-partners command."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from postprocessing.partners import PARTNER_COLUMNS
from synapse_bmz.errors import OptionError
from synapse_bmz.partners import evaluate_partner_files, partners, write_partner_tables
from synapse_bmz.partners_cli import main

VOX = (40.0, 4.0, 4.0)


def _prediction():
    rng = np.random.default_rng(5)
    pred = np.zeros((4, 6, 96, 96), np.float32)
    for _ in range(12):
        z, y, x = rng.integers(1, 5), rng.integers(6, 90), rng.integers(6, 90)
        pred[0, z, y - 2:y + 3, x - 2:x + 3] = 0.9
        pred[1:, z, y - 2:y + 3, x - 2:x + 3] = rng.uniform(-50, 50, 3)[:, None, None]
    return pred


def test_in_memory_and_blockwise_partner_tables_are_equal(tmp_path):
    pred = _prediction()
    params = {"max_extent_nm": 200.0}
    whole = partners(None, pred, voxel_size_nm=VOX, recipe="synful_partners", params=params)
    blocks = partners(None, pred, voxel_size_nm=VOX, recipe="synful_partners", params=params,
                      in_memory_voxels=0, block_shape=(2, 32, 48))
    assert len(whole) >= 5 and list(whole.columns) == list(PARTNER_COLUMNS)
    pd.testing.assert_frame_equal(whole, blocks)
    csv, parquet = write_partner_tables(whole, tmp_path)
    assert pd.read_parquet(parquet).shape == pd.read_csv(csv).shape == whole.shape
    with pytest.raises(OptionError, match="partner"):
        partners(None, pred, voxel_size_nm=VOX, recipe="vesicles")
    with pytest.raises(OptionError, match="voxel_size_nm"):
        partners(None, pred, recipe="synful_partners")


def test_evaluate_partners_command(tmp_path, capsys):
    gt = pd.DataFrame({"pre_z_nm": [0.0, 0.0], "pre_y_nm": [0.0, 1000.0], "pre_x_nm": [0.0, 0.0],
                       "post_z_nm": [0.0, 0.0], "post_y_nm": [50.0, 1050.0], "post_x_nm": [0.0, 0.0],
                       "score": [1.0, 1.0], "pre_id": [1, 1], "post_id": [2, 3]})
    pred = gt.assign(pre_y_nm=gt.pre_y_nm + 30.0, score=[0.9, 0.2], post_id=[2, 4])
    gt.to_csv(tmp_path / "gt.csv", index=False)
    pred.to_parquet(tmp_path / "pred.parquet")
    (tmp_path / "neurons.txt").write_text("2, 3\n")
    out = tmp_path / "scores.json"
    assert main(["evaluate-partners", str(tmp_path / "pred.parquet"), str(tmp_path / "gt.csv"), "-o", str(out),
                 "--sweep"]) == 0
    assert "precision 0.5000  recall 0.5000  f-score 0.5000" in capsys.readouterr().out
    res = json.loads(out.read_text())
    assert (res["tp"], res["fp"], res["fn"]) == (1, 1, 1) and len(res["pr_curve"]) == 2
    assert res["pr_curve"][1]["precision"] == 1.0   # score >= 0.9 keeps only the correct partner
    res = evaluate_partner_files(tmp_path / "pred.parquet", tmp_path / "gt.csv", use_neuron_ids=False)
    assert res["tp"] == 2
    res = evaluate_partner_files(tmp_path / "pred.parquet", tmp_path / "gt.csv",
                                 neurons_file=tmp_path / "neurons.txt", direction="input")
    assert [(r["neuron_id"], r["tp"], r["fp"], r["fn"]) for r in res["per_neuron"]] == [(2, 1, 0, 0), (3, 0, 0, 1)]


def test_evaluate_partners_errors_are_one_line(tmp_path):
    (tmp_path / "bad.csv").write_text("x,y\n1,2\n")
    r = subprocess.run([sys.executable, "-m", "synapse_bmz.partners_cli", "evaluate-partners",
                        str(tmp_path / "bad.csv"), str(tmp_path / "bad.csv")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "bad.csv" in r.stderr and "lacks" in r.stderr
    r = subprocess.run([sys.executable, "-m", "synapse_bmz.partners_cli", "evaluate-partners",
                        str(tmp_path / "missing.csv"), str(tmp_path / "bad.csv")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "missing.csv" in r.stderr


def test_a_stored_prediction_is_read_from_its_zarr_store(tmp_path):
    """`prediction_source`, shared by segment and partners: a DataArray naming its store is read
    from the store's level 0 (not its dask graph); its voxel size is used unless one is given."""
    import xarray as xr
    import zarr

    from synapse_bmz.api import prediction_source

    pred = _prediction()
    z = zarr.open_array(store=str(tmp_path / "p.zarr"), path="0", mode="w", shape=pred.shape, dtype="f4")
    z[...] = pred
    on_disk = xr.DataArray(np.zeros_like(pred), dims=("c", "z", "y", "x"),
                           attrs={"voxel_size_nm": VOX, "store": str(tmp_path / "p.zarr")})
    arr, vs = prediction_source(on_disk)
    assert isinstance(arr, zarr.Array) and vs == VOX and np.array_equal(arr[...], pred)
    assert prediction_source(on_disk, (1.0, 2.0, 3.0))[1] == (1.0, 2.0, 3.0)
    in_memory = on_disk.copy(data=pred)
    del in_memory.attrs["store"]
    arr, vs = prediction_source(in_memory)
    assert arr is in_memory.data and vs == VOX
    assert prediction_source(pred, VOX) == (pred, VOX)
    # the partner table of the stored prediction is the table of the stored values, not the zeros
    params = {"max_extent_nm": 200.0}
    assert len(partners(None, on_disk, recipe="synful_partners", params=params)) == len(
        partners(None, pred, voxel_size_nm=VOX, recipe="synful_partners", params=params)) > 0
