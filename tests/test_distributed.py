"""The block engine on a real dask.distributed LocalCluster.

Prevents: cluster runs that differ from the single-process result, instance
ids that collide across blocks, and a run that dies (or silently loses
blocks) when a worker process is killed.
"""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tifffile
import zarr
from conftest import write_em_stack

distributed = pytest.importorskip("distributed")

from synapse_bmz import api  # noqa: E402
from synapse_bmz.distributed import DaskExecutor, DoneMarkers, make_executor  # noqa: E402


@pytest.fixture
def stack_file(tmp_path):
    return write_em_stack(tmp_path / "vol.tif", (8, 160, 160), seed=3, sigma_px=2)


def test_cli_cluster_run_is_bit_identical_to_serial(tmp_path):
    """vesicles_2d on the bundled EPFL crop, tiled, postprocessed block-wise: serial vs 2 workers."""
    crop = os.path.join(os.path.dirname(os.path.dirname(__file__)), "synapse_bmz", "sample_data",
                        "epfl_vesicles_crop.tif")
    args = ["--tile", "256,256", "--quiet", "--max-in-memory-voxels", "0"]
    outs = {}
    for name, extra in [("serial", []), ("cluster", ["--cluster", "local:2"])]:
        res = subprocess.run([sys.executable, "-m", "synapse_bmz", "run", "vesicles_2d", crop,
                              "-o", str(tmp_path / name), *args, *extra], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        folder = tmp_path / name / "epfl_vesicles_crop"
        outs[name] = (zarr.open_array(store=str(folder / "prediction.ome.zarr"), path="0", mode="r")[...],
                      tifffile.imread(folder / "vesicles.tif"))
    np.testing.assert_array_equal(outs["serial"][0], outs["cluster"][0])
    np.testing.assert_array_equal(outs["serial"][1], outs["cluster"][1])
    assert outs["cluster"][1].max() > 100  # hundreds of vesicles, with the same ids


def test_killed_worker_is_replaced_and_its_blocks_retried(tiny_package_2d, stack_file, tmp_path):
    session = api.load_session(tiny_package_2d, device="cpu")
    kw = dict(tile=(48, 48), batch_size=1)
    reference = np.asarray(api.predict(session, api.FileInput(str(stack_file)), **kw))
    markers = DoneMarkers(tmp_path / "blocks", "predict")
    with make_executor("local:2") as executor:
        assert isinstance(executor, DaskExecutor)
        client = executor.client
        killed = []

        def kill_one_worker():
            while len(markers.done()) < 40:
                time.sleep(0.02)
            pid = next(iter(client.run(os.getpid).values()))
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

        killer = threading.Thread(target=kill_one_worker, daemon=True)
        killer.start()
        pred = api.predict(session, api.FileInput(str(stack_file)), out=tmp_path / "pred.zarr",
                           markers=markers, executor=executor, threads_per_worker=1, **kw)
        killer.join(timeout=5)
        assert killed, "the run finished before a worker could be killed"
        pids = set(client.run(os.getpid).values())
        assert killed[0] not in pids  # the nanny started a new worker process
    assert len(markers.done()) == pred.attrs["blocks_total"]
    np.testing.assert_array_equal(np.asarray(pred), reference)


def test_blockwise_segmentation_on_the_cluster_equals_serial(tiny_package_2d, stack_file, tmp_path):
    session = api.load_session(tiny_package_2d, device="cpu")
    pred = api.predict(session, api.FileInput(str(stack_file)), out=tmp_path / "pred.zarr")
    serial = api.segment(session, pred, in_memory_voxels=0, block_shape=(2, 64, 64), table=False)
    out = zarr.create_array(store=str(tmp_path / "labels.zarr"), shape=pred.shape[1:], chunks=(2, 64, 64),
                            dtype="uint32", fill_value=0)
    with make_executor("local:2") as executor:
        onc = api.segment(session, pred, in_memory_voxels=0, block_shape=(2, 64, 64), table=False, out=out,
                          work=tmp_path, executor=executor)
    np.testing.assert_array_equal(np.asarray(serial.labels), np.asarray(onc.labels[...]))
