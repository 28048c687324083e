"""The container's HEALTHCHECK: ``python -m synapse_bmz.serve.health``.

When the container's main process is ``synapse-bmz serve``, asks its
``/health`` on the port it was started with (exit 0 on HTTP 200, 1 otherwise);
any other command (a batch ``run``) is healthy while it runs, so one image
serves both uses. Standard library only: the check must stay cheap.
"""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path
from typing import List, Optional


def serve_port(argv: List[str]) -> Optional[int]:
    """The port of a ``synapse-bmz serve`` command line, or None for other commands."""
    if "serve" not in argv:
        return None
    port = 8000
    for i, arg in enumerate(argv):
        if arg == "--port" and i + 1 < len(argv):
            port = int(argv[i + 1])
        elif arg.startswith("--port="):
            port = int(arg.split("=", 1)[1])
    return port


def main(argv=None) -> int:
    try:
        cmdline = Path("/proc/1/cmdline").read_bytes().split(b"\0")
    except OSError:
        cmdline = []
    port = serve_port([c.decode(errors="replace") for c in cmdline if c])
    if port is None:
        return 0
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as r:
            return 0 if r.status == 200 else 1
    except OSError as e:
        print(f"synapse-bmz health: http://127.0.0.1:{port}/health: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
