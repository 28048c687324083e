"""Recipes recover known instances from ideal and noisy network outputs."""

import numpy as np
import pytest
from scipy import ndimage
from skimage.segmentation import watershed

from analysis.evaluation import instance_scores
from postprocessing import (
    RECIPES,
    apply_recipe,
    segment_active_zone,
    segment_clefts,
    segment_compartments,
    segment_mitochondria,
    segment_ribbon,
    segment_vesicles,
)
from postprocessing._watershed import seeded_watershed
from postprocessing.compare import same_partition
from postprocessing.synthetic import place_balls, vesicle_prediction


def vesicle_scene(shape, n, radius_range, seed=0, gap=2.0, voxel_size=None):
    rng = np.random.default_rng(seed)
    centers, radii = place_balls(shape, n, radius_range, rng, gap=gap)
    fg, bd, truth = vesicle_prediction(shape, centers, radii, voxel_size=voxel_size)
    return fg, bd, truth


# --- vesicles ---------------------------------------------------------------


def test_vesicles_3d_ideal_f1_is_one():
    fg, bd, truth = vesicle_scene((48, 96, 96), 25, (6, 9))
    labels = segment_vesicles(fg, bd, (1.5, 1.5, 1.5), vesicle_radius_nm=11.0)
    assert labels.dtype == np.uint32 and labels.shape == truth.shape
    assert instance_scores(truth, labels)["f1"] == 1.0


def test_vesicles_2d_at_5nm_with_defaults():
    # EPFL FIB-SEM: 5 nm pixels, vesicles 35-50 nm in diameter (radius 3.5-5 px).
    rng = np.random.default_rng(1)
    centers, radii = place_balls((256, 256), 120, (3.5, 5.0), rng, gap=1.0)
    fg, bd, truth = vesicle_prediction((256, 256), centers, radii, boundary_width=1.0)
    labels = segment_vesicles(fg, bd, (5.0, 5.0))
    assert instance_scores(truth, labels)["f1"] == 1.0
    fast = segment_vesicles(fg, bd, (5.0, 5.0), mode="components")
    assert instance_scores(truth, fast)["f1"] == 1.0


def test_vesicles_touching_are_separated():
    # gap=-1: boundary shells overlap, the watershed mask is one component.
    fg, bd, truth = vesicle_scene((40, 80, 80), 20, (7, 9), seed=2, gap=-1.0)
    mask_components = ndimage.label(fg + bd > 0.5)[1]
    assert mask_components < len(np.unique(truth)) - 1
    labels = segment_vesicles(fg, bd, 1.0, vesicle_radius_nm=8.0)
    assert instance_scores(truth, labels)["f1"] == 1.0


def test_vesicles_anisotropic_voxels():
    shape, voxel = (24, 96, 96), (3.0, 1.0, 1.0)
    rng = np.random.default_rng(3)
    centers, radii = place_balls((72, 96, 96), 12, (8, 11), rng, gap=3.0)
    centers[:, 0] /= 3.0
    fg, bd, truth = vesicle_prediction(shape, centers, radii, voxel_size=voxel, boundary_width=1.5)
    labels = segment_vesicles(fg, bd, voxel, vesicle_radius_nm=9.5)
    assert instance_scores(truth, labels)["f1"] == 1.0
    # Treating the volume as isotropic shrinks distances along z: fewer seeds.
    wrong = segment_vesicles(fg, bd, 1.0, vesicle_radius_nm=9.5, seed_distance_nm=4.0)
    assert instance_scores(truth, wrong)["f1"] < 1.0


def smooth_noise(array, sigma, rng):
    """Blurred probabilities plus spatially correlated noise of std ``sigma``."""
    noise = ndimage.gaussian_filter(rng.normal(0, 1, array.shape), 1.0)
    noise *= sigma / noise.std()
    return np.clip(ndimage.gaussian_filter(array, 0.7) + noise, 0, 1).astype(np.float32)


