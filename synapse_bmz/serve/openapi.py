"""The service's OpenAPI schema, committed as ``synapse_bmz/serve/openapi.json``.

``python -m synapse_bmz.serve.openapi --write`` regenerates it; a test checks
that the running server serves exactly the committed schema.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

COMMITTED = Path(__file__).with_name("openapi.json")


def schema(allow_package_upload: bool = True) -> dict:
    """The schema of an app with every optional route (package upload included)."""
    from .app import ServeConfig, create_app

    with tempfile.TemporaryDirectory() as state:
        cfg = ServeConfig(models_dir=Path(state), state_dir=Path(state), tokens={"x" * 16: "x"},
                          allow_package_upload=allow_package_upload)
        app = create_app(cfg)
        out = app.openapi()
        app.state.store.close()
    return out


def dumps(doc: dict) -> str:
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m synapse_bmz.serve.openapi")
    p.add_argument("--write", action="store_true", help=f"write {COMMITTED.name} (default: print)")
    a = p.parse_args(argv)
    text = dumps(schema())
    if a.write:
        COMMITTED.write_text(text)
        print(COMMITTED)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
