"""`make demo`'s job: the shipped vesicles_2d package on the bundled crop, end to end."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import zarr

from synapse_bmz.runner.run import RunOptions, run
from synapse_bmz.zoo.registry import available_packages

REPO = Path(__file__).resolve().parents[1]
CROP = REPO / "synapse_bmz" / "sample_data" / "epfl_vesicles_crop.tif"

pytestmark = pytest.mark.skipif("vesicles_2d" not in available_packages(), reason="vesicles_2d package not built yet")


def test_demo_writes_prediction_instances_and_table(tmp_path):
    res = run("vesicles_2d", [str(CROP)], tmp_path, RunOptions(progress=False))[0]
    pred = zarr.open_group(str(res.prediction), mode="r")["0"]
    assert pred.shape == (3, 3, 384, 512)  # foreground, boundary, distance
    labels = tifffile.imread(res.labels)
    assert labels.shape == (3, 384, 512)
    table = pd.read_csv(res.table)
    assert res.n_objects == len(table) == len(np.unique(labels)) - 1
    # the crop holds ~100 annotated vesicles per section
    assert len(table) > 50
    for col in ("label", "section", "centroid_z_nm", "centroid_y_nm", "centroid_x_nm", "radius_nm", "area_nm2"):
        assert col in table.columns
    # a 2D model measures 2D profiles, one set per section
    assert sorted(table["section"].unique()) == [0, 1, 2]
    # synaptic vesicles: 35-50 nm outer diameter; the median detected radius must be in that range
    assert 10 < table["radius_nm"].median() < 40


def test_demo_instances_agree_with_annotation(shared_data, tmp_path):
    """Sections 161-163 are held out from training; score the demo against their labels."""
    import imageio.v3 as iio

    from analysis.evaluation import dice

    res = run("vesicles_2d", [str(CROP)], tmp_path, RunOptions(progress=False))[0]
    labels = tifffile.imread(res.labels)
    vol = tifffile.imread(CROP)
    masks = np.stack([iio.imread(shared_data / "epfl_hippocampus" / "vesicles" / f"training{i:04d}.png")[..., 0] > 127
                      for i in (161, 162, 163)])
    slices = [iio.imread(shared_data / "epfl_hippocampus" / "slices" / f"training{i:04d}.png")[..., 0] for i in (161, 162, 163)]
    # locate the crop in the full sections
    y, x = _find_offset(slices[0], vol[0])
    gt = masks[:, y:y + 384, x:x + 512]
    assert dice(gt, labels > 0) > 0.6


def _find_offset(full, crop):
    for y in range(0, full.shape[0] - crop.shape[0] + 1, 64):
        for x in range(0, full.shape[1] - crop.shape[1] + 1, 64):
            if np.array_equal(full[y:y + crop.shape[0], x:x + crop.shape[1]], crop):
                return y, x
    raise AssertionError("crop not found in the section")