def test_vesicles_degrade_gracefully_with_noise():
    fg, bd, truth = vesicle_scene((40, 96, 96), 20, (7, 10), seed=4)
    rng = np.random.default_rng(0)
    scores = []
    for sigma in (0.0, 0.1, 0.25):
        labels = segment_vesicles(
            smooth_noise(fg, sigma, rng), smooth_noise(bd, sigma, rng), 1.0, vesicle_radius_nm=8.5
        )
        scores.append(instance_scores(truth, labels)["f1"])
    assert scores[0] == 1.0
    assert scores[1] >= 0.9
    assert scores[2] < scores[1]


def test_vesicles_empty_and_single_object():
    empty = np.zeros((16, 32, 32), np.float32)
    labels = segment_vesicles(empty, empty, 1.0)
    assert labels.dtype == np.uint32 and labels.shape == (16, 32, 32) and labels.max() == 0
    fg, bd, truth = vesicle_prediction((32, 40, 40), np.array([[16.0, 20, 20]]), np.array([10.0]))
    labels = segment_vesicles(fg, bd, 1.0, vesicle_radius_nm=10.0)
    assert labels.max() == 1 and instance_scores(truth, labels)["f1"] == 1.0


def test_vesicle_on_volume_border_is_kept():
    fg, bd, truth = vesicle_prediction((32, 40, 40), np.array([[0.0, 20, 39]]), np.array([10.0]))
    labels = segment_vesicles(fg, bd, 1.0, vesicle_radius_nm=10.0)
    assert instance_scores(truth, labels)["f1"] == 1.0


def test_synapsenet_fixed_seed_misses_small_vesicles_derived_default_does_not():
    fg, bd, truth = vesicle_scene((48, 96, 96), 40, (9, 12), seed=5)
    fixed = segment_vesicles(fg, bd, 1.0, seed_distance_nm=8.0, min_radius_nm=4.9)
    derived = segment_vesicles(fg, bd, 1.0, vesicle_radius_nm=10.5)
    assert instance_scores(truth, fixed)["recall"] < 0.95
    assert instance_scores(truth, derived)["recall"] == 1.0


def test_min_radius_removes_small_objects():
    fg, bd, truth = vesicle_prediction(
        (40, 64, 64), np.array([[20.0, 16, 16], [20.0, 45, 45]]), np.array([4.0, 10.0])
    )
    labels = segment_vesicles(fg, bd, 1.0, seed_distance_nm=1.0, min_radius_nm=6.5)
    assert labels.max() == 1 and labels[20, 45, 45] == 1 and labels[20, 16, 16] == 0


