"""Resume and faults of ``synapse-bmz run``, for real: SIGKILL and SIGTERM of the run, folder runs.

Prevents: a killed run starting again from zero, leaving hidden temp folders
that pile up, or a resumed run producing a different result.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from conftest import write_em_stack


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "synapse_bmz", *map(str, args)], capture_output=True,
                          text=True, **kw)


@pytest.fixture
def big_stack(tmp_path) -> Path:
    """12 x 192 x 192 uint8 stack at 5 nm: with 48 px tiles, 432 single-tile blocks."""
    return write_em_stack(tmp_path / "big.tif", (12, 192, 192), seed=2, sigma_px=2)


RUN = ["--tile", "48,48", "--batch-size", "1", "--quiet", "--max-in-memory-voxels", "0"]


def _start(pkg, image, out):
    return subprocess.Popen([sys.executable, "-m", "synapse_bmz", "run", str(pkg), str(image), "-o", str(out), *RUN],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_markers(partial: Path, n: int, proc, timeout=120):
    t0 = time.time()
    folder = partial / "blocks" / "predict"
    while time.time() - t0 < timeout:
        if folder.is_dir() and len(list(folder.glob("*.npy"))) >= n:
            return
        if proc.poll() is not None:
            pytest.fail(f"run ended before {n} blocks: {proc.stderr.read()}")
        time.sleep(0.05)
    pytest.fail("run made no progress")


def _outputs(folder: Path):
    pred = zarr.open_array(store=str(folder / "prediction.ome.zarr"), path="0", mode="r")[...]
    return pred, tifffile.imread(folder / "vesicles.tif")


def test_sigkill_then_resume_recomputes_only_unfinished_blocks(tiny_package_2d, big_stack, tmp_path):
    ref = _cli("run", tiny_package_2d, big_stack, "-o", tmp_path / "ref", *RUN)
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "out"
    proc = _start(tiny_package_2d, big_stack, out)
    partial = out / ".big.partial"
    _wait_for_markers(partial, 60, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "big").exists() and partial.is_dir()
    done_before = len(list((partial / "blocks" / "predict").glob("*.npy")))
    res = _cli("run", tiny_package_2d, big_stack, "-o", out, *RUN, "--resume")
    assert res.returncode == 0, res.stderr
    computed, total = map(int, res.stdout.split("resumed: ")[1].split(" blocks")[0].split(" of "))
    assert total == 432 and computed == total - done_before
    for a, b in zip(_outputs(tmp_path / "ref" / "big"), _outputs(out / "big")):
        np.testing.assert_array_equal(a, b)
    assert sorted(p.name for p in out.iterdir()) == ["big"]  # no hidden leftovers
    assert not (out / "big" / "blocks").exists()


def test_sigterm_stops_cleanly_and_a_later_run_cleans_up(tiny_package_2d, big_stack, tmp_path):
    out = tmp_path / "out"
    proc = _start(tiny_package_2d, big_stack, out)
    _wait_for_markers(out / ".big.partial", 20, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert "stopped by SIGTERM" in err and "--resume" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    # a new run without --resume starts afresh and leaves no hidden folder behind
    res = _cli("run", tiny_package_2d, big_stack, "-o", out, *RUN)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["big"]


def test_resume_with_changed_options_is_refused(tiny_package_2d, big_stack, tmp_path):
    out = tmp_path / "out"
    proc = _start(tiny_package_2d, big_stack, out)
    _wait_for_markers(out / ".big.partial", 5, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    res = _cli("run", tiny_package_2d, big_stack, "-o", out, "--tile", "64,64", "--batch-size", "1", "--quiet",
               "--resume")
    assert res.returncode == 2 and "--resume" in res.stderr and "tile" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_folder_run_reports_every_failure_and_skip_existing_continues(tiny_package_2d, em_stack, tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    os.replace(em_stack, folder / "a.tif")
    tifffile.imwrite(folder / "b.tif", tifffile.imread(folder / "a.tif"), imagej=True,
                     resolution=(1 / 5.0, 1 / 5.0), metadata={"spacing": 5.0, "unit": "nm", "axes": "ZYX"})
    (folder / "broken.tif").write_bytes(b"not a tiff at all")
    np.save(folder / "flat.npy", np.zeros((2, 64, 64), np.float32))  # constant: refused, with a reason
    out = tmp_path / "out"
    res = _cli("run", tiny_package_2d, folder, "-o", out, "--voxel-size", "5,5,5", "--quiet")
    assert res.returncode == 2
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 2 and all(" -> " in line for line in lines)
    assert "2 of 4 inputs failed" in res.stderr
    assert "broken.tif" in res.stderr and "flat.npy" in res.stderr and "Traceback" not in res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a", "b"]
    again = _cli("run", tiny_package_2d, folder, "-o", out, "--voxel-size", "5,5,5", "--quiet", "--skip-existing")
    assert again.stdout.count("exists, skipped") == 2 and again.returncode == 2


@pytest.mark.parametrize("args, option", [
    (["--batch-size", "0"], "--batch-size"),
    (["--tile", "0,0"], "--tile"),
    (["--tile=-64,64"], "--tile"),
    (["--device", "cuda"], "--device"),
    (["--cluster", "local:0"], "--cluster"),
    (["--cluster", "nowhere"], "--cluster"),
    (["--cluster", "slurm:2"], "--cluster"),  # no sbatch on this machine
    (["--halo", "49,49"], "--halo"),  # off the network's pooling grid
])
def test_bad_run_options_are_one_line_errors(tiny_package_2d, em_stack, tmp_path, args, option):
    import torch

    if option == "--device" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    res = _cli("run", tiny_package_2d, em_stack, "-o", tmp_path / "out", "--quiet", *args)
    assert res.returncode == 2, res.stderr
    assert option in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "stack").exists()
