"""An interrupted zarr write leaves nothing behind on stderr: `settle_pending_writes`.

Prevents: SIGTERM's one-line message being followed by asyncio's
"Task was destroyed but it is pending!" for every zarr write the signal
abandoned (seen in CI on ``synapse-bmz run`` stopped by SIGTERM).
The store below takes 0.4 s per chunk, so the signal always lands mid-write.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import asyncio, signal, sys
    import numpy as np, zarr
    from zarr.storage import MemoryStore
    from synapse_bmz.io.zarr_io import settle_pending_writes  # imported first: the writes must still run

    class SlowStore(MemoryStore):
        async def set(self, key, value, byte_range=None):
            await asyncio.sleep(0.4)
            await super().set(key, value)

    class Stop(Exception):
        pass

    def stop(*_):
        raise Stop()

    store = SlowStore()
    a = zarr.create_array(store, shape=(8, 64, 64), chunks=(1, 64, 64), dtype="f4")
    signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, 0.1)
    try:
        a[...] = np.ones((8, 64, 64), np.float32)
    except Stop:
        print("stopped", file=sys.stderr)
    if sys.argv[1] == "settle":
        n = settle_pending_writes()
        written = sum(1 for k in store._store_dict if k.startswith("c/"))
        print(n, written)
""")


def _run(mode):
    return subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, cwd=REPO,
                          timeout=120)


def test_an_abandoned_write_is_reported_by_asyncio_without_settling():
    res = _run("plain")
    assert res.stderr.startswith("stopped")
    assert "Task was destroyed but it is pending" in res.stderr


def test_settling_finishes_the_abandoned_writes_and_keeps_stderr_to_one_line():
    res = _run("settle")
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip().splitlines() == ["stopped"]
    pending, written = map(int, res.stdout.split())
    assert pending >= 1
    assert written == 8  # every chunk the interrupted call had started is complete


def test_settling_without_any_zarr_io_is_a_no_op():
    res = subprocess.run([sys.executable, "-c",
                          "from synapse_bmz.io.zarr_io import settle_pending_writes; print(settle_pending_writes())"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "0" and res.stderr == ""
