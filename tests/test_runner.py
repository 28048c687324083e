"""The runner against the bare model: same numbers, bounded tiles, rescaling, provenance."""

import json

import numpy as np
import pytest
import zarr

from synapse_bmz.runner.run import RunOptions, run


def _bare_prediction(package, volume):
    import torch

    model = torch.jit.load(str(package / "weights.torchscript.pt"))
    x = (volume.astype(np.float64) - volume.mean()) / (volume.std() + 1e-6)
    with torch.no_grad():
        return np.stack([model(torch.from_numpy(s[None, None].astype(np.float32)))[0].numpy() for s in x], axis=1)


def test_prediction_matches_bare_model_with_whole_volume_normalisation(tiny_package_2d, em_stack, tmp_path):
    import tifffile

    res = run(tiny_package_2d, [str(em_stack)], tmp_path / "out", RunOptions(postprocess=False, progress=False))[0]
    pred = np.asarray(zarr.open_group(str(res.prediction), mode="r")["0"])
    vol = tifffile.imread(em_stack)
    expected = _bare_prediction(tiny_package_2d, vol)
    assert pred.shape == (2,) + vol.shape
    # 96 and 128 are valid sizes, so the runner feeds whole sections: results match
    np.testing.assert_allclose(pred, expected, atol=2e-4)


def test_small_tiles_with_halo_match_whole_volume(tiny_package_2d, em_stack, tmp_path):
    whole = run(tiny_package_2d, [str(em_stack)], tmp_path / "a", RunOptions(postprocess=False, progress=False))[0]
    tiled = run(tiny_package_2d, [str(em_stack)], tmp_path / "b",
                RunOptions(postprocess=False, progress=False, tile=[64, 64], halo=[16, 16]))[0]
    a = np.asarray(zarr.open_group(str(whole.prediction), mode="r")["0"])
    b = np.asarray(zarr.open_group(str(tiled.prediction), mode="r")["0"])
    plan = json.loads((tiled.output_dir / "provenance.json").read_text())["tile_plan"]
    assert plan["tile"] == [64, 64] and plan["halo"] == [16, 16]
    # a 3-level U-Net sees ~+-20 px; 16 px halo leaves only tiny differences far from seams
    assert np.abs(a - b).mean() < 2e-3
    assert np.percentile(np.abs(a - b), 99) < 0.05


def test_outputs_carry_voxel_size_and_provenance(tiny_package_2d, em_stack, tmp_path):
    res = run(tiny_package_2d, [str(em_stack)], tmp_path / "out", RunOptions(postprocess=False, progress=False))[0]
    attrs = zarr.open_group(str(res.prediction), mode="r").attrs.asdict()
    scale = attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale[1:] == [5.0, 5.0, 5.0]
    prov = json.loads((res.output_dir / "provenance.json").read_text())
    assert prov["model"] == "tiny_2d"
    assert len(prov["weights_sha256"]["torchscript"]) == 64
    assert prov["normalisation"]["scope"] == "whole volume"
    assert not [p for p in res.output_dir.parent.iterdir() if p.name.startswith(".")]


def test_rescales_to_model_voxel_size_and_back(tiny_package_2d, tmp_path):
    import tifffile

    rng = np.random.default_rng(0)
    img = (rng.random((2, 48, 64)) * 255).astype(np.uint8)
    path = tmp_path / "coarse.tif"
    tifffile.imwrite(path, img, imagej=True, resolution=(1 / 10.0, 1 / 10.0), metadata={"spacing": 10.0, "unit": "nm", "axes": "ZYX"})
    res = run(tiny_package_2d, [str(path)], tmp_path / "out", RunOptions(progress=False))[0]
    pred = zarr.open_group(str(res.prediction), mode="r")["0"]
    assert pred.shape == (2, 2, 96, 128)  # model grid: 5 nm
    labels = tifffile.imread(res.labels)
    assert labels.shape == img.shape  # back on the input grid


def test_folder_input_runs_every_volume(tiny_package_2d, em_stack, tmp_path):
    import shutil

    folder = tmp_path / "many"
    folder.mkdir()
    shutil.copy(em_stack, folder / "a.tif")
    shutil.copy(em_stack, folder / "b.tif")
    results = run(tiny_package_2d, [str(folder)], tmp_path / "out", RunOptions(postprocess=False, progress=False))
    assert sorted(r.output_dir.name for r in results) == ["a", "b"]


def test_3d_model_on_volume(tiny_package_3d, tmp_path):
    import tifffile

    img = (np.random.default_rng(0).random((10, 40, 40)) * 200).astype(np.uint8)
    path = tmp_path / "vol.tif"
    tifffile.imwrite(path, img, imagej=True, resolution=(1 / 4.0, 1 / 4.0), metadata={"spacing": 40.0, "unit": "nm", "axes": "ZYX"})
    res = run(tiny_package_3d, [str(path)], tmp_path / "out", RunOptions(postprocess=False, progress=False))[0]
    pred = zarr.open_group(str(res.prediction), mode="r")["0"]
    assert pred.shape == (1, 10, 40, 40)
    assert np.isfinite(np.asarray(pred)).all()


def test_volume_statistics_exact_for_integer_and_float_slabs():
    from synapse_bmz.runner.statistics import volume_statistics

    a = np.random.default_rng(0).integers(0, 4000, (9, 31, 17)).astype(np.uint16)
    for arr in (a, a.astype(np.float32), a[:, :, :8].astype(np.uint8)):
        st = volume_statistics(arr, "x", slab_voxels=1000)  # several slabs
        assert st.mean == pytest.approx(arr.mean(dtype=np.float64), rel=1e-9)
        assert st.std == pytest.approx(arr.std(dtype=np.float64), rel=1e-9)
