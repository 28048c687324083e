"""Block-wise recipes equal whole-volume recipes up to relabelling."""

import numpy as np
import pytest
import zarr
from scipy import ndimage

from analysis.evaluation import instance_scores
from postprocessing import apply_recipe, apply_recipe_blockwise
from postprocessing.blockwise import iter_blocks
from postprocessing.compare import same_partition
from postprocessing.synthetic import place_balls, vesicle_prediction


def as_zarr(array, chunks):
    z = zarr.create_array(store={}, shape=array.shape, chunks=chunks, dtype=array.dtype)
    z[...] = array
    return z


def empty_out(shape, chunks):
    return zarr.create_array(store={}, shape=shape, chunks=chunks, dtype="uint32", fill_value=0)


def run_both(name, prediction, voxel, params, block_shape, halo, n_workers=1):
    whole = apply_recipe(name, prediction, voxel, params)
    spatial = prediction.shape[1:]
    pred = as_zarr(prediction, (prediction.shape[0],) + tuple(block_shape))
    out = empty_out(spatial, block_shape)
    apply_recipe_blockwise(name, pred, voxel, params, out, block_shape, halo, n_workers=n_workers)
    return whole, out[...]


def vesicles(shape, n, radii, seed, gap=1.0):
    rng = np.random.default_rng(seed)
    centers, r = place_balls(shape, n, radii, rng, gap=gap)
    fg, bd, truth = vesicle_prediction(shape, centers, r)
    return np.stack([fg, bd]), truth


@pytest.mark.parametrize("n_workers", [1, 2])
def test_vesicles_blockwise_equals_whole(n_workers):
    # Touching vesicles (gap 0): 40 vesicles in 35 mask components.
    prediction, truth = vesicles((40, 128, 128), 40, (5, 8), seed=1, gap=0.0)
    components, n_components = ndimage.label(prediction[0] + prediction[1] > 0.5)
    extent = max(sl.stop - sl.start for box in ndimage.find_objects(components) for sl in box)
    halo = 32
    assert n_components < 40 and extent < halo  # the documented assumption holds
    params = {"vesicle_radius_nm": 6.5}
    whole, blockwise = run_both("vesicles", prediction, (1.0,) * 3, params, (20, 32, 32), halo, n_workers)
    # Objects cut by block faces exist, and are stitched.
    left = {int(v) for v in np.unique(whole[:, 31, :]) if v}
    right = {int(v) for v in np.unique(whole[:, 32, :]) if v}
    assert left & right
    assert instance_scores(truth, whole)["f1"] == 1.0
    assert same_partition(whole, blockwise)
    # Labels are 1..N in raster order of first voxel.
    assert blockwise.max() == len(np.unique(blockwise)) - 1


def test_vesicles_blockwise_2d():
    # gap=3: clusters of touching vesicles stay below 36 px, within the halo.
    prediction, _ = vesicles((128, 128), 80, (3.5, 5.0), seed=1, gap=3.0)
    whole, blockwise = run_both("vesicles", prediction, (5.0, 5.0), None, (40, 40), 36)
    assert whole.max() > 50 and same_partition(whole, blockwise)


def test_vesicles_predicted_distance_blockwise_2d():
    # the vesicles_2d recipe: seeds at maxima of a (noisy) distance channel; touching clusters
    from synapse_bmz.training.targets import normalised_distance

    rng = np.random.default_rng(3)
    centers, r = place_balls((160, 160), 90, (3.5, 5.0), rng, gap=-1.0)
    fg, bd, truth = vesicle_prediction((160, 160), centers, r)
    dist = ndimage.gaussian_filter(normalised_distance(truth), 0.7) + rng.normal(0, 0.02, truth.shape)
    prediction = np.stack([fg, bd, dist]).astype(np.float32)
    params = {"mode": "predicted_distance", "vesicle_radius_nm": 25.0, "mask_threshold": 0.5}
    components = ndimage.label(fg > 0.5)[0]
    extent = max(sl.stop - sl.start for box in ndimage.find_objects(components) for sl in box)
    assert extent < 36
    whole, blockwise = run_both("vesicles", prediction, (5.0, 5.0), params, (40, 40), 36)
    assert whole.max() > ndimage.label(fg > 0.5)[1]  # touching vesicles were separated
    assert same_partition(whole, blockwise)


def test_too_small_halo_is_detectably_different():
    prediction, _ = vesicles((32, 64, 64), 20, (8, 10), seed=2)
    params = {"vesicle_radius_nm": 9.0}
    whole, blockwise = run_both("vesicles", prediction, (1.0,) * 3, params, (16, 16, 16), 1)
    assert not same_partition(whole, blockwise)


@pytest.mark.parametrize("name", ["clefts", "active_zone"])
def test_threshold_recipes_blockwise(name):
    rng = np.random.default_rng(3)
    prob = np.zeros((24, 64, 64), np.float32)
    for _ in range(25):
        z, y, x = rng.integers(0, [22, 56, 56])
        prob[z : z + 2, y : y + 8, x : x + rng.integers(2, 8)] = 0.9
    whole, blockwise = run_both(name, prob[None], (4.0, 4.0, 4.0), {"min_volume_nm3": 600.0}, (12, 24, 24), 10)
    assert whole.max() > 10 and same_partition(whole, blockwise)