def two_touching_discs(shape=(40, 64), centres=((20, 22), (20, 37)), radius=8.0):
    """Two discs whose outlines touch along a chord: one foreground component, two instances."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    truth = np.zeros(shape, np.uint32)
    for label, (cy, cx) in enumerate(centres, start=1):
        truth[(np.hypot(yy - cy, xx - cx) <= radius) & (truth == 0)] = label
    return truth


def test_predicted_distance_separates_touching_discs_components_merge_them():
    from synapse_bmz.training.targets import training_targets

    truth = two_touching_discs()
    fg, bd, dist = training_targets(truth, "foreground_boundary_distance")
    # a blurred network: foreground and boundary give one interior, only the distance keeps two peaks
    fg = ndimage.gaussian_filter(fg, 1.0)
    bd = 0.5 * ndimage.gaussian_filter(bd, 1.0)
    dist = ndimage.gaussian_filter(dist, 1.0)
    assert ndimage.label(fg > 0.5)[1] == 1
    merged = segment_vesicles(fg, bd, (5.0, 5.0), vesicle_radius_nm=40.0, mode="components")
    assert merged.max() == 1
    labels = segment_vesicles(fg, bd, (5.0, 5.0), vesicle_radius_nm=40.0, mode="predicted_distance", distance=dist)
    assert labels.max() == 2 and labels[20, 22] != labels[20, 37]
    scores = instance_scores(truth, labels, iou_threshold=0.8)
    assert scores["f1"] == 1.0
    # the recipe takes the distance from channel 2
    via_recipe = apply_recipe("vesicles", np.stack([fg, bd, dist]), (5.0, 5.0),
                              {"mode": "predicted_distance", "vesicle_radius_nm": 40.0})
    np.testing.assert_array_equal(via_recipe, labels)


def test_predicted_distance_seed_separation_in_nm():
    from postprocessing.vesicles import distance_maxima_seeds

    # two maxima 6 px apart on one ridge: 30 nm at 5 nm pixels
    d = np.zeros((9, 20), np.float32)
    d[4, 4:15] = 0.6
    d[4, 5], d[4, 11] = 1.0, 0.9
    mask = d > 0
    assert distance_maxima_seeds(d, mask, (5.0, 5.0), 25.0, 0.5).max() == 2  # each the maximum within 25 nm
    assert distance_maxima_seeds(d, mask, (5.0, 5.0), 35.0, 0.5).max() == 1  # the lower one is suppressed
    assert distance_maxima_seeds(d, mask, (2.0, 2.0), 25.0, 0.5).max() == 1  # only 12 nm apart at 2 nm pixels
    # separation 0: connected components above the threshold (the ridge is one)
    assert distance_maxima_seeds(d, mask, (5.0, 5.0), 0.0, 0.5).max() == 1
    # equal maxima next to each other are one seed, not two
    flat = np.zeros((5, 5), np.float32)
    flat[2, 1:4] = 1.0
    assert distance_maxima_seeds(flat, flat > 0, (1.0, 1.0), 2.0, 0.5).max() == 1


def test_predicted_distance_needs_the_distance_channel():
    a = np.zeros((16, 16), np.float32)
    with pytest.raises(ValueError, match="distance"):
        segment_vesicles(a, a, (5.0, 5.0), mode="predicted_distance")
    with pytest.raises(ValueError, match="distance"):
        segment_vesicles(a, a, (5.0, 5.0), mode="predicted_distance", distance=a[:8])
    with pytest.raises(ValueError, match="channels"):
        apply_recipe("vesicles", np.stack([a, a]), (5.0, 5.0), {"mode": "predicted_distance"})


def test_vesicles_reject_bad_input():
    a = np.zeros((8, 8, 8), np.float32)
    with pytest.raises(ValueError, match="voxel_size_nm"):
        segment_vesicles(a, a, (1.0, 1.0))
    with pytest.raises(ValueError, match="boundary"):
        segment_vesicles(a, a[:4], 1.0)
    with pytest.raises(ValueError, match="mode"):
        segment_vesicles(a, a, 1.0, mode="fast")


# --- component-wise watershed equals skimage --------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_seeded_watershed_matches_skimage(seed):
    rng = np.random.default_rng(seed)
    image = ndimage.gaussian_filter(rng.random((24, 48, 48)), 2)
    mask = ndimage.gaussian_filter(rng.random((24, 48, 48)), 2) > 0.5
    seeds, _ = ndimage.label(image < np.quantile(image, 0.05))
    components, _ = ndimage.label(mask)
    pairs = np.unique(np.stack([components[seeds > 0], seeds[seeds > 0]]), axis=1)
    pairs = pairs[:, pairs[0] > 0]
    assert np.bincount(pairs[0]).max() >= 2  # some components need flooding
    expected = watershed(image, seeds, mask=mask)
    ours = seeded_watershed(image, seeds, mask)
    assert same_partition(expected, ours)


def test_seeded_watershed_seed_label_in_two_components():
    mask = np.zeros((1, 10, 20), bool)
    mask[0, 2:8, 1:9] = mask[0, 2:8, 11:19] = True
    seeds = np.zeros(mask.shape, np.int32)
    seeds[0, 4, 4] = seeds[0, 4, 15] = 7  # one label, two components
    seeds[0, 6, 17] = 3
    image = np.random.default_rng(0).random(mask.shape)  # no ties
    expected = watershed(image, seeds, mask=mask)
    assert same_partition(expected, seeded_watershed(image, seeds, mask))
    # Label 7 has 48 voxels on the left plus 1 on the right, label 3 has 47:
    # only the sum over both components passes the size filter.
    filtered = seeded_watershed(image, seeds, mask, min_size=49)
    assert filtered[0, 4, 4] == filtered[0, 4, 15] == 1
    assert filtered.max() == 1 and (filtered > 0).sum() == 49


def _flood_each_component_alone(image, seeds, mask):
    """The definition the batched flooding must reproduce: one skimage call per mask component, in its box."""
    components, _ = ndimage.label(mask)
    expected = np.zeros(mask.shape, seeds.dtype)
    for index, box in enumerate(ndimage.find_objects(components), start=1):
        sub_mask = components[box] == index
        sub_seeds = np.where(sub_mask, seeds[box], 0)
        if sub_seeds.any():
            expected[box][sub_mask] = watershed(image[box], markers=sub_seeds, mask=sub_mask)[sub_mask]
    return expected


def _disk_clusters(rng, shape=(160, 240), n=90):
    """Mask of random overlapping disks (clusters of touching vesicles, single ones, seedless specks) and seeds."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    mask = np.zeros(shape, bool)
    seeds = np.zeros(shape, np.int32)
    for label in range(1, n + 1):
        cy, cx = rng.uniform(6, shape[0] - 6), rng.uniform(6, shape[1] - 6)
        r = rng.uniform(3, 6)
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        mask |= disk
        if label % 10:  # every tenth disk has no seed
            seeds[((yy - cy) ** 2 + (xx - cx) ** 2 <= (0.6 * r) ** 2) & (seeds == 0)] = label
    mask[3, 3] = True  # a seedless one-voxel component
    return mask, seeds


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("canvas_voxels", [1 << 8, 1 << 21])
def test_seeded_watershed_batched_components_equal_flooding_each_alone(monkeypatch, n_threads, canvas_voxels):
    """Components without marker ties are flooded together in canvases (several when small), with their
    interior markers out of the mask: the labels equal one skimage call per component, voxel for voxel."""
    import postprocessing._watershed as module

    monkeypatch.setattr(module, "CANVAS_VOXELS", canvas_voxels)
    rng = np.random.default_rng(5)
    mask, seeds = _disk_clusters(rng)
    image = ndimage.gaussian_filter(rng.random(mask.shape), 2.0)  # no ties
    seeds = ndimage.label(seeds > 0)[0]  # seed labels in raster order, as the recipes make them
    components, _ = ndimage.label(mask)
    per_component = np.bincount(np.unique(np.stack([components[seeds > 0], seeds[seeds > 0]]), axis=1)[0])
    assert (per_component >= 2).sum() >= 5 and (per_component == 1).sum() >= 5  # both paths are exercised
    interior = module._interior_markers(seeds, mask)
    assert interior.any() and not (interior & (seeds == 0)).any()
    expected = _flood_each_component_alone(image, seeds, mask)
    ours = seeded_watershed(image, seeds, mask, n_threads=n_threads)  # min_size 0 keeps the seed labels
    assert ours.dtype == np.uint32 and np.array_equal(ours, expected)
    assert same_partition(ours, watershed(image, seeds, mask=mask))
    inverted = seeded_watershed(-image, seeds, mask, invert=True, n_threads=n_threads)
    assert np.array_equal(inverted, expected)


