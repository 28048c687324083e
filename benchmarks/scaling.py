"""Scaling of the block engine on dask.distributed: 1 vs 2 workers on a volume far larger
than a worker's memory, plus a killed-and-resumed run.

    python benchmarks/scaling.py [--quick] [--out PATH]

A small 3D package (`benchmarks/nets/separable.py`: three 3-tap convolutions;
its measured halo is 2) is built in a temporary folder, so the engine (reading, normalising,
scheduling, writing zarr) rather than the network dominates. The input is an
OME-Zarr volume of float32 texture generated chunk by chunk with dask (never
whole in memory). Both runs read it with `synapse_bmz.api.predict` on a
`LocalCluster` with a worker memory limit, each worker loading the model once
and writing its blocks straight into the output store.

JSON keys: volume_bytes, worker_memory_limit_bytes,
throughput_1_worker_voxels_per_s, throughput_2_workers_voxels_per_s,
parallel_efficiency, peak_rss_per_worker_bytes, identical_to_single_process,
resume_identical (and the shapes and timings behind them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.append(str(REPO / "benchmarks"))  # after the repo: benchmarks/analysis.py must not shadow analysis/

VOXEL_NM = (4.0, 4.0, 4.0)
# per worker: torch + bioimageio + distributed take ~0.6 GiB, a 64 x 256 x 256 tile's
# pipeline (copies, three convolutions, zarr codecs) ~0.6 GiB more (1.25 GiB peak measured)
MEMORY_LIMIT = 3 << 29  # 1.5 GiB


def build_package(folder: Path) -> Path:
    import torch

    from nets.separable import SeparableNet
    from synapse_bmz.packaging import PackageInfo, build_package as build
    from synapse_bmz.zoo.config import SynapseBmzConfig

    torch.manual_seed(0)
    sample = np.random.default_rng(0).normal(100, 20, size=(1, 1, 16, 64, 64)).astype(np.float32)
    cfg = SynapseBmzConfig(task="segmentation", channels=["probability"], voxel_size_nm=list(VOXEL_NM), halo=[1, 1, 1])
    info = PackageInfo(name="scaling_separable", description="Three 3-tap convolutions: engine benchmarks only.")
    return build(SeparableNet(), sample, folder / "scaling_separable", info, cfg, min_shape=[8, 16, 16], step=[1, 1, 1])


def make_volume(path: Path, shape, chunks) -> None:
    """float32 texture, generated and written chunk by chunk (dask, two threads)."""
    import dask
    import dask.array as da

    from synapse_bmz.io import create_zarr_output

    def texture(block_info=None):
        loc = block_info[None]["array-location"]
        shp = block_info[None]["chunk-shape"]
        seed = hash(tuple(s for s, _ in loc)) & 0xFFFFFFFF
        rng = np.random.default_rng(seed)
        z, y, x = np.ogrid[loc[0][0]:loc[0][1], loc[1][0]:loc[1][1], loc[2][0]:loc[2][1]]
        base = 100 + 30 * np.sin(z / 7.0) * np.cos(y / 11.0) + 20 * np.sin(x / 5.0)
        return (base + rng.normal(0, 10, size=shp)).astype(np.float32)

    arr = create_zarr_output(path, shape, "float32", chunks, VOXEL_NM, axes="zyx")
    lazy = da.map_blocks(texture, chunks=tuple(tuple(min(c, n - i) for i in range(0, n, c)) for n, c in zip(shape, chunks)),
                         dtype=np.float32)
    with dask.config.set(scheduler="threads", num_workers=2):
        da.store(lazy, arr, lock=False)


def timed_predict(pkg: Path, volume: Path, out: Path, n_workers: int, tile):
    from synapse_bmz import api
    from synapse_bmz.distributed import make_executor

    session = api.load_session(pkg, device="cpu")
    with make_executor(f"local:{n_workers}", memory_limit=MEMORY_LIMIT) as executor:
        gen = api.predict_events(session, api.FileInput(str(volume)), tile=tile, batch_size=1, out=out,
                                 executor=executor, threads_per_worker=1,
                                 memory_budget_bytes=0.4 * MEMORY_LIMIT)
        t0 = None
        while True:
            try:
                event = next(gen)
            except StopIteration as stop:
                pred = stop.value
                break
            if event.stage == "predict" and t0 is None:
                t0 = time.perf_counter()  # statistics pass done; blocks start
        seconds = time.perf_counter() - t0
        import resource

        rss = executor.client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return pred, seconds, max(rss.values())


def same_store(a: Path, b: Path) -> bool:
    import zarr

    x = zarr.open_array(store=str(a), path="0", mode="r")
    y = zarr.open_array(store=str(b), path="0", mode="r")
    if x.shape != y.shape:
        return False
    step = x.chunks[1]
    return all(np.array_equal(x[:, z:z + step], y[:, z:z + step]) for z in range(0, x.shape[1], step))


def killed_and_resumed(pkg: Path, volume: Path, work: Path, tile, cluster) -> bool:
    """CLI run killed with SIGKILL mid-way, then ``--resume``: equal to an uninterrupted run?"""
    args = [sys.executable, "-m", "synapse_bmz", "run", str(pkg), str(volume), "--tile", ",".join(map(str, tile)),
            "--batch-size", "1", "--quiet"] + (["--cluster", cluster] if cluster else [])
    ref = subprocess.run(args + ["-o", str(work / "ref")], capture_output=True, text=True)
    if ref.returncode:
        raise RuntimeError(ref.stderr)
    out = work / "killed"
    proc = subprocess.Popen(args + ["-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    name = volume.name.replace(".ome.zarr", "").replace(".zarr", "")
    markers = out / f".{name}.partial" / "blocks" / "predict"
    while proc.poll() is None and (not markers.is_dir() or len(list(markers.glob("*.npy"))) < 20):
        time.sleep(0.02)
    if proc.poll() is not None:
        raise RuntimeError(f"the run ended before it could be killed: {proc.stderr.read().decode()[-500:]}")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(2)  # let the orphaned worker processes notice their parent is gone
    res = subprocess.run(args + ["-o", str(out), "--resume"], capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(res.stderr)
    return "resumed:" in res.stdout and same_store(work / "ref" / name / "prediction.ome.zarr",
                                                   out / name / "prediction.ome.zarr")


def _log(msg: str, t0=[time.perf_counter()]) -> None:
    print(f"[{time.perf_counter() - t0[0]:7.1f} s] {msg}", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="32 x 256 x 256 volume, serial resume check (about a minute)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "scaling.json")
    p.add_argument("--work", type=Path, help="scratch folder (default: a temporary one; needs ~3x the volume)")
    a = p.parse_args(argv)
    shape = (32, 256, 256) if a.quick else (768, 2048, 2048)  # 12.9 GB: 8x the worker limit
    tile = (16, 128, 128) if a.quick else (64, 256, 256)
    chunks = (32, 256, 256)
    work = Path(tempfile.mkdtemp(prefix="synapse-bmz-scaling-", dir=a.work))
    try:
        pkg = build_package(work)
        _log("package built")
        volume = work / "volume.ome.zarr"
        t = time.perf_counter()
        make_volume(volume, shape, chunks)
        gen_s = time.perf_counter() - t
        _log(f"volume {shape} written")
        volume_bytes = int(np.prod(shape)) * 4
        voxels = int(np.prod(shape))
        _, s1, rss1 = timed_predict(pkg, volume, work / "pred1.zarr", 1, tile)
        _log(f"1 worker: {s1:.1f} s")
        _, s2, rss2 = timed_predict(pkg, volume, work / "pred2.zarr", 2, tile)
        _log(f"2 workers: {s2:.1f} s")
        identical = same_store(work / "pred1.zarr", work / "pred2.zarr")
        shutil.rmtree(work / "pred1.zarr")
        shutil.rmtree(work / "pred2.zarr")
        small = work / "small.ome.zarr"
        small_shape = (16, 128, 128) if a.quick else (32, 256, 256)
        make_volume(small, small_shape, chunks)
        resume_ok = killed_and_resumed(pkg, small, work, (8, 32, 32), None if a.quick else "local:2")
        _log(f"killed and resumed: identical {resume_ok}")
        result = {
            "volume_shape": list(shape),
            "volume_bytes": volume_bytes,
            "worker_memory_limit_bytes": MEMORY_LIMIT,
            "volume_to_worker_memory": round(volume_bytes / MEMORY_LIMIT, 2),
            "tile": list(tile),
            "throughput_1_worker_voxels_per_s": round(voxels / s1),
            "throughput_2_workers_voxels_per_s": round(voxels / s2),
            "parallel_efficiency": round(s1 / (2 * s2), 3),
            "peak_rss_per_worker_bytes": int(max(rss1, rss2)),
            "identical_to_single_process": bool(identical),
            "resume_identical": bool(resume_ok),
            "peak_rss_within_limit": bool(max(rss1, rss2) <= MEMORY_LIMIT),
            "resume_volume_shape": list(small_shape),
            "resume_cluster": None if a.quick else "local:2",
            "seconds_1_worker": round(s1, 1),
            "seconds_2_workers": round(s2, 1),
            "volume_generation_s": round(gen_s, 1),
            "cpu_cores": os.cpu_count(),
            "quick": a.quick,
            "command": "python benchmarks/scaling.py" + (" --quick" if a.quick else ""),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"volume {result['volume_bytes'] / 1e9:.2f} GB ({result['volume_to_worker_memory']}x the "
          f"{MEMORY_LIMIT / 2**30:.1f} GiB worker limit): 1 worker {result['throughput_1_worker_voxels_per_s'] / 1e6:.2f} "
          f"M voxels/s, 2 workers {result['throughput_2_workers_voxels_per_s'] / 1e6:.2f} M voxels/s, "
          f"efficiency {result['parallel_efficiency']}, peak RSS/worker {result['peak_rss_per_worker_bytes'] / 2**20:.0f} MiB, "
          f"identical {result['identical_to_single_process']}, resume identical {result['resume_identical']}")
    print(f"wrote {a.out}")
    return 0 if identical and resume_ok else 1


if __name__ == "__main__":
    sys.exit(main())
