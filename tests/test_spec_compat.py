"""Our RDFs load with the bioimage.io readers that ilastik (bioimageio.spec 0.5.9.x)
and BioEngine (0.5.10.x) ship, each installed in a side virtual environment.

The environments live in ``.side-envs/`` (git-ignored) and are built on first
use from PyPI; pydantic is held at the versions those releases were made with
(newer pydantic breaks spec 0.5.9's serialisers, which is what ilastik users run).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from synapse_bmz.zoo.registry import available_packages

REPO = Path(__file__).resolve().parents[1]
SIDE_ENVS = {
    "ilastik-spec-0.5.9": ["bioimageio.spec==0.5.9.1", "pydantic<2.12"],
    "bioengine-spec-0.5.10": ["bioimageio.spec==0.5.10.2", "pydantic<2.14"],
}
LOAD = """
import json, sys
from bioimageio.spec import load_description, __version__
d = load_description(sys.argv[1], format_version="discover")
s = d.validation_summary
print(json.dumps({"type": type(d).__name__, "status": s.status, "spec": __version__,
                  "errors": [str(e.msg) for e in s.errors][:3] if hasattr(s, "errors") else []}))
"""


def _side_python(name: str) -> Path:
    env = REPO / ".side-envs" / name
    py = env / "bin" / "python"
    stamp = env / ".installed"
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
        proc = subprocess.run([str(py), "-m", "pip", "install", "--quiet", *SIDE_ENVS[name]],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot install {SIDE_ENVS[name]} from PyPI: {proc.stderr.strip()[-300:]}")
        stamp.write_text("\n".join(SIDE_ENVS[name]))
    return py


def _load_with(name: str, rdf: Path) -> dict:
    proc = subprocess.run([str(_side_python(name)), "-c", LOAD, str(rdf)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.side_env
@pytest.mark.parametrize("env", sorted(SIDE_ENVS))
def test_built_package_loads_in_old_spec_readers(env, tiny_package_2d):
    res = _load_with(env, tiny_package_2d / "rdf.yaml")
    assert res["type"] == "ModelDescr", res
    assert res["status"] in ("valid-format", "passed"), res


@pytest.mark.side_env
@pytest.mark.parametrize("env", sorted(SIDE_ENVS))
@pytest.mark.parametrize("name", sorted(available_packages()))
def test_shipped_packages_load_in_old_spec_readers(env, name):
    rdf = available_packages()[name]
    res = _load_with(env, rdf)
    assert res["type"] == "ModelDescr" and res["status"] in ("valid-format", "passed"), res