def test_seeded_watershed_marker_ties_flood_alone():
    """Components with two equal marker values are flooded alone (skimage breaks such ties by its heap
    layout); the others stay batched. Both give the per-component labels exactly."""
    import postprocessing._watershed as module

    rng = np.random.default_rng(6)
    mask, seeds = _disk_clusters(rng)
    seeds = ndimage.label(seeds > 0)[0]
    image = rng.integers(0, 6, mask.shape).astype(np.float32)  # many ties
    image[mask & (np.arange(mask.shape[1]) > 120)] = rng.random(int((mask & (np.arange(mask.shape[1]) > 120)).sum()))
    components, n = ndimage.label(mask)
    tied = module._ties(image[seeds > 0], components[seeds > 0], n + 1)
    assert tied.any() and not tied.all()
    # the float64 path of the tie test agrees with the float32 one
    assert np.array_equal(tied, module._ties(image[seeds > 0].astype(np.float64), components[seeds > 0], n + 1))
    expected = _flood_each_component_alone(image, seeds, mask)
    assert np.array_equal(seeded_watershed(image, seeds, mask), expected)
    assert np.array_equal(seeded_watershed(image, seeds, mask, n_threads=2), expected)


@pytest.mark.parametrize("canvas_voxels", [1 << 8, 1 << 21])
def test_seeded_watershed_two_phase_flooding_equals_flooding_each_alone(monkeypatch, canvas_voxels):
    """Seeds that are the components of ``distance > threshold``, flooding ``-distance`` (the vesicle and
    mitochondria recipes): every marker lies below every other voxel, so the markers' first phase is
    computed directly and only the rest is flooded. Components whose first-phase voxels tie fall back to
    the plain flood. Both equal one skimage call per component, voxel for voxel."""
    import postprocessing._watershed as module

    monkeypatch.setattr(module, "CANVAS_VOXELS", canvas_voxels)
    calls = []
    first_labels = module._first_labels

    def spy(markers, image, free):
        first = first_labels(markers, image, free)
        calls.append(int((first > 0).sum()))
        return first

    monkeypatch.setattr(module, "_first_labels", spy)
    rng = np.random.default_rng(7)
    mask, _ = _disk_clusters(rng)
    distance = ndimage.gaussian_filter(ndimage.distance_transform_edt(mask), 1.0)
    distance += rng.normal(0, 0.01, mask.shape)  # no ties ...
    right = (np.arange(mask.shape[1]) >= 160) & (distance <= 2.0)
    distance[right] = np.round(distance[right], 1)  # ... except below the seeds on the right: the first phase ties
    seeds = ndimage.label(mask & (distance > 2.0))[0]
    components, n = ndimage.label(mask)
    per_component = np.bincount(np.unique(np.stack([components[seeds > 0], seeds[seeds > 0]]), axis=1)[0])
    assert (per_component >= 2).sum() >= 5
    expected = _flood_each_component_alone(-distance, seeds, mask)
    ours = seeded_watershed(distance, seeds, mask, invert=True)
    assert np.array_equal(ours, expected)
    assert same_partition(ours, watershed(-distance, seeds, mask=mask))
    assert calls and sum(calls) > 0  # the two-phase path ran
    # a height map that is not split by its markers takes the plain path, with the same result
    calls.clear()
    noisy = -distance + rng.normal(0, 1.0, mask.shape)
    assert np.array_equal(seeded_watershed(noisy, seeds, mask), _flood_each_component_alone(noisy, seeds, mask))


