"""``synapse-bmz serve``: uvicorn in this process, job workers as child processes.

The supervisor owns the workers: it requeues the jobs of workers that are
gone (a worker killed mid-job leaves its job ``running``; it goes back to
the queue with ``resume``), restarts dead workers, and expires finished jobs
past the retention time (their files are deleted). One server per state
folder: a second one is refused while the first holds ``STATE/server.lock``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional

from ..errors import OptionError, OutputError
from .app import ServeConfig, create_app
from .store import JobStore


def default_models_dir() -> Path:
    """The packages shipped with synapse-bmz (checkout's ``model_packages/`` or the installed copy)."""
    from ..paths import checkout_model_dir, installed_model_dirs

    for d in [checkout_model_dir(), *installed_model_dirs()]:
        if d is not None and d.is_dir():
            return d
    raise OptionError("--models", "no model packages are installed; give a folder of packages")


def worker_devices(n_workers: Optional[int], device: Optional[str]) -> List[str]:
    """One device per worker: GPUs round-robin when present, else ``cpu``."""
    if device is None or device.startswith("cuda"):
        import torch

        n_gpu = torch.cuda.device_count()
        if n_gpu:
            n = n_workers or n_gpu
            if device and ":" in device:
                return [device] * n
            return [f"cuda:{i % n_gpu}" for i in range(n)]
        if device is not None:
            raise OptionError("--device", f"{device}: CUDA is not available on this machine")
    return [device or "cpu"] * (n_workers or 1)


class Supervisor:
    """Starts, watches and stops the worker processes; sweeps expired jobs."""

    def __init__(self, cfg: ServeConfig, devices: List[str], threads_per_worker: int):
        self.cfg, self.devices, self.threads = cfg, devices, threads_per_worker
        self.procs: List[Optional[subprocess.Popen]] = [None] * len(devices)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _spawn(self, i: int) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "synapse_bmz.serve.worker", "--state", str(self.cfg.state_dir),
               "--models", str(self.cfg.models_dir), "--device", self.devices[i],
               "--cache-size", str(self.cfg.cache_size)]
        if self.cfg.cluster:
            cmd += ["--cluster", self.cfg.cluster]
        env = dict(os.environ)
        # workers share the machine's cores instead of each taking all of them
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(self.threads)
        return subprocess.Popen(cmd, env=env)

    def live_pids(self) -> set:
        return {p.pid for p in self.procs if p is not None and p.poll() is None}

    def start(self) -> None:
        store = JobStore(self.cfg.state_dir)
        # the previous server's workers died with it (PR_SET_PDEATHSIG): every 'running' job is an orphan
        moved = store.requeue_orphans(lambda pid: False)
        if moved:
            print(f"synapse-bmz serve: {len(moved)} interrupted job(s) queued again to resume", file=sys.stderr)
        # folders of submissions the previous server did not finish accepting (killed mid-upload)
        known = {j.id for j in store.list(limit=1 << 62)}
        for folder in (self.cfg.state_dir / "jobs").iterdir():
            if folder.is_dir() and folder.name not in known:
                shutil.rmtree(folder, ignore_errors=True)
        store.close()
        for i in range(len(self.devices)):
            self.procs[i] = self._spawn(i)
        self._thread = threading.Thread(target=self._watch, name="synapse-bmz-supervisor", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        store = JobStore(self.cfg.state_dir)
        last_sweep = 0.0
        try:
            while not self._stop.wait(0.25):
                dead = [i for i, p in enumerate(self.procs) if p is not None and p.poll() is not None]
                if dead:
                    live = self.live_pids()
                    store.requeue_orphans(lambda pid: pid in live)
                    for i in dead:
                        if self._stop.is_set():
                            return
                        self.procs[i] = self._spawn(i)
                if time.monotonic() - last_sweep > self.cfg.sweep_interval_s:
                    last_sweep = time.monotonic()
                    store.expire(self.cfg.retention_s,
                                 remove=lambda job_id: shutil.rmtree(store.job_dir(job_id), ignore_errors=True))
        finally:
            store.close()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        for p in self.procs:
            if p is not None and p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + timeout_s
        for p in self.procs:
            if p is None:
                continue
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self._thread is not None:
            self._thread.join(timeout=2.0)


def _lock_state(state_dir: Path):
    import fcntl

    state_dir.mkdir(parents=True, exist_ok=True)
    f = open(state_dir / "server.lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise OutputError(f"{state_dir}: another synapse-bmz server uses this state folder") from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


def build_config(models: Optional[Path], state: Path, token_file: Optional[Path], data_root: Optional[Path],
                 max_upload_mb: float, retention_h: float, allow_package_upload: bool, workers: Optional[int],
                 device: Optional[str], cluster: Optional[str], cache_size: int,
                 max_queued_per_user: int = 1000) -> tuple:
    """Check the options (one-line `OptionError` naming the option) and return (config, token file)."""
    from .security import default_token_file, read_tokens

    models_dir = Path(models).resolve() if models else default_models_dir()
    if not models_dir.is_dir():
        raise OptionError("--models", f"{models}: not a folder")
    if data_root is not None and not Path(data_root).is_dir():
        raise OptionError("--data-root", f"{data_root}: not a folder")
    if workers is not None and workers < 1:
        raise OptionError("--workers", f"{workers}: must be at least 1")
    if max_upload_mb <= 0:
        raise OptionError("--max-upload-mb", f"{max_upload_mb}: must be positive")
    if retention_h <= 0:
        raise OptionError("--retention-hours", f"{retention_h}: must be positive")
    if max_queued_per_user < 1:
        raise OptionError("--max-queued-jobs", f"{max_queued_per_user}: must be at least 1")
    if cache_size < 1:
        raise OptionError("--model-cache", f"{cache_size}: must be at least 1")
    state = Path(state).resolve()
    try:
        state.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OptionError("--state", f"{state}: cannot create: {e.strerror or e}") from None
    token_file = Path(token_file) if token_file else default_token_file(state)
    cfg = ServeConfig(models_dir=models_dir, state_dir=state, tokens=read_tokens(token_file),
                      data_root=Path(data_root).resolve() if data_root else None,
                      max_upload_bytes=int(max_upload_mb * (1 << 20)), retention_s=retention_h * 3600.0,
                      allow_package_upload=allow_package_upload, workers=workers or 1, device=device,
                      cluster=cluster, cache_size=cache_size, max_queued_per_user=max_queued_per_user,
                      sweep_interval_s=min(60.0, max(0.5, retention_h * 3600.0 / 4)))
    return cfg, token_file


def serve(cfg: ServeConfig, host: str, port: int, token_file: Path, threads_per_worker: Optional[int] = None) -> int:
    """Run the service until SIGTERM/SIGINT (uvicorn's graceful shutdown stops the workers)."""
    import uvicorn

    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            raise OptionError("--port", f"{host}:{port}: cannot listen: {e.strerror or e}") from None
    lock = _lock_state(cfg.state_dir)
    devices = worker_devices(cfg.workers, cfg.device)
    threads = threads_per_worker or max(1, (os.cpu_count() or 1) // len(devices))
    supervisor = Supervisor(cfg, devices, threads)
    app = create_app(cfg, supervisor)
    print(f"synapse-bmz serve: http://{host}:{port} ({len(devices)} worker(s) on {', '.join(sorted(set(devices)))}; "
          f"models {cfg.models_dir}; state {cfg.state_dir}; tokens {token_file})", file=sys.stderr, flush=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        lock.close()
    return 0
