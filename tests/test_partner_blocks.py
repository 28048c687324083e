"""Block-wise partner extraction on the block engine: serial and on a real dask LocalCluster, with
done markers that carry each block's partners so a resumed run reads them back."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from postprocessing.partners import PARTNER_COLUMNS
from synapse_bmz.distributed import DoneMarkers
from synapse_bmz.partners import partners, partners_events
from synapse_bmz.runner.blockjobs import partner_payload, partner_table

VOX = (40.0, 4.0, 4.0)
PARAMS = {"max_extent_nm": 200.0}


def _prediction_and_neurons():
    """Synful-like output: 14 post-synaptic blobs with vectors; neurons as vertical stripes."""
    rng = np.random.default_rng(11)
    pred = np.zeros((4, 6, 96, 128), np.float32)
    for _ in range(14):
        z, y, x = rng.integers(1, 5), rng.integers(6, 90), rng.integers(6, 122)
        pred[0, z, y - 2:y + 3, x - 2:x + 3] = 0.9
        pred[1:, z, y - 2:y + 3, x - 2:x + 3] = rng.uniform(-100, 100, 3)[:, None, None]
    neurons = np.broadcast_to((np.arange(128) // 8 + 1).astype(np.uint32), (6, 96, 128)).copy()
    return pred, neurons


def _drain(gen):
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            return stop.value, events


def test_payload_round_trip_keeps_missing_and_large_ids():
    table = pd.DataFrame({c: np.arange(3, dtype=float) + k for k, c in enumerate(PARTNER_COLUMNS[:8])})
    table["pre_id"] = pd.array([2 ** 62 + 1, None, 0], dtype="Int64")
    table["post_id"] = pd.array([None, 7, 2 ** 63 - 1], dtype="Int64")
    back = partner_table(partner_payload(table))
    pd.testing.assert_frame_equal(back, table[list(PARTNER_COLUMNS)])
    assert partner_table(partner_payload(table.iloc[:0])).empty


def test_markers_hold_each_blocks_partners_and_resume_reads_them(tmp_path):
    pred, neurons = _prediction_and_neurons()
    whole = partners(None, pred, voxel_size_nm=VOX, recipe="synful_partners", params=PARAMS, neurons=neurons)
    assert len(whole) >= 8 and whole.pre_id.notna().all()
    kw = dict(voxel_size_nm=VOX, recipe="synful_partners", params=PARAMS, neurons=neurons, in_memory_voxels=0,
              block_shape=(3, 32, 48), markers_root=tmp_path / "blocks")
    first, events = _drain(partners_events(None, pred, **kw))
    pd.testing.assert_frame_equal(first, whole)
    total = events[-1].total
    markers = DoneMarkers(tmp_path / "blocks", "partners")
    assert total > 4 and markers.done() == set(range(total))
    # the union of the markers' tables is the whole table
    joined = pd.concat([partner_table(p) for p in markers.payloads().values()], ignore_index=True)
    assert len(joined) == len(whole)
    # a killed run: half the markers are gone; the resumed run computes only those blocks
    gone = sorted(markers.done())[::2]
    for b in gone:
        (markers.folder / f"{b}.npy").unlink()
    resumed, events = _drain(partners_events(None, pred, resume=True, **kw))
    assert events[0].done == total - len(gone) and events[-1].done == total
    pd.testing.assert_frame_equal(resumed, whole)
    # the finished blocks' partners are read from their markers, not recomputed
    owner = max(markers.payloads().items(), key=lambda kv: len(kv[1]))[0]
    np.save(markers.folder / f"{owner}.npy", partner_payload(whole.iloc[:0]))
    emptied, _ = _drain(partners_events(None, pred, resume=True, **kw))
    assert len(emptied) < len(whole)
    fresh, _ = _drain(partners_events(None, pred, resume=False, **kw))
    pd.testing.assert_frame_equal(fresh, whole)


def test_dask_cluster_gives_the_whole_volume_table(tmp_path):
    from synapse_bmz.distributed import make_executor

    pred, neurons = _prediction_and_neurons()
    params = {**PARAMS, "split_by_neuron": True}
    whole = partners(None, pred, voxel_size_nm=VOX, recipe="synful_partners", params=params, neurons=neurons)
    with make_executor("local:2") as executor:
        table, events = _drain(partners_events(
            None, pred, voxel_size_nm=VOX, recipe="synful_partners", params=params, neurons=neurons,
            in_memory_voxels=0, block_shape=(3, 32, 48), executor=executor, work=tmp_path,
            markers_root=tmp_path / "blocks"))
    pd.testing.assert_frame_equal(table, whole)
    assert (tmp_path / "neurons.zarr").is_dir()  # workers read the segmentation from the work folder
    assert DoneMarkers(tmp_path / "blocks", "partners").done() == set(range(events[-1].total))


@pytest.mark.parametrize("model", ["synaptic_polarity"])
def test_run_on_a_cluster_block_wise_equals_the_serial_run(tmp_path, model):
    """`synapse-bmz run --cluster local:2 --max-in-memory-voxels 0`: partners.csv equals the in-memory run's."""
    from synapse_bmz import simulate as sim

    sim.write_simulation(sim.simulate_sstem_neuropil(seed=7, shape=(12, 192, 192)), tmp_path / "sim")
    raw, seg = str(tmp_path / "sim" / "raw.tif"), str(tmp_path / "sim" / "neurons.tif")
    base = [sys.executable, "-m", "synapse_bmz", "run", model, raw, "--quiet", "--neurons", seg]
    serial = subprocess.run(base + ["-o", str(tmp_path / "serial")], capture_output=True, text=True, timeout=600)
    assert serial.returncode == 0, serial.stderr
    dask = subprocess.run(base + ["-o", str(tmp_path / "dask"), "--cluster", "local:2",
                                  "--max-in-memory-voxels", "0"], capture_output=True, text=True, timeout=600)
    assert dask.returncode == 0, dask.stderr
    a = pd.read_csv(tmp_path / "serial" / "raw" / "partners.csv")
    b = pd.read_csv(tmp_path / "dask" / "raw" / "partners.csv")
    assert len(a) > 0
    pd.testing.assert_frame_equal(a, b)
    prov = json.loads((tmp_path / "dask" / "raw" / "provenance.json").read_text())
    assert prov["executor"] == "dask" and prov["postprocessing"]["blockwise"] is True