def test_seeded_watershed_two_phase_falls_back_when_the_first_phase_ties():
    """Marker 2 (at -2.0) labels its neighbour before marker 1 (at -1.5) labels its own, so the middle of the
    plateau goes to 2; flooding from the two first-phase voxels, which tie, would give it to 1."""
    image = np.array([[-1.5, 0.0, 0.0, 0.0, -2.0]])
    seeds = np.array([[1, 0, 0, 0, 2]])
    mask = np.ones(seeds.shape, bool)
    assert watershed(image, seeds, mask=mask).tolist() == [[1, 1, 2, 2, 2]]
    assert watershed(image, np.array([[0, 1, 0, 2, 0]]), mask=mask).tolist() == [[1, 1, 1, 2, 2]]
    assert seeded_watershed(image, seeds, mask).tolist() == [[1, 1, 2, 2, 2]]


@pytest.mark.parametrize("shape", [(40, 60), (12, 30, 40), (50,)])
def test_face_components_number_as_scipy(shape):
    """cc3d's labels equal scipy.ndimage.label's, numbering included, for C, Fortran and strided inputs."""
    from postprocessing._labels import face_components

    rng = np.random.default_rng(len(shape))
    mask = ndimage.gaussian_filter(rng.random(shape), 1.5) > 0.5
    expected, n = ndimage.label(mask)
    assert n >= 3
    for variant in (mask, np.asfortranarray(mask), mask.astype(np.uint8)):
        labels, count = face_components(variant)
        assert labels.dtype == np.uint32 and count == n and np.array_equal(labels, expected)
    strided = mask[..., ::2]
    assert np.array_equal(face_components(strided)[0], ndimage.label(strided)[0])


