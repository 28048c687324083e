"""The CLI: models table, and one-line errors with non-zero exit and no partial output."""

import subprocess
import sys

import numpy as np
import pytest

from synapse_bmz.cli import main


def _run(capsys, *args):
    code = main([str(a) for a in args])
    err = capsys.readouterr().err.strip()
    return code, err


def _assert_clean_failure(code, err, name, out_root):
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert name in err
    leftovers = [p for p in out_root.rglob("*")] if out_root.exists() else []
    assert leftovers == [], leftovers


def test_unknown_model(capsys, em_stack, tmp_path):
    code, err = _run(capsys, "run", "no_such_model", em_stack, "-o", tmp_path / "out")
    _assert_clean_failure(code, err, "no_such_model", tmp_path / "out")
    assert "unknown model" in err


def test_truncated_file(capsys, tiny_package_2d, tmp_path):
    import mrcfile

    path = tmp_path / "cut.mrc"
    with mrcfile.new(path) as m:
        m.set_data(np.zeros((8, 64, 64), np.float32))
        m.voxel_size = 50.0
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    code, err = _run(capsys, "run", tiny_package_2d, path, "-o", tmp_path / "out")
    _assert_clean_failure(code, err, "cut.mrc", tmp_path / "out")


def test_wrong_dimensions_for_model(capsys, tiny_package_3d, tmp_path):
    import tifffile

    path = tmp_path / "flat.tif"
    tifffile.imwrite(path, (np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8),
                     imagej=True, resolution=(0.25, 0.25), metadata={"unit": "nm"})
    code, err = _run(capsys, "run", tiny_package_3d, path, "-o", tmp_path / "out")
    _assert_clean_failure(code, err, "flat.tif", tmp_path / "out")
    assert "3D" in err


@pytest.mark.parametrize("bad,words", [(np.nan, "NaN"), (np.inf, "infinite")])
def test_nan_or_inf_voxels(capsys, tiny_package_2d, tmp_path, bad, words):
    img = np.random.default_rng(0).random((2, 64, 64)).astype(np.float32)
    img[1, 5, 7] = bad
    path = tmp_path / "bad.npy"
    np.save(path, img)
    code, err = _run(capsys, "run", tiny_package_2d, path, "-o", tmp_path / "out", "--voxel-size", "5,5,5")
    _assert_clean_failure(code, err, "bad.npy", tmp_path / "out")
    assert words in err


def test_constant_image(capsys, tiny_package_2d, tmp_path):
    path = tmp_path / "flat.npy"
    np.save(path, np.full((2, 64, 64), 7, np.uint8))
    code, err = _run(capsys, "run", tiny_package_2d, path, "-o", tmp_path / "out", "--voxel-size", "5,5,5")
    _assert_clean_failure(code, err, "flat.npy", tmp_path / "out")
    assert "constant" in err


def test_missing_voxel_size(capsys, tiny_package_2d, tmp_path):
    path = tmp_path / "novs.npy"
    np.save(path, np.random.default_rng(0).random((2, 64, 64)).astype(np.float32))
    code, err = _run(capsys, "run", tiny_package_2d, path, "-o", tmp_path / "out")
    _assert_clean_failure(code, err, "novs.npy", tmp_path / "out")
    assert "--voxel-size" in err


def test_output_not_writable(capsys, tiny_package_2d, em_stack, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code, err = _run(capsys, "run", tiny_package_2d, em_stack, "-o", blocker / "out")
    assert code == 2 and len(err.splitlines()) == 1 and "a_file" in err


def test_existing_output_needs_overwrite(capsys, tiny_package_2d, em_stack, tmp_path):
    assert _run(capsys, "run", tiny_package_2d, em_stack, "-o", tmp_path / "out", "--no-postprocess", "--quiet")[0] == 0
    code, err = _run(capsys, "run", tiny_package_2d, em_stack, "-o", tmp_path / "out", "--no-postprocess")
    assert code == 2 and "--overwrite" in err


def test_cli_subprocess_exit_code_and_help():
    ok = subprocess.run([sys.executable, "-m", "synapse_bmz", "--help"], capture_output=True, text=True)
    assert ok.returncode == 0 and "run" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "synapse_bmz", "run", "nope", "x.tif", "-o", "/tmp/never"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_models_table_lists_shipped_packages(capsys):
    from synapse_bmz.zoo.registry import available_packages

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "name" in out and "voxel_size_nm" in out
    for name in available_packages():
        assert name in out
    # the default test-time augmentation per package; a feature extractor's 192 channels stay one short cell
    row = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert " flips " in row["vesicles_2d"] and " none " in row["synapse_cleft"]
    assert "feature_000 ... feature_191 (192 channels)" in row["vgg3d_features"]
    assert max(len(line) for line in out.splitlines()) < 200


def test_simulate_command_writes_volumes_with_voxel_size(tmp_path, capsys):
    from synapse_bmz.io import read_volume

    assert main(["simulate", "tomogram", "-o", str(tmp_path / "sim"), "--shape", "16,64,64", "--seed", "2"]) == 0
    raw = read_volume(tmp_path / "sim" / "raw.tif")
    ves = read_volume(tmp_path / "sim" / "vesicles.tif")
    assert raw.shape == ves.shape == (16, 64, 64)
    assert raw.voxel_size_nm == ves.voxel_size_nm
    assert (tmp_path / "sim" / "vesicles.csv").exists()
