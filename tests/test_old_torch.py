"""The ``pytorch_version`` every RDF declares is true: in a side environment with
that (old) PyTorch, each package's torchscript and state dict + architecture load
and reproduce its test output within the RDF's tolerance.

The side interpreter is named by ``SYNAPSE_BMZ_OLD_TORCH_PYTHON`` (it needs only
torch and numpy); ``make test-old-torch`` creates it (``.side-envs/torch-1.13.1``,
Python 3.10: PyPI's torch 1.13.1 has no Python 3.11 wheel) and runs this file.
Without it these tests skip, saying so.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from synapse_bmz.packaging.metadata import OLDEST_TESTED_TORCH
from synapse_bmz.zoo.registry import available_packages, resolve_package

OLD_PY = os.environ.get("SYNAPSE_BMZ_OLD_TORCH_PYTHON")
if OLD_PY:  # absolute (the script runs in the package folder), but not resolved: a venv's python is a symlink
    OLD_PY = os.path.abspath(OLD_PY)
pytestmark = [
    pytest.mark.side_env,
    pytest.mark.skipif(not OLD_PY, reason=(
        f"SYNAPSE_BMZ_OLD_TORCH_PYTHON is not set: no side environment with torch {OLDEST_TESTED_TORCH} "
        "(make test-old-torch builds one and runs these tests)")),
]

#: runs in the side interpreter: no synapse_bmz, no yaml, no bioimageio; the job comes as JSON in argv[1]
SCRIPT = r"""
import importlib.util, json, sys
import numpy as np, torch
job = json.loads(sys.argv[1])
x = np.load(job["test_input"]).astype(np.float64)
ax = tuple(range(2, x.ndim))
x = torch.from_numpy(((x - x.mean(ax, keepdims=True)) / (x.std(ax, keepdims=True) + job["eps"])).astype(np.float32))
ref = np.load(job["test_output"])
tol = job["tolerance"]

def compare(y):
    bad = np.abs(y - ref) > tol["absolute_tolerance"] + tol["relative_tolerance"] * np.abs(ref)
    return {"max_abs_diff": float(np.abs(y - ref).max()), "mismatched_ppm": float(bad.mean() * 1e6)}

res = {"torch": torch.__version__.split("+")[0]}
ts = torch.jit.load(job["torchscript"], map_location="cpu").eval()
with torch.no_grad():
    res["torchscript"] = compare(ts(x).numpy())
spec = importlib.util.spec_from_file_location("architecture", job["architecture"])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
net = getattr(mod, job["callable"])(**job["kwargs"]).eval()
net.load_state_dict(torch.load(job["state_dict"], map_location="cpu"))
with torch.no_grad():
    res["pytorch_state_dict"] = compare(net(x).numpy())
print(json.dumps(res))
"""


def _run_in_old_torch(rdf_path: Path) -> dict:
    rdf = yaml.safe_load(rdf_path.read_text())
    base = rdf_path.parent
    sd = rdf["weights"]["pytorch_state_dict"]
    zmuv = [p for p in rdf["inputs"][0].get("preprocessing", []) if p["id"] == "zero_mean_unit_variance"]
    job = {
        "test_input": str(base / rdf["inputs"][0]["test_tensor"]["source"]),
        "test_output": str(base / rdf["outputs"][0]["test_tensor"]["source"]),
        "torchscript": str(base / rdf["weights"]["torchscript"]["source"]),
        "state_dict": str(base / sd["source"]),
        "architecture": str(base / sd["architecture"]["source"]),
        "callable": sd["architecture"]["callable"], "kwargs": sd["architecture"].get("kwargs", {}),
        "eps": float(zmuv[0]["kwargs"].get("eps", 1e-6)) if zmuv else 1e-6,
        "tolerance": rdf["config"]["bioimageio"]["reproducibility_tolerance"][0],
    }
    proc = subprocess.run([OLD_PY, "-c", SCRIPT, json.dumps(job)], capture_output=True, text=True,
                          cwd=base, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {"rdf": rdf, **json.loads(proc.stdout.strip().splitlines()[-1])}


def _assert_reproduces(res: dict):
    rdf = res["rdf"]
    assert res["torch"] == OLDEST_TESTED_TORCH, f"side env has torch {res['torch']}, not {OLDEST_TESTED_TORCH}"
    allowed = rdf["config"]["bioimageio"]["reproducibility_tolerance"][0]["mismatched_elements_per_million"]
    for fmt in ("torchscript", "pytorch_state_dict"):
        assert str(rdf["weights"][fmt]["pytorch_version"]) == OLDEST_TESTED_TORCH
        assert res[fmt]["mismatched_ppm"] <= allowed, (fmt, res[fmt])


@pytest.mark.parametrize("name", sorted(available_packages()))
def test_shipped_package_runs_in_the_declared_oldest_torch(name):
    _assert_reproduces(_run_in_old_torch(resolve_package(name)))


def test_built_package_runs_in_the_declared_oldest_torch(tiny_package_3d):
    _assert_reproduces(_run_in_old_torch(tiny_package_3d / "rdf.yaml"))