def test_ties_finds_equal_values_within_components_only():
    import postprocessing._watershed as module

    values = np.array([0.5, 0.5, 0.25, 0.25, 0.125, -0.0, 0.0, np.nan], np.float32)
    component = np.array([0, 1, 2, 2, 3, 4, 4, 5])
    expected = [False, False, True, False, True, True]  # across components (0, 1) is no tie; -0.0 == 0.0
    for dtype in (np.float32, np.float64):
        assert module._ties(values.astype(dtype), component, 6).tolist() == expected


# --- mitochondria -----------------------------------------------------------


def test_mitochondria_recovered_and_holes_filled():
    shape = (32, 96, 96)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    truth = np.zeros(shape, np.uint32)
    first = ((z - 16) / 10.0) ** 2 + ((y - 30) / 20.0) ** 2 + ((x - 25) / 12.0) ** 2 <= 1
    second = ((z - 16) / 10.0) ** 2 + ((y - 60) / 14.0) ** 2 + ((x - 70) / 18.0) ** 2 <= 1
    truth[first], truth[second] = 1, 2
    fg = (truth > 0).astype(np.float32)
    bd = (ndimage.morphological_gradient(truth, size=3) > 0).astype(np.float32)
    fg_with_hole = fg.copy()
    fg_with_hole[15:18, 29:32, 24:27] = 0  # a hole inside the first one
    labels = segment_mitochondria(fg_with_hole, bd, 2.0, seed_distance_nm=8.0, min_volume_nm3=8000.0)
    assert instance_scores(truth, labels)["f1"] == 1.0
    assert labels[16, 30, 25] == labels[16, 30, 20] != 0
    unfilled = segment_mitochondria(fg_with_hole, bd, 2.0, seed_distance_nm=8.0, fill_holes=False)
    assert unfilled[16, 30, 25] == 0


# --- clefts and active zone -------------------------------------------------


def sheets(shape, boxes):
    truth = np.zeros(shape, np.uint32)
    for i, box in enumerate(boxes, 1):
        truth[box] = i
    return truth


def test_clefts_components_and_size_filter():
    truth = sheets((10, 64, 64), [np.s_[2:6, 10:13, 5:40], np.s_[3:8, 40:60, 50:53]])
    prob = (truth > 0).astype(np.float32) * 0.9
    prob[0, 0, 0] = 0.9  # one voxel of noise
    labels = segment_clefts(prob, (40.0, 4.0, 4.0), min_volume_nm3=2000.0)
    assert instance_scores(truth, labels)["f1"] == 1.0


