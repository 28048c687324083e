"""The block model and the array API: numpy/dask/zarr in, DataArray and labels out."""

import os

import numpy as np
import pytest
import zarr

import synapse_bmz
from postprocessing.blocks import BlockGrid, context_voxels
from synapse_bmz import api
from synapse_bmz.errors import BlockFailure, OptionError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_block_grid_partitions_and_ids_are_deterministic():
    grid = BlockGrid((10, 23, 17), (4, 8, 8), [(1, 2), 3, 0])
    seen = np.zeros(grid.shape, int)
    for i, block in enumerate(grid):
        assert block.id == i and grid[i] == block
        seen[block.write] += 1
        for w, r, (lo, hi), n, b in zip(block.write, block.read, grid.context, grid.shape, grid.block_shape):
            assert r.start == max(w.start - lo, 0) and r.stop == min(w.stop + hi, n)
            assert w.start % b == 0
    assert (seen == 1).all()
    assert len(BlockGrid((10, 23, 17), (4, 8, 8), 1)) == len(grid) == 3 * 3 * 3
    with pytest.raises(ValueError, match="block_shape"):
        BlockGrid((4, 4), (0, 2))


def test_fixed_read_shape_pads_every_tile_to_the_network_size():
    grid = BlockGrid((100,), (30,), [(8, 0)], read_shape=(48,))
    for block in grid:
        r, (p0, p1) = block.read[0], block.pad[0]
        assert (r.stop - r.start) + p0 + p1 == 48
        assert block.crop[0] == slice(8, 8 + block.write[0].stop - block.write[0].start)


def test_context_voxels_rounds_up_per_axis():
    assert context_voxels(100.0, (40.0, 4.0, 4.0)) == (3, 25, 25)
    assert context_voxels(0.0, (5.0, 5.0)) == (0, 0)


@pytest.fixture(scope="module")
def stack():
    from scipy import ndimage as ndi

    rng = np.random.default_rng(1)
    img = ndi.gaussian_filter(rng.normal(size=(3, 96, 112)), (0, 3, 3))
    return ((img - img.min()) / np.ptp(img) * 255).astype(np.uint8)


def test_predict_accepts_numpy_dask_and_zarr_and_touches_no_files(tiny_package_2d, stack, tmp_path, monkeypatch):
    import dask.array as da

    monkeypatch.chdir(tmp_path)
    ref = synapse_bmz.predict(tiny_package_2d, stack, voxel_size_nm=(5.0, 5.0, 5.0))
    assert ref.dims == ("c", "z", "y", "x") and ref.shape == (2,) + stack.shape
    assert list(ref.coords["c"].values) == ["foreground", "boundary"]
    assert ref.attrs["voxel_size_nm"] == [5.0, 5.0, 5.0]
    assert ref.coords["x"].values[1] == 5.0  # nm
    z = zarr.create_array(store={}, shape=stack.shape, chunks=(1, 32, 32), dtype=stack.dtype)
    z[...] = stack
    for image in (da.from_array(stack, chunks=(1, 48, 48)), z):
        other = synapse_bmz.predict(tiny_package_2d, image, voxel_size_nm=(5.0, 5.0, 5.0))
        np.testing.assert_array_equal(np.asarray(other), np.asarray(ref))
    assert list(tmp_path.iterdir()) == []


def test_predict_events_report_progress_and_can_be_cancelled(tiny_package_2d, stack):
    session = api.load_session(tiny_package_2d, device="cpu")
    gen = api.predict_events(session, stack, voxel_size_nm=(5.0, 5.0, 5.0), tile=(48, 48), batch_size=1)
    events = []
    for event in gen:
        events.append(event)
        if event.stage == "predict" and event.done == 3:
            gen.close()  # a GUI's Cancel button
            break
    stages = [e.stage for e in events]
    assert stages[:2] == ["statistics", "statistics"] and "predict" in stages
    total = events[-1].total
    assert total > 3 and events[-1].done == 3 and 0 < events[-1].fraction < 1


def test_tiled_prediction_writes_every_voxel_once(tiny_package_2d, stack):
    session = api.load_session(tiny_package_2d, device="cpu")
    tiled = api.predict(session, stack, voxel_size_nm=(5.0, 5.0, 5.0), tile=(48, 48), batch_size=2)
    assert tiled.attrs["blocks_total"] > 3 * 4
    whole = api.predict(session, stack, voxel_size_nm=(5.0, 5.0, 5.0))
    # the tiny net's halo is its measured minimum: tiles agree with the whole pass away from the border
    diff = np.abs(np.asarray(tiled) - np.asarray(whole))[..., 16:-16, 16:-16]
    assert diff.max() < 1e-3


def test_bad_tile_halo_batch_options_are_refused(tiny_package_2d, stack):
    session = api.load_session(tiny_package_2d, device="cpu")
    halo = session.layout.halo
    for kw, option in [({"tile": (0, 0)}, "--tile"), ({"tile": (-64, 64)}, "--tile"),
                       ({"tile": (2 * halo[0], 64)}, "--tile"), ({"tile": (64,)}, "--tile"),
                       ({"halo": (halo[0] - 1, halo[1])}, "--halo"), ({"batch_size": 0}, "--batch-size")]:
        with pytest.raises(OptionError, match=option):
            api.predict(session, stack, voxel_size_nm=(5.0, 5.0, 5.0), **kw)
    with pytest.raises(OptionError, match="voxel_size_nm"):
        api.predict(session, stack)


