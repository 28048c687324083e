"""A real ``synapse-bmz serve`` on loopback for the service tests and the load benchmark."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional

import httpx

REPO = Path(__file__).resolve().parents[1]
#: The packages a test server serves (linked from model_packages/, so uploads never land in the checkout).
SERVED = ("vesicles_2d", "mitochondria_2d", "synapse_cleft", "ribbon")
TOKENS = {"alice": "alice-token-0123456789abcdef", "bob": "bob-token-0123456789abcdefgh"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_tokens(path: Path) -> Path:
    path.write_text("".join(f"{u} {t}\n" for u, t in TOKENS.items()))
    return path


class Server:
    """``python -m synapse_bmz serve`` in a subprocess; ``url``, ``kill()``, ``stop()``."""

    def __init__(self, root: Path, extra: Optional[List[str]] = None, workers: int = 1, port: Optional[int] = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.state = self.root / "state"
        self.data = self.root / "data"
        self.data.mkdir(exist_ok=True)
        self.models = self.root / "models"
        if not self.models.exists():
            self.models.mkdir()
            for name in SERVED:
                os.symlink(REPO / "model_packages" / name, self.models / name)
        self.token_file = write_tokens(self.root / "tokens")
        self.extra = list(extra or [])
        self.workers = workers
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: Optional[subprocess.Popen] = None
        self.log = self.root / "server.log"

    def start(self, timeout_s: float = 60.0) -> "Server":
        cmd = [sys.executable, "-m", "synapse_bmz", "serve", "--port", str(self.port), "--state", str(self.state),
               "--token-file", str(self.token_file), "--models", str(self.models), "--data-root", str(self.data), "--workers", str(self.workers),
               "--threads-per-worker", "1", *self.extra]
        self._log = open(self.log, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not answer within {timeout_s} s: {self.log.read_text()[-2000:]}")

    def worker_pids(self) -> List[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def kill(self) -> None:
        """SIGKILL the server process (its workers die with it)."""
        workers = self.worker_pids()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if getattr(self, "_log", None):
            self._log.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def headers(user: str = "alice") -> dict:
    return {"Authorization": f"Bearer {TOKENS[user]}"}