def test_active_zone_restricted_to_membrane_of_vesicle_compartment():
    shape = (20, 64, 64)
    compartments = np.zeros(shape, np.uint32)
    compartments[:, 4:30, 4:60] = 1
    compartments[:, 34:60, 4:60] = 2
    vesicles = np.zeros(shape, np.uint32)
    for i, (y, x) in enumerate([(15, 15), (15, 30), (20, 45)], 1):
        vesicles[8:11, y : y + 3, x : x + 3] = i
    az = np.zeros(shape, np.float32)
    az[5:15, 28:31, 10:40] = 1.0  # on the membrane of compartment 1
    az[5:15, 45:48, 10:40] = 1.0  # inside compartment 2, off any membrane
    free = segment_active_zone(az, 2.0, min_volume_nm3=100.0)
    assert free.max() == 2
    restricted = segment_active_zone(
        az, 2.0, min_volume_nm3=100.0, compartments=compartments, vesicles=vesicles,
        membrane_width_nm=4.0,
    )
    assert restricted.max() == 1 and restricted[10, 29, 20] == 1 and restricted[10, 46, 20] == 0


# --- compartments -----------------------------------------------------------


def test_compartments_join_slices_and_drop_short_objects():
    shape = (12, 64, 64)
    boundary = np.zeros(shape, np.float32)
    boundary[:, 31:33, :] = 1.0  # membrane between two compartments
    boundary[:, :, 0] = boundary[:, :, -1] = 1.0
    boundary[:, 0, :] = boundary[:, -1, :] = 1.0
    truth = np.zeros(shape, np.uint32)
    truth[:, 1:31, 1:63] = 1
    truth[:, 33:63, 1:63] = 2
    labels = segment_compartments(boundary, (5.0, 5.0, 5.0), seed_distance_nm=20.0, min_area_nm2=500.0)
    assert instance_scores(truth, labels)["f1"] == 1.0
    short = boundary.copy()
    short[:3, 31:33, :] = 0  # first 3 slices: one compartment
    labels = segment_compartments(short, 5.0, seed_distance_nm=20.0, min_area_nm2=500.0, min_slices=5)
    kept = instance_scores(truth[3:], labels[3:])
    assert kept["f1"] == 1.0 and labels.max() == 2


# --- ribbon -----------------------------------------------------------------


def test_ribbon_keeps_structure_near_vesicles():
    shape = (16, 80, 80)
    ribbon = np.zeros(shape, np.float32)
    ribbon[6:10, 10:30, 20:24] = 1  # ribbon A (with vesicles)
    ribbon[6:10, 50:75, 60:64] = 1  # ribbon B (larger, no vesicles)
    pd = np.zeros(shape, np.float32)
    pd[6:10, 31:34, 19:25] = 1  # PD under ribbon A
    pd[6:10, 76:79, 59:65] = 1  # PD under ribbon B
    membrane = np.zeros(shape, np.float32)
    membrane[:, 35:37, :] = 1  # membrane below PD A
    vesicles = np.zeros(shape, np.uint32)
    for i, x in enumerate((14, 27, 30), 1):
        vesicles[7:9, 15:17, x : x + 2] = i
    prediction = np.stack([ribbon, pd, membrane])
    labels = segment_ribbon(
        ribbon, pd, membrane, 10.0, vesicles=vesicles, min_volume_nm3=1000.0,
        vesicle_distance_nm=100.0, membrane_distance_nm=150.0,
    )
    assert labels[8, 20, 22] == 1 and labels[8, 60, 62] == 0
    assert labels[8, 32, 22] == 2 and labels[8, 77, 62] == 0
    assert labels[8, 36, 22] == 3 and labels[8, 36, 79] == 0  # beyond 150 nm geodesic
    # Without vesicles the largest ribbon is kept.
    largest = apply_recipe("ribbon", prediction, (10.0, 10.0, 10.0), {"min_volume_nm3": 1000.0})
    assert largest[8, 60, 62] == 1 and largest[8, 20, 22] == 0


# --- recipe dispatch --------------------------------------------------------


def test_unknown_recipe_lists_available():
    with pytest.raises(KeyError, match="vesicles"):
        apply_recipe("nuclei", np.zeros((1, 4, 4), np.float32), (1.0, 1.0))


