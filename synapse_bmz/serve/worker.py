"""A job worker: claims jobs from the store and runs them with `synapse_bmz.runner.run.run_one`.

One worker process per device (``python -m synapse_bmz.serve.worker``,
started by ``synapse-bmz serve``). It keeps the sessions of the models it
ran warm in a bounded LRU, so a second job on a model pays no load time.
A job's outputs are the same folder ``synapse-bmz run`` writes, under
``STATE/jobs/<id>/output/NAME/``; a job that comes back after a crash runs
with ``resume`` and recomputes only the blocks without done markers.
The worker dies with the server (``PR_SET_PDEATHSIG``, and a parent check
between jobs), so a killed server never leaves a worker racing its successor.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import sys
import time
import traceback
from collections import OrderedDict
from pathlib import Path
from typing import Optional

from ..errors import Cancelled, SynapseBmzError
from .catalog import Catalog
from .store import CANCELLED, FAILED, Job, JobStore

#: Progress is written to the store at most this often per job (seconds), and on every stage change.
PROGRESS_INTERVAL_S = 0.1


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no-op elsewhere)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


class SessionCache:
    """Loaded model sessions, least recently used dropped beyond ``size``."""

    def __init__(self, size: int, device: Optional[str]):
        self.size = max(1, int(size))
        self.device = device
        self._items: "OrderedDict[tuple, object]" = OrderedDict()

    def get(self, rdf: Path, weight_format: Optional[str]):
        from .. import api

        key = (str(rdf), weight_format)
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        session = api.load_session(rdf, device=self.device, weight_format=weight_format)
        self._items[key] = session
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return session


class JobCancelled(Cancelled):
    """The job's owner asked to cancel it (``DELETE /jobs/{id}``)."""


def output_root(store: JobStore, job_id: str) -> Path:
    return store.job_dir(job_id) / "output"


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


class Worker:
    """Runs claimed jobs; see the module docstring."""

    def __init__(self, store: JobStore, catalog: Catalog, device: Optional[str] = None, cache_size: int = 4,
                 cluster: Optional[str] = None):
        self.store, self.catalog = store, catalog
        self.cache = SessionCache(cache_size, device)
        self.cluster = cluster
        self._executor_cm = None
        self.executor = None

    def __enter__(self):
        from ..distributed.executors import make_executor

        self._executor_cm = make_executor(self.cluster)
        self.executor = self._executor_cm.__enter__()
        return self

    def __exit__(self, *exc):
        if self._executor_cm is not None:
            self._executor_cm.__exit__(*exc)

    def run_job(self, job: Job) -> None:
        """Run one claimed job to a terminal state (never raises for the job's own errors)."""
        try:
            if job.kind == "test":
                result = self._test(job)
            else:
                result = self._run(job)
        except JobCancelled:
            shutil.rmtree(self.store.job_dir(job.id), ignore_errors=True)
            self.store.finish(job.id, CANCELLED, error="cancelled by request")
            return
        except Cancelled:  # SIGTERM: the server stops; the job stays 'running' and is resumed after restart
            raise
        except SynapseBmzError as e:
            self.store.finish(job.id, FAILED, error=_one_line(e))
            return
        except Exception as e:  # a bug, not the user's input: logged with its traceback, reported in one line
            traceback.print_exc(file=sys.stderr)
            self.store.finish(job.id, FAILED, error=f"internal error: {type(e).__name__}: {_one_line(e)}"[:500])
            return
        if not self.store.finish_succeeded(job.id, result):  # cancelled after its last progress event
            shutil.rmtree(self.store.job_dir(job.id), ignore_errors=True)
            self.store.finish(job.id, CANCELLED, error="cancelled by request")

    def _progress_callback(self, job: Job):
        last = {"t": 0.0, "stage": None}

        def on_event(event) -> None:
            now = time.monotonic()
            if event.stage == last["stage"] and now - last["t"] < PROGRESS_INTERVAL_S and event.done < event.total:
                return
            last.update(t=now, stage=event.stage)
            if self.store.progress(job.id, event.stage, event.done, event.total):
                raise JobCancelled("cancel request")

        return on_event

    def _run(self, job: Job) -> dict:
        from ..runner.predict import check_tile_options
        from ..runner.run import run_one
        from .options import JobOptions

        # outputs name the input as the client did, never by its path on this server
        opts = dataclasses.replace(JobOptions(**job.options).run_options(resume=job.resume),
                                   input_label=job.input_name, model_label=f"{job.model} (served)")
        rdf = self.catalog.rdf(job.model)
        session = self.cache.get(rdf, opts.weight_format)
        check_tile_options(session, opts.tile, opts.halo, opts.batch_size)
        on_event = self._progress_callback(job)
        if self.store.progress(job.id, "load", 0, 1):
            raise JobCancelled("cancel request")
        res = run_one(session, job.input_path, output_root(self.store, job.id), opts,
                      executor=self.executor, on_event=on_event)
        return {"name": res.output_dir.name, "n_objects": res.n_objects, "voxels": res.voxels,
                "predict_s": round(res.predict_s, 4), "total_s": round(res.total_s, 4),
                "blocks_computed": res.blocks_computed, "blocks_total": res.blocks_total,
                "labels": res.labels.name if res.labels else None, "table": res.table.name if res.table else None}

    def _test(self, job: Job) -> dict:
        from ..io.atomic import write_atomic
        from ..packaging.checks import core_test_all_weight_formats

        self.store.progress(job.id, "test", 0, 1)
        statuses = core_test_all_weight_formats(self.catalog.rdf(job.model))
        out = output_root(self.store, job.id) / "test"
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / "test.json", lambda tmp: tmp.write_text(json.dumps(statuses, indent=2)))
        self.store.progress(job.id, "test", 1, 1)
        return {"name": "test", "weight_formats": statuses,
                "passed": all(s == "passed" for s in statuses.values())}


def serve_forever(state_dir: Path, models_dir: Path, device: Optional[str], cache_size: int,
                  cluster: Optional[str], poll_s: float = 0.01, max_jobs: Optional[int] = None) -> int:
    """Claim and run jobs until the parent process dies, SIGTERM, or ``max_jobs`` ran."""
    die_with_parent()
    parent = os.getppid()

    def _term(signum, frame):
        raise Cancelled(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, _term)
    store = JobStore(state_dir)
    ran = 0
    try:
        with Worker(store, Catalog(models_dir), device=device, cache_size=cache_size, cluster=cluster) as worker:
            while True:
                if os.getppid() != parent:
                    return 0
                job = store.claim(os.getpid())
                if job is None:
                    time.sleep(poll_s)
                    continue
                worker.run_job(job)
                ran += 1
                if max_jobs is not None and ran >= max_jobs:
                    return 0
    except (Cancelled, KeyboardInterrupt):
        # a job interrupted here stays 'running' with this pid; the server requeues it to resume
        from ..io.zarr_io import settle_pending_writes

        settle_pending_writes()
        return 0
    finally:
        store.close()
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m synapse_bmz.serve.worker")
    p.add_argument("--state", type=Path, required=True)
    p.add_argument("--models", type=Path, required=True)
    p.add_argument("--device")
    p.add_argument("--cache-size", type=int, default=4)
    p.add_argument("--cluster")
    p.add_argument("--poll", type=float, default=0.01, help="seconds between queue checks when idle")
    a = p.parse_args(argv)
    return serve_forever(a.state, a.models, a.device, a.cache_size, a.cluster, a.poll)


if __name__ == "__main__":
    sys.exit(main())