def test_device_cuda_without_cuda_is_an_option_error(tiny_package_2d):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(OptionError, match="--device.*CUDA is not available"):
        api.load_session(tiny_package_2d, device="cuda")


class FlakyStorage:
    """An input whose reads of one region fail, as a damaged chunk on a network file system would."""

    def __init__(self, data, bad_y):
        self.data, self.bad_y = data, bad_y
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        if len(key) > 1 and isinstance(key[1], slice) and key[1].start == self.bad_y:
            raise OSError("input/output error")
        return self.data[key]


def test_a_block_that_keeps_failing_is_reported_with_coordinates(tiny_package_2d, stack, tmp_path):
    from synapse_bmz.distributed import DoneMarkers

    session = api.load_session(tiny_package_2d, device="cpu")
    good = api.predict(session, stack, voxel_size_nm=(5.0, 5.0, 5.0), tile=(48, 48), batch_size=1)
    grid_y = 32  # write regions start at multiples of the 32-voxel inner tile; reads start 8 earlier
    markers = DoneMarkers(tmp_path / "blocks", "predict")
    out = np.full((2,) + stack.shape, -1.0, np.float32)
    with pytest.raises(BlockFailure, match=r"block \d+ \[z \d+:\d+, y 32:64"):
        api.predict(session, FlakyStorage(stack, bad_y=grid_y - 8), voxel_size_nm=(5.0, 5.0, 5.0),
                    tile=(48, 48), batch_size=1, out=out, markers=markers)
    done = markers.done()
    assert 0 < len(done) < good.attrs["blocks_total"]
    # finished blocks are intact; the failed ones were never marked
    ok = out[:, :, :32] != -1.0
    np.testing.assert_array_equal(out[:, :, :32][ok], np.asarray(good)[:, :, :32][ok])
    assert ok.all()


def _package_prediction(name):
    path = os.path.join(REPO, "model_packages", name)
    session = api.load_session(path, device="cpu")
    image = np.load(os.path.join(path, "test_input.npy"))[0, 0]
    vs = tuple(session.layout.voxel_size_nm)
    if image.ndim == 2:
        image, vs = np.stack([image, image[::-1]]), (vs[0],) + vs
    return session, api.predict(session, image, voxel_size_nm=vs)


def _segments(name):
    """Packages whose output is on the input's grid; feature extractors (task `features`,
    batch x features, vgg3d_features) have no recipe and are not run block by block."""
    import yaml

    with open(os.path.join(REPO, "model_packages", name, "rdf.yaml")) as f:
        return ((yaml.safe_load(f).get("config") or {}).get("synapse_bmz") or {}).get("task") != "features"


PACKAGES = sorted(p for p in os.listdir(os.path.join(REPO, "model_packages"))
                  if os.path.isfile(os.path.join(REPO, "model_packages", p, "rdf.yaml")) and _segments(p))


@pytest.mark.parametrize("name", PACKAGES)
def test_every_recipe_blockwise_equals_in_memory(name):
    """The large-volume path (threshold lowered to 0) with the recipe's declared context gives the
    in-memory instances, up to relabelling, and ids 1..N."""
    from postprocessing.compare import same_partition

    session, pred = _package_prediction(name)
    whole = api.segment(session, pred, table=False)
    shape = pred.shape[1:]
    block = tuple(max(1, s // 2) for s in shape)
    if len(session.layout.spatial) == 2:
        block = (1,) + block[1:]
    blockwise = api.segment(session, pred, in_memory_voxels=0, block_shape=block, table=False)
    a, b = np.asarray(whole.labels), np.asarray(blockwise.labels)
    assert a.shape == b.shape == shape
    assert same_partition(a, b), f"{name}: {a.max()} objects in memory, {b.max()} block-wise"
    if whole.recipe != "ribbon":
        assert b.max() == len(np.unique(b)) - 1


def test_segment_table_has_units(tiny_package_2d, stack):
    pred = synapse_bmz.predict(tiny_package_2d, stack, voxel_size_nm=(5.0, 5.0, 5.0))
    res = synapse_bmz.segment(tiny_package_2d, pred)
    assert res.labels.shape == stack.shape and res.labels.dtype == np.uint32
    assert {"label", "section", "centroid_z_nm", "area_nm2"} <= set(res.table.columns)
    assert res.n_objects == len(res.table)


def test_recipe_context_is_in_nm_and_a_package_may_raise_it():
    from postprocessing.blockwise import recipe_grid
    from postprocessing.recipes import recipe_context_nm
    from synapse_bmz.zoo.config import PostprocessingSpec

    assert recipe_context_nm("ribbon", {}) == 520.0  # contact + membrane distance
    grid = recipe_grid("clefts", {}, (20, 200, 200), (40.0, 4.0, 4.0), (10, 100, 100))
    assert grid.context == ((25, 25), (250, 250), (250, 250))  # 1000 nm
    stack = recipe_grid("vesicles", {"vesicle_radius_nm": 10}, (3, 64, 64), (5.0, 5.0), (1, 32, 32))
    assert stack.context == ((0, 0), (32, 32), (32, 32))  # 2D recipe on a stack: sections independent
    spec = PostprocessingSpec(recipe="clefts", context_nm=2000.0)
    grid = recipe_grid(spec.recipe, spec.params, (20, 200, 200), (40.0, 4.0, 4.0), (10, 100, 100), spec.context_nm)
    assert grid.context[0] == (50, 50)
    with pytest.raises(KeyError, match="unknown recipe"):
        recipe_context_nm("nope")