def test_recipe_checks_channels():
    with pytest.raises(ValueError, match="channels"):
        apply_recipe("vesicles", np.zeros((1, 4, 8, 8), np.float32), (1.0, 1.0, 1.0))


@pytest.mark.parametrize("name", sorted(RECIPES))
@pytest.mark.parametrize("spatial", [(8, 24, 24), (24, 24)])
def test_every_recipe_handles_empty_input(name, spatial):
    prediction = np.zeros((3,) + spatial, np.float32)
    labels = apply_recipe(name, prediction, (4.0,) * len(spatial))
    assert labels.dtype == np.uint32 and labels.shape == spatial and labels.max() == 0


def test_recipe_equals_function():
    fg, bd, truth = vesicle_scene((32, 64, 64), 10, (6, 8), seed=6)
    params = {"vesicle_radius_nm": 7.0}
    via_recipe = apply_recipe("vesicles", np.stack([fg, bd]), (1.0, 1.0, 1.0), params)
    assert np.array_equal(via_recipe, segment_vesicles(fg, bd, 1.0, **params))


def test_same_partition():
    # instance matching is analysis.evaluation's (tests/test_analysis_evaluation.py)
    a = np.array([[1, 1, 0, 2, 2]])
    assert same_partition(a, np.array([[5, 5, 0, 3, 3]]))
    assert not same_partition(a, np.array([[5, 5, 0, 5, 5]]))
    assert not same_partition(a, np.array([[5, 5, 5, 3, 3]]))


def test_package_does_not_import_torch():
    import subprocess
    import sys

    code = "import postprocessing, sys; bad = {'torch', 'bioimageio', 'synapse_bmz'} & set(sys.modules); print(sorted(bad)); sys.exit(bool(bad))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# --- graceful degradation of the other recipes ------------------------------


def mitochondria_scene():
    shape = (32, 96, 96)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    truth = np.zeros(shape, np.uint32)
    for i, (cy, cx, ry, rx) in enumerate([(25, 25, 18, 12), (65, 30, 14, 20), (45, 72, 25, 10)], 1):
        truth[((z - 16) / 10.0) ** 2 + ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1] = i
    boundary = (ndimage.morphological_gradient(truth, size=3) > 0) & (truth > 0)
    return (truth > 0).astype(np.float32), boundary.astype(np.float32), truth


def test_mitochondria_and_clefts_degrade_gracefully():
    fg, bd, truth = mitochondria_scene()
    clefts = sheets((10, 64, 64), [np.s_[2:6, 10:14, 5:40], np.s_[3:8, 40:60, 50:54]])
    rng = np.random.default_rng(1)
    mito_scores, cleft_scores = [], []
    for sigma in (0.0, 0.1, 0.35):
        labels = segment_mitochondria(
            smooth_noise(fg, sigma, rng), smooth_noise(bd, sigma, rng), 2.0,
            seed_distance_nm=6.0, min_volume_nm3=8000.0,
        )
        mito_scores.append(instance_scores(truth, labels)["f1"])
        prob = smooth_noise((clefts > 0).astype(np.float32), sigma, rng)
        cleft_scores.append(instance_scores(clefts, segment_clefts(prob, (40.0, 4.0, 4.0)))["f1"])
    assert mito_scores[0] == 1.0 and mito_scores[1] >= 0.9 and mito_scores[2] < 1.0
    assert cleft_scores[0] == 1.0 and cleft_scores[1] >= 0.9 and cleft_scores[2] < 1.0


def test_threads_give_the_same_result():
    fg, bd, truth = vesicle_scene((40, 80, 80), 20, (7, 9), seed=2, gap=-1.0)
    one = segment_vesicles(fg, bd, 1.0, vesicle_radius_nm=8.0)
    two = segment_vesicles(fg, bd, 1.0, vesicle_radius_nm=8.0, n_threads=2)
    assert np.array_equal(one, two)
