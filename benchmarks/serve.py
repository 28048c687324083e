"""Load on ``synapse-bmz serve``: jobs/s and latency for small 2D jobs, 1 and 2 workers,
and the service's own overhead per job against the same work through the Python API.

    python benchmarks/serve.py [--quick] [--out PATH]

Inputs are 128 x 128 crops of the bundled EPFL FIB-SEM sample (5 nm) run with
``vesicles_2d``, each job the full ``synapse-bmz run`` of one file (predict,
vesicle recipe, labels tif, table, OME-Zarr prediction). A real server
(``python -m synapse_bmz serve``) runs on loopback with one CPU thread per
worker; four client threads submit all jobs at once (server-side paths under
the data root, so no upload is timed) and wait on the server-sent events.

* ``jobs_per_s_1_worker`` / ``jobs_per_s_2_workers``: jobs / (last finish - first submit).
* ``p50_s`` / ``p95_s``: per-job latency (submit until the client sees it finished),
  2-worker run, which queues most jobs behind others.
* ``overhead_per_job_s``: one job at a time, the median over pairs of (latency of a job
  through the server) - (time of `synapse_bmz.runner.run.run_one` on the same input
  with a warm session in this process, one thread too, run just before it).
* ``lost_jobs``: submitted jobs that did not succeed; ``mixed_outputs``: jobs whose
  labels differ from the in-process run of their own input.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(REPO / "tests"))

MODEL = "vesicles_2d"


def make_inputs(folder: Path, n: int, size: int = 128) -> list:
    import tifffile

    img = tifffile.imread(REPO / "synapse_bmz" / "sample_data" / "epfl_vesicles_crop.tif")
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        y, x = (i * 37) % (img.shape[1] - size + 1), (i * 71) % (img.shape[2] - size + 1)
        p = folder / f"crop{i:03d}.tif"
        tifffile.imwrite(p, img[i % 3, y:y + size, x:x + size], imagej=True, resolution=(0.2, 0.2),
                         metadata={"unit": "nm", "axes": "YX"})
        out.append(p)
    return out


def reference(inputs, out: Path) -> tuple:
    """In-process `run_one` per input (warm session, 1 thread): labels per name, and a timer.

    The timer ``api_time(path) -> s`` runs the same job again in this process, so the
    overhead measurement can alternate API and server jobs (same machine load for both).
    """
    import tifffile
    import torch

    from synapse_bmz import api
    from synapse_bmz.runner.run import RunOptions, run_one

    torch.set_num_threads(1)
    session = api.load_session(MODEL, device="cpu")
    opts = RunOptions(progress=False, overwrite=True)
    run_one(session, str(inputs[0]), out / "warm", opts)  # first call pays one-off costs, as the server's first job does
    labels = {p.stem: tifffile.imread(run_one(session, str(p), out, opts).labels) for p in inputs}

    def api_time(p: Path) -> float:
        t0 = time.perf_counter()
        run_one(session, str(p), out / "timed", opts)
        return time.perf_counter() - t0

    return labels, api_time


def load(server, inputs, n_jobs: int, n_clients: int = 4) -> dict:
    """Submit ``n_jobs`` at once from ``n_clients`` threads; wait for all; latencies and outputs."""
    from serve_helpers import TOKENS

    from synapse_bmz.client import Client

    done, errors = [], []
    lock = threading.Lock()
    t_start = time.perf_counter()

    def worker(k: int) -> None:
        try:
            user = "alice" if k % 2 == 0 else "bob"
            with Client(server.url, TOKENS[user]) as c:
                mine = []
                for i in range(k, n_jobs, n_clients):
                    name = inputs[i % len(inputs)].name
                    mine.append((c.submit(MODEL, path=name), name, time.perf_counter()))
                for job_id, name, t0 in mine:
                    job = c.wait(job_id, timeout_s=600, raise_on_error=False)
                    with lock:
                        done.append((job_id, name, t0, time.perf_counter(), job["state"], user))
        except Exception as e:  # counted as lost below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t_end = max([d[3] for d in done], default=time.perf_counter())
    return {"done": done, "errors": errors, "wall_s": t_end - t_start}


def check_outputs(server, done, labels) -> int:
    import httpx
    import tifffile

    from serve_helpers import headers

    mixed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for job_id, name, _, _, state, user in done:
            if state != "succeeded":
                continue
            r = httpx.get(f"{server.url}/jobs/{job_id}/outputs/vesicles.tif", headers=headers(user), timeout=60)
            f = Path(tmp) / f"{job_id}.tif"
            f.write_bytes(r.content)
            mixed += not np.array_equal(tifffile.imread(f), labels[Path(name).stem])
    return mixed


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "serve.json")
    a = ap.parse_args()
    from serve_helpers import Server

    n_jobs, n_inputs, n_seq = (24, 8, 6) if a.quick else (200, 20, 30)
    root = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    try:
        inputs = make_inputs(root / "inputs", n_inputs)
        labels, api_time = reference(inputs, root / "api")
        result = {"quick": a.quick, "model": MODEL, "input_shape": [128, 128], "jobs": n_jobs,
                  "clients": 4, "threads_per_worker": 1}
        lost = mixed = 0
        for workers in (1, 2):
            srv = Server(root / f"srv{workers}", workers=workers).start()
            for p in inputs:
                shutil.copy(p, srv.data / p.name)
            try:
                # warm every worker's model cache, as a running server has
                load(srv, inputs[:1], 2 * workers)
                if workers == 1:
                    from serve_helpers import TOKENS

                    from synapse_bmz.client import Client

                    seq, api_times = [], []
                    with Client(srv.url, TOKENS["alice"]) as c:
                        for k in range(n_seq):  # alternating: one job in this process, the same job on the server
                            p = inputs[k % len(inputs)]
                            api_times.append(api_time(p))
                            t0 = time.perf_counter()
                            c.wait(c.submit(MODEL, path=p.name), timeout_s=120)
                            seq.append(time.perf_counter() - t0)
                    result["server_sequential_median_s"] = statistics.median(seq)
                    result["api_median_s"] = statistics.median(api_times)
                    result["overhead_per_job_s"] = float(statistics.median(np.subtract(seq, api_times)))
                run = load(srv, inputs, n_jobs)
                ok = sum(d[4] == "succeeded" for d in run["done"])
                lost += n_jobs - ok
                mixed += check_outputs(srv, run["done"], labels)
                key = "jobs_per_s_1_worker" if workers == 1 else "jobs_per_s_2_workers"
                result[key] = ok / run["wall_s"]
                lat = sorted(d[3] - d[2] for d in run["done"])
                if workers == 2:
                    result["p50_s"] = float(np.percentile(lat, 50))
                    result["p95_s"] = float(np.percentile(lat, 95))
                else:
                    result["p50_1_worker_s"] = float(np.percentile(lat, 50))
                    result["p95_1_worker_s"] = float(np.percentile(lat, 95))
                if run["errors"]:
                    result.setdefault("client_errors", []).extend(run["errors"][:5])
            finally:
                srv.stop()
        result["lost_jobs"] = lost
        result["mixed_outputs"] = mixed
        result["overhead_target_s"] = 0.05
        result["overhead_ok"] = bool(result["overhead_per_job_s"] < 0.05)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"jobs/s: 1 worker {result['jobs_per_s_1_worker']:.2f}, 2 workers {result['jobs_per_s_2_workers']:.2f}; "
          f"latency p50 {result['p50_s']:.2f} s, p95 {result['p95_s']:.2f} s (2 workers, {n_jobs} jobs at once); "
          f"overhead per job {1000 * result['overhead_per_job_s']:.1f} ms (server {result['server_sequential_median_s']:.3f} s"
          f" vs API {result['api_median_s']:.3f} s); lost {lost}, mixed {mixed} -> {a.out}")
    return 0 if lost == 0 and mixed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
