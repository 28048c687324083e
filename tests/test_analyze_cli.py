"""`synapse-bmz analyze` reads segmentation files and writes tables with units and a report."""

import numpy as np
import pandas as pd

from analysis.synthetic import random_vesicle_volume
from synapse_bmz.cli import main
from synapse_bmz.io import write_volume


def test_analyze_files_end_to_end(tmp_path, capsys):
    vol = random_vesicle_volume(shape=(24, 64, 64), n_vesicles=12, radius_range=(3, 4), seed=3)
    vs = (2.0, 1.5, 1.5)
    write_volume(tmp_path / "vesicles.tif", vol["vesicles"].astype(np.uint16), vs)
    write_volume(tmp_path / "az.tif", vol["active_zone"].astype(np.uint8), vs)
    raw = np.random.default_rng(0).integers(0, 255, vol["vesicles"].shape).astype(np.uint8)
    write_volume(tmp_path / "raw.tif", raw, vs)
    code = main(["analyze", str(tmp_path / "vesicles.tif"), f"active_zone={tmp_path / 'az.tif'}",
                 "--raw", str(tmp_path / "raw.tif"), "-o", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    table = pd.read_csv(tmp_path / "out" / "vesicles.csv")
    n = len(np.unique(vol["vesicles"])) - 1
    assert len(table) == n
    for col in ("radius_nm", "distance_to_active_zone_nm", "active_zone_point_z_nm", "nearest_neighbor_distance_nm", "pool"):
        assert col in table.columns
    assert (table["distance_to_active_zone_nm"] >= 0).all()
    assert (tmp_path / "out" / "report.html").stat().st_size > 10_000
    assert (tmp_path / "out" / "vesicles.parquet").exists()


def test_analyze_needs_vesicles(tmp_path, capsys):
    write_volume(tmp_path / "az.tif", np.ones((4, 8, 8), np.uint8), (1, 1, 1))
    code = main(["analyze", str(tmp_path / "az.tif"), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "vesicles" in err and len(err.strip().splitlines()) == 1