def test_mitochondria_blockwise():
    prediction, _ = vesicles((32, 96, 96), 12, (8, 12), seed=4, gap=3.0)
    params = {"seed_distance_nm": 8.0, "min_volume_nm3": 4000.0}
    whole, blockwise = run_both("mitochondria", prediction, (2.0,) * 3, params, (16, 48, 48), 28)
    assert whole.max() >= 10 and same_partition(whole, blockwise)


def test_compartments_blockwise_small_objects():
    boundary = np.ones((16, 64, 64), np.float32)
    for y in range(2, 62, 15):
        for x in range(2, 62, 15):
            boundary[2:14, y : y + 12, x : x + 12] = 0
    params = {"seed_distance_nm": 4.0, "min_area_nm2": 200.0, "min_slices": 5}
    whole, blockwise = run_both("compartments", boundary[None], (2.0,) * 3, params, (8, 32, 32), 16)
    assert whole.max() == 16 and same_partition(whole, blockwise)


def ribbon_prediction(seed=6):
    """(ribbon, PD, membrane) with a U-shaped ribbon crossing block faces."""
    rng = np.random.default_rng(seed)
    shape = (16, 48, 48)
    pred = rng.uniform(0.0, 0.3, (3,) + shape).astype(np.float32)
    ribbon, pd, membrane = pred
    # U shape: two arms joined only in the bottom slab, spanning 3 x 2 x 3 blocks.
    ribbon[2:12, 6:9, 10:13] = 0.9
    ribbon[2:12, 6:9, 34:37] = 0.9
    ribbon[10:12, 6:9, 10:37] = 0.9
    ribbon[3:6, 38:44, 20:30] = 0.8  # second, smaller ribbon (120 voxels)
    ribbon[0:2, 40:42, 2:4] = 0.8  # below min_volume_nm3
    pd[4:9, 11:13, 14:18] = 0.9  # close to the U (chosen)
    pd[4:9, 18:20, 20:26] = 0.9  # farther
    pd[12:14, 40:44, 40:44] = 0.9
    membrane[:, 14:16, :] = 0.9  # sheet the band runs along, across all blocks
    membrane[6:8, 30:32, :] = 0.9
    return pred


@pytest.mark.parametrize("n_workers", [1, 2])
def test_ribbon_blockwise_equals_whole(n_workers):
    prediction = ribbon_prediction()
    params = {"contact_distance_nm": 20.0, "membrane_distance_nm": 60.0}
    whole, blockwise = run_both("ribbon", prediction, (10.0,) * 3, params, (8, 16, 16), 8, n_workers)
    # Each structure present, the ribbon and the band cross block faces.
    assert set(np.unique(whole)) == {0, 1, 2, 3}
    ribbon_blocks = {(z // 8, y // 16, x // 16) for z, y, x in np.argwhere(whole == 1)}
    assert len(ribbon_blocks) >= 4
    band = np.argwhere(whole == 3)
    assert band[:, 2].min() < 16 <= band[:, 2].max()
    assert np.array_equal(whole, blockwise)


def test_ribbon_blockwise_2d_and_tiny_blocks():
    prediction = ribbon_prediction()[:, 10].copy()  # the U's bottom slab
    prediction[1, 11:13, 14:18] = prediction[1, 18:20, 24:30] = 0.9
    params = {"contact_distance_nm": 20.0, "membrane_distance_nm": 40.0, "min_volume_nm3": 500.0}
    whole, blockwise = run_both("ribbon", prediction, (10.0, 10.0), params, (5, 7), 6)
    assert whole.max() == 3 and np.array_equal(whole, blockwise)


def test_ribbon_blockwise_checks_halo():
    prediction = ribbon_prediction()
    out = np.zeros(prediction.shape[1:], np.uint32)
    with pytest.raises(ValueError, match="halo"):
        apply_recipe_blockwise("ribbon", prediction, (10.0,) * 3, None, out, (8, 16, 16), 8)


def test_ribbon_blockwise_empty():
    prediction = np.zeros((3, 8, 8, 8), np.float32)
    out = np.full((8, 8, 8), 7, np.uint32)
    params = {"membrane_distance_nm": 2.0}
    apply_recipe_blockwise("ribbon", prediction, (1.0,) * 3, params, out, (4, 4, 4), 22)
    assert not out.any()


def test_blockwise_checks_out_shape_and_name():
    prediction = np.zeros((2, 8, 8, 8), np.float32)
    with pytest.raises(ValueError, match="out"):
        apply_recipe_blockwise("vesicles", prediction, (1.0,) * 3, None, np.zeros((8, 8, 4), np.uint32), 4, 2)
    with pytest.raises(KeyError, match="clefts"):
        apply_recipe_blockwise("nuclei", prediction, (1.0,) * 3, None, np.zeros((8, 8, 8), np.uint32), 4, 2)


def test_blocks_cover_volume_once():
    count = np.zeros((10, 13, 7), int)
    for inner, outer in iter_blocks(count.shape, (4, 5, 3), (2, 2, 2)):
        count[inner] += 1
        assert all(o.start <= i.start and o.stop >= i.stop for i, o in zip(inner, outer))
    assert (count == 1).all()


def test_blockwise_accepts_numpy_arrays():
    prediction, _ = vesicles((24, 48, 48), 8, (5, 7), seed=5)
    out = np.zeros(prediction.shape[1:], np.uint32)
    apply_recipe_blockwise("vesicles", prediction, (1.0,) * 3, {"vesicle_radius_nm": 6.0}, out, (12, 24, 24), 18)
    whole = apply_recipe("vesicles", prediction, (1.0,) * 3, {"vesicle_radius_nm": 6.0})
    assert same_partition(whole, out)
