"""The job store: one SQLite database (WAL) under the service's state folder.

Every accepted job is a row before its id is returned, so a server restart
loses none: queued rows are picked up again, rows left ``running`` by a dead
worker go back to the queue with ``resume`` set (the runner keeps finished
blocks in the output's partial folder). Workers claim jobs with a single
conditional ``UPDATE`` inside an immediate transaction, so two workers never
run one job. Each process opens its own connection.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, EXPIRED = (
    "queued", "running", "succeeded", "failed", "cancelled", "expired")
TERMINAL = (SUCCEEDED, FAILED, CANCELLED, EXPIRED)
STATES = (QUEUED, RUNNING) + TERMINAL

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    kind TEXT NOT NULL,              -- 'run' or 'test'
    model TEXT NOT NULL,
    input_name TEXT,
    input_path TEXT,
    options TEXT NOT NULL,           -- JSON of JobOptions
    state TEXT NOT NULL,
    stage TEXT,
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    result TEXT,                     -- JSON summary when finished
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    updated REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    worker INTEGER,                  -- pid of the worker running it
    cancel INTEGER NOT NULL DEFAULT 0,
    resume INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, created);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs(owner, created);
"""


@dataclass
class Job:
    """One row of the store (times in seconds since the epoch)."""

    id: str
    owner: str
    kind: str
    model: str
    input_name: Optional[str]
    input_path: Optional[str]
    options: Dict[str, Any]
    state: str
    stage: Optional[str]
    done: int
    total: int
    error: Optional[str]
    result: Optional[Dict[str, Any]]
    created: float
    started: Optional[float]
    finished: Optional[float]
    updated: float
    attempts: int
    worker: Optional[int]
    cancel: bool
    resume: bool

    @property
    def fraction(self) -> float:
        if self.state == SUCCEEDED:
            return 1.0
        return self.done / self.total if self.total else 0.0

    def public(self) -> Dict[str, Any]:
        """What ``GET /jobs/{id}`` shows (no server-side paths)."""
        return {"id": self.id, "kind": self.kind, "model": self.model, "input": self.input_name,
                "state": self.state, "stage": self.stage, "done": self.done, "total": self.total,
                "fraction": round(self.fraction, 4), "error": self.error, "result": self.result,
                "options": self.options, "created": self.created, "started": self.started,
                "finished": self.finished, "attempts": self.attempts}


def _row_to_job(row: sqlite3.Row) -> Job:
    d = dict(row)
    d["options"] = json.loads(d["options"])
    d["result"] = json.loads(d["result"]) if d["result"] else None
    d["cancel"] = bool(d["cancel"])
    d["resume"] = bool(d["resume"])
    return Job(**d)


