"""Training targets on hand-built instance images: values, channel counts, the config's dispatch."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from synapse_bmz.errors import InputError
from synapse_bmz.training.config import load_train_config
from synapse_bmz.training.targets import TARGET_CHANNELS, normalised_distance, training_targets


def test_normalised_distance_of_touching_squares_peaks_once_each():
    lab = np.zeros((7, 12), np.uint32)
    lab[1:6, 1:6] = 1  # 5 x 5 square
    lab[1:6, 6:11] = 2  # touching 5 x 5 square
    lab[3, 11] = 3  # one voxel
    d = normalised_distance(lab)
    assert d.dtype == np.float32 and d.shape == lab.shape
    assert (d[lab == 0] == 0).all() and (d[lab > 0] > 0).all()
    # distance to the nearest other label or background: centres 3 voxels in, edges 1, normalised by 3
    assert d[3, 3] == d[3, 8] == 1.0
    assert d[1, 3] == pytest.approx(1 / 3) and d[3, 5] == pytest.approx(1 / 3) and d[3, 6] == pytest.approx(1 / 3)
    assert d[3, 11] == 1.0
    # exactly one maximum per square: the touching pair keeps two centres
    for label in (1, 2):
        assert int((d[lab == label] == 1.0).sum()) == 1


def test_normalised_distance_in_plane_is_per_section():
    lab = np.zeros((4, 5, 5), np.uint32)
    lab[1:3, 1:4, 1:4] = 1  # one object through two sections, background above and below
    in_plane = normalised_distance(lab, in_plane=True)
    assert in_plane[1, 2, 2] == 1.0 and in_plane[1, 1, 2] == pytest.approx(0.5)
    # volumetric: every object voxel is one voxel from the background above or below
    assert normalised_distance(lab)[1, 1, 2] == 1.0


def test_training_targets_channels():
    lab = np.zeros((8, 8), np.uint32)
    lab[2:6, 2:6] = 1
    for target, n in TARGET_CHANNELS.items():
        assert training_targets(lab, target).shape == (n, 8, 8)
    t = training_targets(lab, "foreground_boundary_distance")
    np.testing.assert_array_equal(t[:2], training_targets(lab, "foreground_boundary"))
    np.testing.assert_array_equal(t[2], normalised_distance(lab))
    np.testing.assert_array_equal(training_targets(lab, "mask")[0], lab > 0)
    with pytest.raises(ValueError, match="target"):
        training_targets(lab, "distance")


def _config(tmp_path, target):
    for sub in ("raw", "labels"):
        (tmp_path / sub).mkdir(exist_ok=True)
    cfg = {"target": target, "data": {"raw": "raw", "labels": "labels", "validation": ["a.png"],
                                      "voxel_size_nm": [5.0, 5.0]},
           "train": {"patch": [64, 64]},
           "package": {"name": "t", "description": "t", "task": "vesicles",
                       "channels": ["foreground", "boundary", "distance"], "halo": [8, 8],
                       "min_shape": [32, 32], "step": [16, 16]}}
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_config_dispatches_the_distance_target(tmp_path):
    assert load_train_config(_config(tmp_path, "foreground_boundary_distance")).out_channels == 3
    assert load_train_config(_config(tmp_path, "foreground_boundary")).out_channels == 2
    with pytest.raises(InputError, match="target"):
        load_train_config(_config(tmp_path, "distance"))


def test_vesicles_2d_trains_the_distance_target():
    from pathlib import Path

    from synapse_bmz.paths import shared_data_dir

    if not (shared_data_dir() / "epfl_hippocampus").is_dir():
        pytest.skip("EPFL data not found")
    cfg = load_train_config(Path(__file__).resolve().parents[1] / "model_packages" / "vesicles_2d" / "train.yaml")
    assert cfg.target == "foreground_boundary_distance" and cfg.out_channels == len(cfg.package.channels) == 3
    assert cfg.package.postprocessing["params"]["mode"] == "predicted_distance"
