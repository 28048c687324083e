"""Worker side of `DaskExecutor`: a plugin keeps each job's state (the loaded model) per worker."""

from __future__ import annotations

import threading

from distributed import WorkerPlugin, get_worker


class JobState(WorkerPlugin):
    """One block job and its lazily built state, on one worker.

    Registered under the job's key on every worker, including workers that
    join later (a nanny's replacement for a dead one); the state is built by
    the first task that needs it and dropped when the plugin is removed.
    """

    def __init__(self, job):
        self.job = job
        self._state = None
        self._lock = threading.Lock()

    def teardown(self, worker=None):
        self._state = None

    def state(self):
        with self._lock:
            if self._state is None:
                self._state = self.job.setup()
            return self._state

    def __getstate__(self):
        return {"job": self.job}

    def __setstate__(self, d):
        self.job = d["job"]
        self._state = None
        self._lock = threading.Lock()


def run_group(key: str, group):
    """Task body: run one group of blocks of job ``key`` with this worker's state."""
    plugin = get_worker().plugins[key]
    return plugin.job.run(plugin.state(), group)
