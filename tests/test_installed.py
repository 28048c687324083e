"""Installed, not only checked out: the shipped model packages are package data.

The fast tests check that the packages are found through the import system
(``synapse_bmz_models``) rather than the checkout layout, that
``$SYNAPSE_BMZ_MODEL_DIR`` still comes first, and that pyproject.toml ships
every Python package and every file of every model package. The slow test
builds a wheel, installs it into a fresh virtual environment and runs the
installed ``synapse-bmz`` from a folder outside the checkout.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from synapse_bmz import paths
from synapse_bmz.zoo import registry

REPO = Path(__file__).resolve().parents[1]
MODEL_PACKAGES = REPO / "model_packages"
SHIPPED = sorted(p.name for p in MODEL_PACKAGES.iterdir() if (p / "rdf.yaml").is_file()) if MODEL_PACKAGES.is_dir() else []
NINE = ["active_zone", "compartments", "mitochondria_2d", "mitochondria_3d", "ribbon",
        "synapse_cleft", "vesicles_2d", "vesicles_3d", "vesicles_cryo"]


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_nine_packages_in_the_checkout():
    assert set(NINE) <= set(SHIPPED)


def test_model_dirs_found_through_the_import_system(monkeypatch):
    """With the checkout fallback switched off, the install still finds every package."""
    if not paths.installed_model_dirs():
        pytest.skip("this environment's install predates the synapse_bmz_models mapping "
                    "(rerun `make install`, i.e. `pip install -e .`)")
    monkeypatch.delenv("SYNAPSE_BMZ_MODEL_DIR", raising=False)
    monkeypatch.setattr(paths, "checkout_model_dir", lambda: None)
    found = registry.available_packages()
    assert set(NINE) <= set(found)
    installed = [d.resolve() for d in paths.installed_model_dirs()]
    assert all(rdf.parent.parent.resolve() in installed for rdf in found.values())


def test_model_dir_env_takes_priority(tmp_path, monkeypatch):
    shutil.copytree(MODEL_PACKAGES / "vesicles_2d", tmp_path / "vesicles_2d",
                    ignore=shutil.ignore_patterns("weights.*"))
    monkeypatch.setenv("SYNAPSE_BMZ_MODEL_DIR", os.pathsep.join([str(tmp_path / "missing"), str(tmp_path)]))
    dirs = registry.model_dirs()
    assert dirs[0] == tmp_path
    assert len({d.resolve() for d in dirs}) == len(dirs)
    assert registry.available_packages()["vesicles_2d"] == tmp_path / "vesicles_2d" / "rdf.yaml"
    assert set(NINE) <= set(registry.available_packages())


def test_shared_data_dir_honours_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNAPSE_BMZ_DATA", str(tmp_path))
    assert paths.shared_data_dir() == tmp_path
    monkeypatch.delenv("SYNAPSE_BMZ_DATA")
    assert paths.shared_data_dir() == REPO.parent / "shared" / "data"


def test_pyproject_lists_every_python_package():
    """`packages` is an explicit list (so model_packages/ can be mapped); a new
    sub-package that is not listed would be missing from wheels."""
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(REPO).parts)
               for top in ("synapse_bmz", "postprocessing", "analysis")
               for p in (REPO / top).rglob("__init__.py") if "__pycache__" not in p.parts}
    missing = sorted(on_disk - listed)
    assert not missing, f"add {missing} to [tool.setuptools] packages in pyproject.toml"
    assert {"synapse_bmz_models", "synapse_bmz.sample_data"} <= listed
    assert _pyproject()["tool"]["setuptools"]["package-dir"] == {"synapse_bmz_models": "model_packages"}


def test_package_data_globs_cover_every_model_file():
    """Every file of every model package matches a package-data glob, so wheels ship whole packages."""
    globs = _pyproject()["tool"]["setuptools"]["package-data"]["synapse_bmz_models"]
    left_out = [str(f.relative_to(MODEL_PACKAGES)) for name in SHIPPED for f in (MODEL_PACKAGES / name).iterdir()
                if f.is_file() and not any(fnmatch.fnmatch(f"{name}/{f.name}", g) for g in globs)]
    assert not left_out, f"not shipped in wheels (add a glob to package-data): {left_out}"


# --- the real thing: wheel -> fresh venv -> CLI outside the checkout ------------------

def _source_copy(dest: Path) -> Path:
    """The working tree (tracked and untracked, not ignored files) copied to ``dest``,
    so the build writes nothing into the checkout."""
    try:
        files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                               capture_output=True, check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        files = None
    if files is None:
        shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "runs", ".side-envs", "demo_output"))
        return dest
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "SYNAPSE_BMZ_MODEL_DIR", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(extra)
    return env


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow
def test_installed_wheel_finds_packages_outside_the_checkout(tmp_path):
    src = _source_copy(tmp_path / "src")
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheels, src],
         env=_clean_env(), timeout=600)
    wheel = next(wheels.glob("synapse_bmz-*.whl"))

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True, clear=True)
    py = env_dir / "bin" / "python"
    constraints = REPO / "constraints.txt"
    # torch first, pinned like `make install` (a local wheel where one is provided)
    _run([py, "-m", "pip", "install", "-q", "-c", constraints, "torch==2.13.0"], env=_clean_env(), timeout=1200)
    _run([py, "-m", "pip", "install", "-q", "-c", constraints, wheel], env=_clean_env(), timeout=1200)

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = _clean_env(SYNAPSE_BMZ_CACHE=str(tmp_path / "cache"))
    where = _run([py, "-c", "import synapse_bmz, synapse_bmz.paths as p; print(synapse_bmz.__file__); "
                  "print(p.checkout_root()); print(p.installed_model_dirs()[0])"], cwd=work, env=env).stdout.split("\n")
    assert str(env_dir) in where[0] and where[1] == "None" and str(env_dir) in where[2], where

    cli = env_dir / "bin" / "synapse-bmz"
    listing = _run([cli, "models"], cwd=work, env=env).stdout
    for name in NINE:
        assert f"\n{name} " in listing, listing
    assert "INVALID" not in listing, listing

    sample = _run([py, "-c", "import importlib.resources as r; "
                   "print(r.files('synapse_bmz') / 'sample_data' / 'epfl_vesicles_crop.tif')"], cwd=work, env=env).stdout.strip()
    assert str(env_dir) in sample
    out = _run([cli, "run", "vesicles_2d", sample, "-o", "tmp", "--quiet"], cwd=work, env=env, timeout=600)
    assert "objects" in out.stdout, out.stdout
    assert (work / "tmp" / "epfl_vesicles_crop" / "vesicles.tif").is_file()
