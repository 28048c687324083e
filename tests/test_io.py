"""Tests for synapse_bmz.io: formats, voxel sizes in nm, laziness, atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import mrcfile
import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from synapse_bmz.errors import InputError, OutputError
from synapse_bmz.io import (
    Volume,
    atomic_output,
    create_zarr_output,
    list_inputs,
    read_volume,
    write_volume,
)

VOXEL = (45.0, 4.6, 4.6)
from synapse_bmz.paths import shared_data_dir  # noqa: E402  ($SYNAPSE_BMZ_DATA, default ../shared/data)

SHARED_DATA = shared_data_dir()
needs_shared = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"shared EM data not found at {SHARED_DATA}"
)


@pytest.fixture
def volume() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.random((5, 12, 17)) * 250).astype(np.uint8)


# --- round trips -----------------------------------------------------------

FORMATS = ["v.mrc", "v.rec", "v.tif", "v.tiff", "v.h5", "v.hdf5:grp/raw", "v.zarr", "v.ome.zarr", "v.npy"]


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint16", "float32"])
def test_round_trip_keeps_data_voxel_size_and_dtype(tmp_path, volume, name, dtype):
    data = volume.astype(dtype)
    written = write_volume(tmp_path / name, data, VOXEL, metadata={"model_id": "m"})
    assert written.exists()
    vol = read_volume(tmp_path / name)
    assert isinstance(vol, Volume)
    assert vol.axes == "zyx"
    assert vol.path == str(tmp_path / name)
    assert vol.data.shape == data.shape and vol.data.ndim == 3
    np.testing.assert_allclose(vol.voxel_size_nm, VOXEL, rtol=1e-6)
    out = vol.to_numpy()
    assert type(out) is np.ndarray
    assert out.dtype == data.dtype
    np.testing.assert_array_equal(out, data)
    np.testing.assert_array_equal(vol.data[1:3, 2:5, -4:], data[1:3, 2:5, -4:])


@pytest.mark.parametrize("name", ["v.tif", "v.h5", "v.zarr", "v.npy"])
@pytest.mark.parametrize("dtype", ["uint32", "int64", "float16", "float64"])
def test_round_trip_preserves_wide_types(tmp_path, volume, name, dtype):
    data = volume.astype(dtype) * 3
    write_volume(tmp_path / name, data, VOXEL)
    vol = read_volume(tmp_path / name)
    out = vol.to_numpy()
    np.testing.assert_array_equal(out, data)
    expected = np.uint32 if (name.endswith(".tif") and dtype == "int64") else np.dtype(dtype)
    if name.endswith(".tif") and dtype == "float16":
        expected = np.float16
    assert out.dtype == expected


@pytest.mark.parametrize("name", ["i.mrc", "i.tif", "i.h5", "i.zarr", "i.npy"])
def test_2d_round_trip_has_yx_axes(tmp_path, volume, name):
    image = volume[0]
    write_volume(tmp_path / name, image, (4.6, 3.2))
    vol = read_volume(tmp_path / name)
    assert vol.axes == "yx"
    np.testing.assert_allclose(vol.voxel_size_nm, (4.6, 3.2), rtol=1e-6)
    np.testing.assert_array_equal(vol.to_numpy(), image)


def test_mrc_labels_are_narrowed_or_float32(tmp_path):
    small = np.arange(60, dtype=np.uint32).reshape(3, 4, 5) * 1000  # fits uint16
    write_volume(tmp_path / "l.mrc", small, VOXEL)
    back = read_volume(tmp_path / "l.mrc").to_numpy()
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, small)
    big = small * 100  # needs float32 (exact below 2**24)
    write_volume(tmp_path / "b.mrc", big, VOXEL)
    back = read_volume(tmp_path / "b.mrc").to_numpy()
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, big)
    with pytest.raises(OutputError, match="zarr"):
        write_volume(tmp_path / "c.mrc", big.astype(np.int64) * 1000, VOXEL)
    assert not (tmp_path / "c.mrc").exists()


# --- MRC header conventions ------------------------------------------------


def test_mrc_voxel_size_is_converted_from_angstrom(tmp_path, volume):
    path = tmp_path / "tomo.mrc"
    data = volume.astype(np.float32)
    with mrcfile.new(path) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = (46.0, 47.0, 450.0)  # x, y, z in Angstrom
    vol = read_volume(path)
    assert vol.voxel_size_nm == pytest.approx((45.0, 4.7, 4.6))  # z, y, x in nm
    np.testing.assert_array_equal(vol.to_numpy(), data)  # no axis flipped


def test_mrc_written_header_is_in_angstrom(tmp_path, volume):
    write_volume(tmp_path / "v.mrc", volume, VOXEL)
    with mrcfile.open(tmp_path / "v.mrc") as mrc:
        assert (mrc.voxel_size.x, mrc.voxel_size.y, mrc.voxel_size.z) == pytest.approx(
            (46.0, 46.0, 450.0)
        )
        assert mrc.header.mode == 0
        np.testing.assert_array_equal(mrc.data.view(np.uint8), volume)  # row order kept


@pytest.mark.parametrize("angstrom", [(0.0, 0.0, 0.0), (1.0, 1.0, 1.0)])
def test_mrc_unset_voxel_size_is_an_error(tmp_path, volume, angstrom):
    path = tmp_path / "unset.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(volume.astype(np.int16))
        mrc.voxel_size = angstrom
    with pytest.raises(InputError, match="--voxel-size") as info:
        read_volume(path)
    assert str(path) in str(info.value)
    vol = read_volume(path, voxel_size_nm=(2, 1, 1))
    assert vol.voxel_size_nm == (2.0, 1.0, 1.0)


def test_mrc_imod_mode0_signed_flag(tmp_path):
    """An IMOD mode-0 file is unsigned unless its flag says signed."""
    data = np.array([[[0, 127, 128, 255]]], dtype=np.uint8)
    write_volume(tmp_path / "u.mrc", data, (1, 1, 1))
    assert read_volume(tmp_path / "u.mrc").dtype == np.uint8
    path = tmp_path / "s.mrc"
    with mrcfile.new(path) as mrc:  # plain MRC2014 mode 0: signed
        mrc.set_data(np.array([[[-5, 3]]], dtype=np.int8))
        mrc.voxel_size = 10.0
    vol = read_volume(path)
    assert vol.dtype == np.int8
    np.testing.assert_array_equal(vol.to_numpy(), [[[-5, 3]]])


def test_mrc_data_is_memory_mapped(tmp_path, volume):
    write_volume(tmp_path / "v.mrc", volume, VOXEL)
    vol = read_volume(tmp_path / "v.mrc")
    assert isinstance(vol.data, np.memmap)
    assert not vol.data.flags.writeable


def test_truncated_mrc_is_input_error(tmp_path, volume):
    path = tmp_path / "cut.mrc"
    write_volume(path, volume.astype(np.float32), VOXEL)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size - 100)
    with pytest.raises(InputError, match="cannot read MRC") as info:
        read_volume(path)
    assert str(info.value).startswith(f"{path}: ")


def test_garbage_files_are_input_errors(tmp_path):
    for name in ("bad.mrc", "bad.tif", "bad.h5", "bad.npy"):
        (tmp_path / name).write_bytes(b"this is not an image" * 10)
        with pytest.raises(InputError, match="cannot read") as info:
            read_volume(tmp_path / name, voxel_size_nm=VOXEL)
        assert str(tmp_path / name) in str(info.value)


def test_truncated_tiff_is_input_error(tmp_path, volume):
    path = tmp_path / "cut.tif"
    write_volume(path, volume, VOXEL)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cannot read TIFF"):
        read_volume(path)


def test_unknown_extension_and_missing_file(tmp_path):
    (tmp_path / "v.xyz").write_bytes(b"0")
    with pytest.raises(InputError, match="unknown file type"):
        read_volume(tmp_path / "v.xyz")
    with pytest.raises(InputError, match="no such file"):
        read_volume(tmp_path / "absent.mrc")


# --- TIFF metadata -----------------------------------------------------------


def test_ome_tiff_physical_size_with_units(tmp_path, volume):
    path = tmp_path / "v.ome.tif"
    tifffile.imwrite(
        path,
        volume,
        ome=True,
        photometric="minisblack",
        metadata={
            "axes": "ZYX",
            "PhysicalSizeX": 0.0046,
            "PhysicalSizeXUnit": "µm",
            "PhysicalSizeY": 4.6,
            "PhysicalSizeYUnit": "nm",
            "PhysicalSizeZ": 450,
            "PhysicalSizeZUnit": "Å",
        },
    )
    vol = read_volume(path)
    assert vol.voxel_size_nm == pytest.approx(VOXEL)
    np.testing.assert_array_equal(vol.to_numpy(), volume)


def test_ome_tiff_default_unit_is_micrometre(tmp_path, volume):
    path = tmp_path / "v.ome.tif"
    tifffile.imwrite(
        path, volume, ome=True, photometric="minisblack",
        metadata={"axes": "ZYX", "PhysicalSizeX": 0.005, "PhysicalSizeY": 0.005, "PhysicalSizeZ": 0.04},
    )
    assert read_volume(path).voxel_size_nm == pytest.approx((40.0, 5.0, 5.0))


def test_imagej_tiff_spacing_unit_and_resolution(tmp_path, volume):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(
        path,
        volume,
        imagej=True,
        resolution=(1 / 0.0046, 1 / 0.005),  # pixels per micron (x, y)
        metadata={"spacing": 0.045, "unit": "micron", "axes": "ZYX"},
    )
    vol = read_volume(path)
    assert vol.voxel_size_nm == pytest.approx((45.0, 5.0, 4.6))
    assert isinstance(vol.data, np.memmap)


def test_written_tiff_is_imagej_with_nm(tmp_path, volume):
    write_volume(tmp_path / "v.tif", volume, VOXEL, metadata={"model_id": "x"})
    with tifffile.TiffFile(tmp_path / "v.tif") as tif:
        assert tif.is_imagej
        meta = tif.imagej_metadata
        assert meta["unit"] == "nm" and meta["spacing"] == pytest.approx(45.0)
        assert json.loads(meta["Info"]) == {"model_id": "x"}
        num, den = tif.pages.first.tags["XResolution"].value
        assert den / num == pytest.approx(4.6, rel=1e-5)


def test_plain_tiff_without_voxel_size_needs_override(tmp_path, volume):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, volume, photometric="minisblack")
    with pytest.raises(InputError, match="--voxel-size") as info:
        read_volume(path)
    assert str(path) in str(info.value)
    vol = read_volume(path, voxel_size_nm=VOXEL)
    assert vol.voxel_size_nm == VOXEL


def test_compressed_tiff_is_read_lazily(tmp_path, volume):
    path = tmp_path / "zlib.tif"
    tifffile.imwrite(path, volume, compression="zlib", photometric="minisblack", tile=(16, 16))
    vol = read_volume(path, voxel_size_nm=VOXEL)
    assert not isinstance(vol.data, np.ndarray)
    np.testing.assert_array_equal(vol.data[2, 3:7], volume[2, 3:7])
    np.testing.assert_array_equal(vol.to_numpy(), volume)


def test_override_replaces_file_voxel_size_and_is_checked(tmp_path, volume):
    write_volume(tmp_path / "v.tif", volume, VOXEL)
    assert read_volume(tmp_path / "v.tif", (50, 5, 5)).voxel_size_nm == (50.0, 5.0, 5.0)
    with pytest.raises(InputError, match="3 axes"):
        read_volume(tmp_path / "v.tif", (5, 5))
    with pytest.raises(InputError, match="> 0"):
        read_volume(tmp_path / "v.tif", (0, 5, 5))


# --- HDF5 ------------------------------------------------------------------


def test_hdf5_keys_and_attribute_conventions(tmp_path, volume):
    path = tmp_path / "c.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("volumes/raw", data=volume).attrs["resolution"] = [40.0, 4.0, 4.0]
        f.create_dataset("ilastik", data=volume).attrs["element_size_um"] = [0.05, 0.005, 0.005]
        f.create_dataset("bare", data=volume)
    assert read_volume(f"{path}:volumes/raw").voxel_size_nm == (40.0, 4.0, 4.0)
    assert read_volume(f"{path}:ilastik").voxel_size_nm == pytest.approx((50.0, 5.0, 5.0))
    assert isinstance(read_volume(f"{path}:bare", VOXEL).data, h5py.Dataset)
    with pytest.raises(InputError, match="--voxel-size"):
        read_volume(f"{path}:bare")
    with pytest.raises(InputError, match="3 datasets"):
        read_volume(path)
    with pytest.raises(InputError, match="no dataset 'nope'"):
        read_volume(f"{path}:nope")


def test_hdf5_write_keeps_other_datasets(tmp_path, volume):
    write_volume(f"{tmp_path}/x.h5:raw", volume, VOXEL)
    write_volume(f"{tmp_path}/x.h5:pred", volume * 2, VOXEL)
    np.testing.assert_array_equal(read_volume(f"{tmp_path}/x.h5:raw").to_numpy(), volume)
    np.testing.assert_array_equal(read_volume(f"{tmp_path}/x.h5:pred").to_numpy(), volume * 2)
    write_volume(tmp_path / "d.h5", volume, VOXEL)
    with h5py.File(tmp_path / "d.h5") as f:
        assert list(f) == ["data"]


# --- zarr / OME-Zarr -----------------------------------------------------------


def _ngff_group(path, version, axes, scales, units):
    fmt = 2 if version == "0.4" else 3
    group = zarr.open_group(str(path), mode="w", zarr_format=fmt)
    shape = tuple({"t": 1, "c": 2, "z": 6, "y": 8, "x": 10}[a] for a in axes)
    datasets = []
    for level, scale in enumerate(scales):
        shp = tuple(max(1, s // 2**level) if a in "yx" else s for s, a in zip(shape, axes))
        arr = group.create_array(str(level), shape=shp, dtype="uint16", chunks=shp)
        arr[...] = np.arange(np.prod(shp), dtype="uint16").reshape(shp)
        datasets.append({"path": str(level), "coordinateTransformations": [{"type": "scale", "scale": scale}]})
    kinds = {"t": "time", "c": "channel"}
    ms = {
        "version": version,
        "axes": [
            {"name": a, "type": kinds.get(a, "space"), **({"unit": units[a]} if a in units else {})}
            for a in axes
        ],
        "datasets": datasets,
    }
    if version == "0.4":
        group.attrs["multiscales"] = [ms]
    else:
        ms.pop("version")
        group.attrs["ome"] = {"version": "0.5", "multiscales": [ms]}
    return group


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_units_and_scale_levels(tmp_path, version):
    path = tmp_path / "img.ome.zarr"
    _ngff_group(
        path, version, "tzyx",
        [[1, 0.045, 0.0046, 0.0046], [1, 0.045, 0.0092, 0.0092]],
        {"z": "micrometer", "y": "micrometer", "x": "micrometer", "t": "second"},
    )
    vol = read_volume(path)
    assert vol.axes == "zyx" and vol.data.shape == (6, 8, 10)
    assert vol.voxel_size_nm == pytest.approx(VOXEL)
    level1 = read_volume(path, scale_level=1)
    assert level1.data.shape == (6, 4, 5)
    assert level1.voxel_size_nm == pytest.approx((45.0, 9.2, 9.2))
    np.testing.assert_array_equal(vol.data[2, 1:3], vol.to_numpy()[2, 1:3])
    with pytest.raises(InputError, match="scale level 5"):
        read_volume(path, scale_level=5)


def test_ome_zarr_without_units_needs_override(tmp_path):
    path = tmp_path / "nounit.zarr"
    _ngff_group(path, "0.4", "zyx", [[40, 4, 4]], {})
    with pytest.raises(InputError, match="--voxel-size"):
        read_volume(path)
    assert read_volume(path, (40, 4, 4)).voxel_size_nm == (40.0, 4.0, 4.0)


def test_ome_zarr_multichannel_is_refused(tmp_path):
    path = tmp_path / "multi.zarr"
    _ngff_group(path, "0.4", "czyx", [[1, 40, 4, 4]], {a: "nanometer" for a in "zyx"})
    with pytest.raises(InputError, match="axis 'c'"):
        read_volume(path)


def test_written_zarr_is_ome_zarr_04(tmp_path, volume):
    write_volume(tmp_path / "o.ome.zarr", volume, VOXEL, metadata={"model_id": "m"})
    group = zarr.open_group(str(tmp_path / "o.ome.zarr"), mode="r")
    attrs = group.attrs.asdict()
    ms = attrs["multiscales"][0]
    assert ms["version"] == "0.4"
    assert [a["unit"] for a in ms["axes"]] == ["nanometer"] * 3
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == list(VOXEL)
    assert attrs["synapse_bmz"]["model_id"] == "m"
    assert isinstance(read_volume(tmp_path / "o.ome.zarr").data, zarr.Array)


def test_create_zarr_output_streams_channels(tmp_path):
    final = tmp_path / "pred.zarr"
    with atomic_output(final) as tmp:
        arr = create_zarr_output(
            tmp, (2, 4, 6, 8), "float32", (1, 2, 6, 8), VOXEL, axes="czyx", attrs={"channels": ["a", "b"]}
        )
        for z in range(0, 4, 2):
            arr[:, z : z + 2] = z + 1.0
    assert not tmp.exists()
    group = zarr.open_group(str(final), mode="r")
    ms = group.attrs["multiscales"][0]
    assert ms["axes"][0] == {"name": "c", "type": "channel"}
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0, *VOXEL]
    assert group.attrs["synapse_bmz"]["channels"] == ["a", "b"]
    np.testing.assert_array_equal(group["0"][:, 3], 3.0)
    with pytest.raises(OutputError, match="axes"):
        create_zarr_output(tmp_path / "bad.zarr", (4, 6), "uint8", None, (4, 4), axes="zyx")
    with pytest.raises(OutputError, match="voxel_size_nm"):
        create_zarr_output(tmp_path / "bad.zarr", (4, 6), "uint8", None, (4, 4, 4), axes="yx")
    with pytest.raises(OutputError, match="already exists"):
        create_zarr_output(final, (4, 6), "uint8", None, (4, 4), axes="yx")


# --- npy ---------------------------------------------------------------------


def test_npy_sidecar_and_missing_voxel_size(tmp_path, volume):
    write_volume(tmp_path / "v.npy", volume, VOXEL)
    side = json.loads((tmp_path / "v.npy.json").read_text())
    assert side["voxel_size_nm"] == list(VOXEL) and side["axes"] == "zyx"
    assert isinstance(read_volume(tmp_path / "v.npy").data, np.memmap)
    np.save(tmp_path / "bare.npy", volume)
    with pytest.raises(InputError, match="--voxel-size"):
        read_volume(tmp_path / "bare.npy")


# --- slices / PNG ------------------------------------------------------------


def test_png_slice_folder_grey_alpha_natural_order(tmp_path, volume):
    folder = tmp_path / "stack"
    folder.mkdir()
    for z in range(volume.shape[0]):
        la = np.stack([volume[z], np.full_like(volume[z], 255)], axis=-1)
        Image.fromarray(la, mode="LA").save(folder / f"s{z * 5}.png")  # s0 s5 s10 s15 s20
    vol = read_volume(folder, voxel_size_nm=VOXEL)
    assert vol.data.shape == volume.shape and vol.axes == "zyx"
    np.testing.assert_array_equal(vol.to_numpy(), volume)  # s10 after s5
    np.testing.assert_array_equal(vol.data[3, 2:4], volume[3, 2:4])
    assert list_inputs(folder) == [folder]
    with pytest.raises(InputError, match="--voxel-size"):
        read_volume(folder)


def test_single_png_is_2d(tmp_path, volume):
    Image.fromarray(volume[0]).save(tmp_path / "one.png")
    vol = read_volume(tmp_path / "one.png", (5, 5))
    assert vol.axes == "yx" and vol.data.shape == volume.shape[1:]


def test_colour_png_is_refused(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    with pytest.raises(InputError, match="colour"):
        read_volume(tmp_path / "rgb.png", (5, 5))
    grey = np.repeat(np.arange(20, dtype=np.uint8).reshape(4, 5, 1), 3, axis=-1)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    np.testing.assert_array_equal(read_volume(tmp_path / "grey.png", (5, 5)).to_numpy(), grey[..., 0])


def test_slice_folder_with_mismatched_shapes(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    Image.fromarray(np.zeros((4, 5), np.uint8)).save(folder / "a0.png")
    Image.fromarray(np.zeros((4, 6), np.uint8)).save(folder / "a1.png")
    with pytest.raises(InputError, match="all slices must match"):
        read_volume(folder, VOXEL)


@needs_shared
def test_shared_drosophila_tif_slices():
    folder = SHARED_DATA / "drosophila_vnc" / "stack1" / "raw"
    with pytest.raises(InputError, match="--voxel-size") as info:
        read_volume(folder)
    assert str(folder) in str(info.value)
    vol = read_volume(folder, voxel_size_nm=(45, 4.6, 4.6))
    assert vol.data.shape == (16, 1024, 1024) and vol.dtype == np.uint8
    np.testing.assert_array_equal(vol.data[3], tifffile.imread(folder / "03.tif"))
    assert list_inputs(folder) == [folder]


@needs_shared
def test_shared_epfl_png_slices_take_channel_0():
    folder = SHARED_DATA / "epfl_hippocampus" / "slices"
    vol = read_volume(folder, voxel_size_nm=(5, 5, 5))
    assert vol.data.shape[1:] == (768, 1024) and vol.dtype == np.uint8
    first = sorted(folder.glob("*.png"))[0]
    np.testing.assert_array_equal(vol.data[0], np.asarray(Image.open(first))[..., 0])


# --- list_inputs ---------------------------------------------------------------


def test_list_inputs_folder_of_volumes(tmp_path, volume):
    for name in ("b10.mrc", "b2.tif", "a.h5", "c.zarr", "d.npy"):
        write_volume(tmp_path / name, volume, VOXEL)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".hidden.mrc").write_bytes(b"")
    names = [p.name for p in list_inputs(tmp_path)]
    assert names == ["a.h5", "b2.tif", "b10.mrc", "c.zarr", "d.npy"]
    assert list_inputs(tmp_path / "c.zarr") == [tmp_path / "c.zarr"]
    assert list_inputs(f"{tmp_path}/a.h5:data") == [Path(f"{tmp_path}/a.h5:data")]
    with pytest.raises(InputError, match="several volumes"):
        read_volume(tmp_path, VOXEL)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no volumes"):
        list_inputs(empty)


def test_tif_folder_of_3d_volumes_is_not_a_stack(tmp_path, volume):
    for name in ("a.tif", "b.tif"):
        write_volume(tmp_path / name, volume, VOXEL)
    assert [p.name for p in list_inputs(tmp_path)] == ["a.tif", "b.tif"]


# --- atomic writes -------------------------------------------------------------


def test_atomic_output_cleans_up_on_error(tmp_path):
    target = tmp_path / "out.mrc"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".out.mrc.tmp-")
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mrc"]
    with pytest.raises(RuntimeError):
        with atomic_output(tmp_path / "tree.zarr") as tmp:
            (tmp / "sub").mkdir(parents=True)
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mrc"]


def test_atomic_output_replaces_files_and_trees(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_output(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    tree = tmp_path / "t.zarr"
    (tree / "stale").mkdir(parents=True)
    with atomic_output(tree) as tmp:
        (tmp / "fresh").mkdir(parents=True)
    assert sorted(p.name for p in tree.iterdir()) == ["fresh"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt", "t.zarr"]


def test_write_volume_failure_leaves_old_output(tmp_path, volume):
    write_volume(tmp_path / "v.mrc", volume, VOXEL)
    with pytest.raises(OutputError):
        write_volume(tmp_path / "v.mrc", np.full((2, 2, 2), 2**40, np.int64), VOXEL)
    np.testing.assert_array_equal(read_volume(tmp_path / "v.mrc").to_numpy(), volume)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mrc"]


def test_unwritable_destination_is_output_error(tmp_path, volume):
    with pytest.raises(OutputError, match="does not exist") as info:
        write_volume(tmp_path / "missing" / "v.tif", volume, VOXEL)
    assert str(tmp_path / "missing" / "v.tif") in str(info.value)
    with pytest.raises(OutputError, match="cannot write this file type"):
        write_volume(tmp_path / "v.xyz", volume, VOXEL)
    if os.geteuid() == 0:
        pytest.skip("root can write to read-only directories")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="not writable"):
            write_volume(locked / "v.tif", volume, VOXEL)
    finally:
        locked.chmod(0o700)


def test_mrc_nonstandard_axis_mapping_is_transposed_to_zyx(tmp_path):
    zyx = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    path = tmp_path / "mapped.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.ascontiguousarray(zyx.transpose(1, 0, 2)))  # sections = y, rows = z
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = 1, 3, 2
        mrc.voxel_size = (10.0, 20.0, 30.0)  # x, y, z in Angstrom
    vol = read_volume(path)
    assert vol.data.shape == (2, 3, 4)
    assert vol.voxel_size_nm == pytest.approx((3.0, 2.0, 1.0))
    np.testing.assert_array_equal(vol.to_numpy(), zyx)


@pytest.mark.parametrize("dtype", ["float16", "int8", "float64", "bool"])
def test_mrc_type_mapping(tmp_path, volume, dtype):
    data = (volume > 100) if dtype == "bool" else (volume.astype(np.int16) - 128).astype(dtype)
    write_volume(tmp_path / "t.mrc", data, VOXEL)
    out = read_volume(tmp_path / "t.mrc").to_numpy()
    expected = {"float64": np.float32, "bool": np.uint8}.get(dtype, np.dtype(dtype))
    assert out.dtype == expected
    np.testing.assert_array_equal(out, data.astype(expected))


def test_slice_stack_reads_only_requested_slices(tmp_path, volume, monkeypatch):
    folder = tmp_path / "stack"
    folder.mkdir()
    for z in range(volume.shape[0]):
        Image.fromarray(volume[z]).save(folder / f"{z:03d}.png")
    vol = read_volume(folder, VOXEL)
    opened = []
    load = vol.data._load
    monkeypatch.setattr(vol.data, "_load", lambda p: opened.append(p.name) or load(p))
    np.testing.assert_array_equal(vol.data[1:3, :, 2], volume[1:3, :, 2])
    assert opened == ["001.png", "002.png"]