class JobStore:
    """Jobs in ``STATE/jobs.sqlite``; job files in ``STATE/jobs/<id>/``.

    Parameters
    ----------
    state_dir : Path
        Created if missing.
    """

    def __init__(self, state_dir: Path):
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "jobs").mkdir(exist_ok=True)
        self.path = self.state_dir / "jobs.sqlite"
        self._conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None,
                                     check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at each checkpoint, no torn rows
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.executescript(_SCHEMA)
        import threading

        self._lock = threading.Lock()  # one connection shared by the server's threads

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def job_dir(self, job_id: str) -> Path:
        return self.state_dir / "jobs" / job_id

    # -- writing -------------------------------------------------------------------------
    def add(self, owner: str, kind: str, model: str, options: Dict[str, Any], input_name: Optional[str] = None,
            input_path: Optional[str] = None, job_id: Optional[str] = None) -> Job:
        """Insert a queued job and return it."""
        job_id = job_id or uuid.uuid4().hex
        now = time.time()
        with self._tx() as c:
            c.execute("INSERT INTO jobs (id, owner, kind, model, input_name, input_path, options, state,"
                      " created, updated) VALUES (?,?,?,?,?,?,?,?,?,?)",
                      (job_id, owner, kind, model, input_name, input_path, json.dumps(options), QUEUED, now, now))
        return self.get(job_id)

    def claim(self, worker_pid: int) -> Optional[Job]:
        """Mark the oldest queued job running for ``worker_pid`` and return it (None if none)."""
        with self._lock:  # a plain read first: idle workers poll often and must not take the write lock
            if self._conn.execute("SELECT 1 FROM jobs WHERE state=? AND cancel=0 LIMIT 1", (QUEUED,)).fetchone() is None:
                return None
        now = time.time()
        with self._tx() as c:
            row = c.execute("SELECT id FROM jobs WHERE state=? AND cancel=0 ORDER BY created LIMIT 1",
                            (QUEUED,)).fetchone()
            if row is None:
                return None
            c.execute("UPDATE jobs SET state=?, worker=?, started=?, updated=?, attempts=attempts+1,"
                      " stage=NULL, done=0, total=0 WHERE id=? AND state=?",
                      (RUNNING, worker_pid, now, now, row["id"], QUEUED))
        return self.get(row["id"])

    def progress(self, job_id: str, stage: str, done: int, total: int) -> bool:
        """Record progress; returns whether a cancel was requested."""
        with self._tx() as c:
            c.execute("UPDATE jobs SET stage=?, done=?, total=?, updated=? WHERE id=? AND state=?",
                      (stage, int(done), int(total), time.time(), job_id, RUNNING))
            row = c.execute("SELECT cancel FROM jobs WHERE id=?", (job_id,)).fetchone()
        return bool(row and row["cancel"])

    def finish(self, job_id: str, state: str, error: Optional[str] = None,
               result: Optional[Dict[str, Any]] = None) -> None:
        assert state in TERMINAL
        now = time.time()
        with self._tx() as c:
            c.execute("UPDATE jobs SET state=?, error=?, result=?, finished=?, updated=?, worker=NULL"
                      " WHERE id=?", (state, error, json.dumps(result) if result is not None else None,
                                      now, now, job_id))

    def finish_succeeded(self, job_id: str, result: Dict[str, Any]) -> bool:
        """Mark a job succeeded unless a cancel was requested meanwhile (one transaction).

        Returns False when the cancel request won: the caller removes the files and finishes
        the job as cancelled, so a cancel that reached a running job is never lost."""
        now = time.time()
        with self._tx() as c:
            cur = c.execute("UPDATE jobs SET state=?, error=NULL, result=?, finished=?, updated=?, worker=NULL"
                            " WHERE id=? AND cancel=0", (SUCCEEDED, json.dumps(result), now, now, job_id))
            return cur.rowcount == 1

    def request_cancel(self, job_id: str) -> Optional[str]:
        """Cancel a job: a queued one at once, a running one at its worker's next progress event.

        Returns the state after the request (None for an unknown id).
        """
        now = time.time()
        with self._tx() as c:
            row = c.execute("SELECT state FROM jobs WHERE id=?", (job_id,)).fetchone()
            if row is None:
                return None
            if row["state"] == QUEUED:
                c.execute("UPDATE jobs SET state=?, cancel=1, finished=?, updated=?, error=? WHERE id=?",
                          (CANCELLED, now, now, "cancelled by request", job_id))
                return CANCELLED
            if row["state"] == RUNNING:
                c.execute("UPDATE jobs SET cancel=1, updated=? WHERE id=?", (now, job_id))
            return row["state"]

    def requeue_orphans(self, alive) -> List[str]:
        """Jobs left ``running`` by a worker that is gone go back to the queue, to resume.

        ``alive(pid) -> bool`` tells live workers; their jobs are left alone.
        A job that was asked to cancel is finished as cancelled instead.
        """
        now = time.time()
        moved = []
        with self._tx() as c:
            for row in c.execute("SELECT id, worker, cancel FROM jobs WHERE state=?", (RUNNING,)).fetchall():
                if row["worker"] and alive(int(row["worker"])):
                    continue
                if row["cancel"]:
                    c.execute("UPDATE jobs SET state=?, finished=?, updated=?, error=?, worker=NULL WHERE id=?",
                              (CANCELLED, now, now, "cancelled by request", row["id"]))
                    continue
                c.execute("UPDATE jobs SET state=?, resume=1, worker=NULL, updated=? WHERE id=?",
                          (QUEUED, now, row["id"]))
                moved.append(row["id"])
        return moved

    def expire(self, older_than_s: float, remove: Optional[Callable[[str], None]] = None) -> List[str]:
        """Finished jobs (succeeded/failed/cancelled) older than ``older_than_s``: state ``expired``.

        ``remove(job_id)`` (deleting its files) runs before the state changes, so a job reads
        ``expired`` only once its outputs are gone."""
        cutoff = time.time() - older_than_s
        with self._tx() as c:
            ids = [r["id"] for r in c.execute(
                "SELECT id FROM jobs WHERE state IN (?,?,?) AND finished < ?",
                (SUCCEEDED, FAILED, CANCELLED, cutoff)).fetchall()]
        for i in ids:
            if remove is not None:
                remove(i)
        with self._tx() as c:
            c.executemany("UPDATE jobs SET state=?, updated=? WHERE id=? AND state IN (?,?,?)",
                          [(EXPIRED, time.time(), i, SUCCEEDED, FAILED, CANCELLED) for i in ids])
        return ids

    # -- reading -------------------------------------------------------------------------
    def get(self, job_id: str) -> Optional[Job]:
        with self._lock:
            row = self._conn.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return _row_to_job(row) if row else None

    def list(self, owner: Optional[str] = None, limit: int = 1000) -> List[Job]:
        """The ``limit`` most recently created jobs (of ``owner``, or everyone's), oldest first."""
        where, args = ("WHERE owner=?", (owner,)) if owner is not None else ("", ())
        with self._lock:
            rows = self._conn.execute(f"SELECT * FROM (SELECT * FROM jobs {where} ORDER BY created DESC LIMIT ?)"
                                      " ORDER BY created", (*args, int(limit))).fetchall()
        return [_row_to_job(r) for r in rows]

    def active(self, owner: str) -> int:
        """How many of ``owner``'s jobs are queued or running."""
        with self._lock:
            row = self._conn.execute("SELECT COUNT(*) AS n FROM jobs WHERE owner=? AND state IN (?,?)",
                                     (owner, QUEUED, RUNNING)).fetchone()
        return int(row["n"])
