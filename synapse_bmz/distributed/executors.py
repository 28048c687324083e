"""Run a block job serially or on dask.distributed, with retries and progress.

A *block job* is a small picklable object with

- ``key``: a name unique to this job (its per-worker state is kept under it);
- ``setup() -> state``: the expensive part (load the model), run once per
  process: once for a serial run, once per dask worker (and again on a worker
  that replaces a dead one);
- ``run(state, block_ids) -> result``: process a group of blocks, write them
  straight into the output store, mark them done, return something small;
- ``describe(block_ids) -> str``: the blocks' coordinates, for messages.

Executors yield ``(block_ids, result)`` as groups finish, so callers report
progress and can stop early (closing the generator cancels what is left).
A group that keeps failing is retried ``retries`` times, then reported in a
`BlockFailure` naming its coordinates after every other group has run;
finished blocks are never touched again.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, List, Optional, Protocol, Sequence, Tuple

from ..errors import BlockFailure, Cancelled, OptionError

__all__ = ["BlockJob", "SerialExecutor", "DaskExecutor", "make_executor"]

Group = List[int]


class BlockJob(Protocol):
    key: str

    def setup(self) -> Any: ...

    def run(self, state: Any, block_ids: Sequence[int]) -> Any: ...

    def describe(self, block_ids: Sequence[int]) -> str: ...


def limit_threads(n: int) -> None:
    """Use at most ``n`` compute threads in this process: torch's, and zarr's codec pool.

    A worker meant to use one core must not decompress chunks on all of them,
    or workers oversubscribe the node (and one worker looks faster than one core).
    """
    import torch
    import zarr

    torch.set_num_threads(n)
    zarr.config.set({"threading.max_workers": n})
    try:
        from numcodecs import blosc

        blosc.set_nthreads(n)
    except ImportError:  # pragma: no cover - numcodecs comes with zarr
        pass


def _short(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip()
    return text.splitlines()[0] if text else type(error).__name__


class SerialExecutor:
    """Every group in this process, in order; the debugging and test reference.

    Parameters
    ----------
    retries : int
        Extra attempts for a group that raises.
    """

    name = "serial"
    n_workers = 1

    def __init__(self, retries: int = 1):
        self.retries = retries

    def run(self, job: BlockJob, groups: Sequence[Group]) -> Iterator[Tuple[Group, Any]]:
        state = job.setup()
        failures = []
        for group in groups:
            for attempt in range(self.retries + 1):
                try:
                    result = job.run(state, group)
                except (KeyboardInterrupt, SystemExit, GeneratorExit, Cancelled):
                    raise
                except Exception as error:  # a block's failure is reported with its coordinates
                    if attempt == self.retries:
                        failures.append((job.describe(group), _short(error)))
                    continue
                yield group, result
                break
        if failures:
            raise BlockFailure(job.key.split("-")[0], failures)

    def close(self) -> None:
        pass


class DaskExecutor:
    """Groups as tasks on a dask.distributed cluster.

    Each worker builds the job's state once (the model is loaded once per
    worker, not per block); tasks write their blocks into the output store
    themselves and return only small results, so no array goes through the
    scheduler. A worker that dies is replaced by its nanny and its tasks are
    rescheduled; a task that raises is retried ``retries`` times.

    Parameters
    ----------
    client : distributed.Client
    retries : int
    """

    name = "dask"

    def __init__(self, client, retries: int = 2):
        self.client = client
        self.retries = retries

    @property
    def n_workers(self) -> int:
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def run(self, job: BlockJob, groups: Sequence[Group]) -> Iterator[Tuple[Group, Any]]:
        from distributed import as_completed

        if not groups:
            return
        from ._worker import JobState, run_group

        self.client.register_plugin(JobState(job), name=job.key)
        futures = {}
        for group in groups:
            fut = self.client.submit(run_group, job.key, list(group), key=f"{job.key}-{group[0]}",
                                     retries=self.retries, pure=False)
            futures[fut] = group
        failures = []
        try:
            for fut in as_completed(list(futures)):
                group = futures[fut]
                if fut.status == "finished":
                    yield group, fut.result()
                else:
                    failures.append((job.describe(group), _short(fut.exception())))
        finally:
            pending = [f for f in futures if not f.done()]
            if pending:
                self.client.cancel(pending, force=True)
            try:
                self.client.unregister_worker_plugin(job.key)
            except Exception:  # the cluster may already be gone on interrupt
                pass
        if failures:
            raise BlockFailure(job.key.split("-")[0], failures)

    def close(self) -> None:
        pass


def _parse_cluster(spec: str) -> Tuple[str, Optional[int]]:
    if spec.startswith(("tcp://", "tls://", "ucx://")):
        return "address", None
    kind, _, n = spec.partition(":")
    if kind not in ("local", "slurm"):
        raise OptionError("--cluster", f"{spec!r} is not local[:N], slurm[:N] or tcp://ADDRESS")
    if n and (not n.isdigit() or int(n) < 1):
        raise OptionError("--cluster", f"{spec!r}: the worker count must be a positive integer")
    return kind, int(n) if n else None


@contextmanager
def make_executor(cluster: Optional[str] = None, *, threads_per_worker: int = 1,
                  memory_limit: Optional[str | int] = None, retries: int = 2):
    """The executor for ``--cluster``; closes a cluster it started.

    Parameters
    ----------
    cluster : str, optional
        None: serial in this process. ``local[:N]``: a `distributed.LocalCluster`
        of N single-threaded worker processes (default: one per core).
        ``slurm[:N]``: N SLURM jobs through `dask_jobqueue.SLURMCluster`,
        configured by dask's ``jobqueue.slurm`` settings
        (``~/.config/dask/jobqueue.yaml`` or ``DASK_JOBQUEUE__SLURM__*``).
        ``tcp://ADDRESS``: an existing scheduler.
    threads_per_worker : int
        Torch threads per worker (workers run one block group at a time).
    memory_limit : str or int, optional
        Memory limit per worker (``"2GB"``); dask's default otherwise.
    """
    if cluster is None or cluster == "serial":
        executor = SerialExecutor(retries=retries)
        try:
            yield executor
        finally:
            executor.close()
        return
    kind, n = _parse_cluster(cluster)
    try:
        import distributed
    except ImportError:
        raise OptionError("--cluster", "needs dask.distributed: pip install 'synapse-bmz[dask]'") from None
    import dask

    owned = None
    # a dying worker must be replaced and its tasks retried, not the run aborted
    with dask.config.set({"distributed.scheduler.allowed-failures": max(3, retries + 1),
                          "distributed.worker.daemon": False}):
        if kind == "local":
            import os

            kw = {"memory_limit": memory_limit} if memory_limit is not None else {}
            owned = distributed.LocalCluster(n_workers=n or (os.cpu_count() or 1), threads_per_worker=1,
                                             processes=True, dashboard_address=None, **kw)
            client = distributed.Client(owned)
        elif kind == "slurm":
            try:
                from dask_jobqueue import SLURMCluster
            except ImportError:
                raise OptionError("--cluster", "slurm needs dask-jobqueue: pip install 'synapse-bmz[dask]'") from None
            import shutil

            if shutil.which("sbatch") is None:
                raise OptionError("--cluster", "slurm: sbatch not found; run on a SLURM login node "
                                               "(or start a scheduler there and pass tcp://ADDRESS)")
            kw = {"memory": memory_limit} if memory_limit is not None else {}
            try:
                owned = SLURMCluster(processes=1, cores=threads_per_worker, **kw)
            except ValueError as e:
                raise OptionError("--cluster", f"slurm: {e} (set jobqueue.slurm in ~/.config/dask/jobqueue.yaml)") from None
            owned.scale(jobs=n or 1)
            client = distributed.Client(owned)
            client.wait_for_workers(1)
        else:
            try:
                client = distributed.Client(cluster, timeout="30s")
            except OSError as e:
                raise OptionError("--cluster", f"cannot reach scheduler {cluster}: {e}") from None
        executor = DaskExecutor(client, retries=retries)
        try:
            yield executor
        finally:
            client.close()
            if owned is not None:
                owned.close()
