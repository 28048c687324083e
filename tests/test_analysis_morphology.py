"""Morphology of digitised spheres and discs with known size."""

import time

import numpy as np
import pytest

from analysis.morphology import object_table
from analysis.synthetic import draw_spheres


@pytest.mark.parametrize("voxel_size_nm", [(1.0, 1.0, 1.0), (2.0, 1.5, 1.5)])
def test_spheres_3d(voxel_size_nm):
    spacing = np.array(voxel_size_nm)
    centers = np.array([[30.0, 30.0, 30.0], [30.0, 60.0, 70.0]]) + 0.3
    radii = np.array([10.0, 14.0])
    labels = draw_spheres((50, 80, 100), centers, radii, spacing)
    raw = np.zeros(labels.shape, np.float32)
    raw[labels == 2] = 7.0
    table = object_table(labels, voxel_size_nm, raw)
    assert list(table["label"]) == [1, 2]
    centroid = table[["centroid_z_nm", "centroid_y_nm", "centroid_x_nm"]].to_numpy()
    np.testing.assert_allclose(centroid, centers, atol=0.5 * spacing.max())
    np.testing.assert_allclose(table["volume_nm3"], 4 / 3 * np.pi * radii**3, rtol=0.05)
    np.testing.assert_allclose(table["surface_area_nm2"], 4 * np.pi * radii**2, rtol=0.12)
    assert np.all(np.abs(table["radius_nm"] - radii) <= spacing[1:].max())
    np.testing.assert_allclose(table["diameter_nm"], 2 * table["radius_nm"])
    assert np.all((table["sphericity"] > 0.85) & (table["sphericity"] <= 1.05))
    assert table["intensity_mean"].tolist() == [0.0, 7.0]


def test_discs_2d_units_and_speed():
    rng = np.random.default_rng(0)
    centers = rng.random((200, 2)) * [768, 1024] * 2.0
    radii = rng.uniform(8, 30, 200)
    labels = draw_spheres((768, 1024), centers, radii, (2.0, 2.0))
    start = time.perf_counter()
    table = object_table(labels, (2.0, 2.0), labels.astype(np.float32))
    assert time.perf_counter() - start < 5
    assert "centroid_z_nm" not in table and "volume_nm3" not in table
    one = table.iloc[0]
    assert one["area_nm2"] == one["n_voxels"] * 4.0
    assert one["intensity_mean"] == one["label"]


def test_square_known_values():
    labels = np.zeros((20, 20), int)
    labels[5:10, 5:10] = 3
    row = object_table(labels, (2.0, 3.0)).iloc[0]
    assert row["area_nm2"] == 25 * 6.0
    assert (row["centroid_y_nm"], row["centroid_x_nm"]) == (14.0, 21.0)
    assert row["radius_nm"] == 6.0  # centre pixel to first background pixel along y: 3 px * 2 nm
