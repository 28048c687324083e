"""Distances against analytic sphere geometry on isotropic and anisotropic grids."""

import numpy as np
import pytest
from scipy.spatial import cKDTree

from analysis.distances import distances_to_structure, nearest_neighbor_distances, segment_crosses, surface_gap_nm
from analysis.synthetic import draw_spheres

GRIDS = [(1.0, 1.0, 1.0), (2.0, 1.0, 1.0), (3.0, 1.5, 1.5)]


@pytest.mark.parametrize("voxel_size_nm", GRIDS)
def test_sphere_to_plane_matches_analytic_gap(voxel_size_nm):
    spacing = np.array(voxel_size_nm)
    rng = np.random.default_rng(3)
    shape = (40, 50, 60)
    plate = np.zeros(shape, bool)
    plate[:, 2:4, :] = True  # plate surface at y = 3 voxels (+ half a voxel for the boundary)
    plane_y_nm = 3.5 * spacing[1]
    centers = np.array([[20, 20, 15], [20, 30, 30], [18, 40, 45]]) * spacing + rng.random((3, 3)) * spacing
    radii = [6.0, 8.0, 5.0]
    labels = draw_spheres(shape, centers, radii, spacing)
    table = distances_to_structure(labels, plate, spacing)
    expected = centers[:, 1] - np.array(radii) - plane_y_nm
    diagonal = np.linalg.norm(spacing)
    assert list(table["label"]) == [1, 2, 3]
    np.testing.assert_array_less(np.abs(table["distance_nm"] - expected), diagonal)
    # end points: on the plate, and directly "below" the vesicle
    assert np.all(table["structure_point_y_nm"] == 3 * spacing[1])
    assert np.all(np.abs(table["structure_point_x_nm"] - centers[:, 2]) <= 2 * diagonal)
    assert np.all(labels[tuple(np.round(table[[f"object_point_{a}_nm" for a in "zyx"]].to_numpy() / spacing).astype(int).T)] == [1, 2, 3])


@pytest.mark.parametrize("voxel_size_nm", GRIDS)
def test_nearest_neighbors_match_analytic_and_brute_force(voxel_size_nm):
    spacing = np.array(voxel_size_nm)
    rng = np.random.default_rng(7)
    shape = (60, 80, 80)
    extent = np.array(shape) * spacing
    centers, radii = [], []
    while len(centers) < 25:  # non-overlapping spheres well inside the volume
        r = rng.uniform(4, 8)
        c = 8 + rng.random(3) * (extent - 16)
        if all(np.linalg.norm(c - c2) > r + r2 + 1 for c2, r2 in zip(centers, radii)):
            centers.append(c)
            radii.append(r)
    centers, radii = np.array(centers), np.array(radii)
    labels = draw_spheres(shape, centers, radii, spacing)
    table = nearest_neighbor_distances(labels, spacing)
    gaps = np.linalg.norm(centers[:, None] - centers[None], axis=-1) - radii[:, None] - radii[None]
    np.fill_diagonal(gaps, np.inf)
    assert np.all(np.abs(table["distance_nm"] - gaps.min(axis=1)) <= np.linalg.norm(spacing))
    # the search is exact: brute force over every pair of objects, all voxels
    coords = np.argwhere(labels) * spacing
    owner = labels[labels != 0]
    trees = {k: cKDTree(coords[owner == k]) for k in range(1, 26)}
    for row in table.itertuples():
        best = np.inf
        for other in range(1, 26):
            if other != row.label:
                d, idx = trees[other].query(coords[owner == row.label])
                k = np.argmin(d)
                delta = coords[owner == row.label][k] - coords[owner == other][idx[k]]
                best = min(best, surface_gap_nm(delta, spacing))
        assert row.distance_nm == pytest.approx(best)


def test_crossing_filter_discards_blocked_lines():
    shape = (1, 20, 40)
    labels = np.zeros(shape, np.int32)
    labels[0, 10, 2] = 1  # measured object
    labels[0, 10, 10] = 2  # blocker on the straight line
    labels[0, 2, 2] = 3  # free line upwards is longer
    structure = np.zeros(shape, bool)
    structure[0, 10, 30] = True
    plain = distances_to_structure(labels, structure, (1, 1, 1))
    filtered = distances_to_structure(labels, structure, (1, 1, 1), exclude_crossing=True)
    assert plain["distance_nm"][0] == pytest.approx(27.5)  # 28 voxels apart, minus half a voxel
    assert np.isnan(filtered["distance_nm"][0]) and filtered["crosses_object"][0]
    assert not filtered["crosses_object"][1]
    nn = nearest_neighbor_distances(labels, (1, 1, 1), exclude_crossing=True)
    assert nn.set_index("label").loc[1, "neighbor_label"] == 2
    assert segment_crosses(labels, np.array([0, 10, 2]), np.array([0, 10, 30]), (1,))


def test_overlap_and_empty_structure_and_validation():
    labels = np.zeros((10, 10), np.int32)
    labels[2:5, 2:5] = 1
    structure = np.zeros((10, 10), bool)
    assert np.isnan(distances_to_structure(labels, structure, (1, 1))["distance_nm"][0])
    structure[3, 3] = True
    assert distances_to_structure(labels, structure, (1, 1))["distance_nm"][0] == 0
    with pytest.raises(ValueError, match="voxel_size_nm"):
        distances_to_structure(labels, structure, (1, 1, 1))
    with pytest.raises(ValueError, match="structure"):
        distances_to_structure(labels, structure[:5], (1, 1))
