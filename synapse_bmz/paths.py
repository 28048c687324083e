"""Where synapse-bmz finds things that are not Python code.

Two places, each with one environment variable that takes priority:

* the model packages shipped with the distribution (``$SYNAPSE_BMZ_MODEL_DIR``
  adds folders before them; see `synapse_bmz.zoo.registry.model_dirs`);
* the shared EM data that tests, benchmarks and the example training configs
  read (``$SYNAPSE_BMZ_DATA``; default ``../shared/data`` beside the checkout).

Importing this module imports nothing heavy.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import List, Optional

#: Import name under which the top-level ``model_packages/`` folder is
#: installed as package data (``[tool.setuptools.package-dir]`` in pyproject.toml).
MODELS_PACKAGE = "synapse_bmz_models"
DATA_ENV = "SYNAPSE_BMZ_DATA"


def checkout_root() -> Optional[Path]:
    """The source checkout this module was imported from, or None when installed.

    A checkout is recognised by ``pyproject.toml`` beside the ``synapse_bmz``
    folder; an installed wheel has ``site-packages`` there instead.
    """
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() and (root / "model_packages").is_dir() else None


def shared_data_dir() -> Path:
    """Folder of the shared EM data (``drosophila_vnc/``, ``epfl_hippocampus/``).

    ``$SYNAPSE_BMZ_DATA`` when set; otherwise ``shared/data`` beside the
    checkout (``<repo>/../shared/data``). The folder may not exist: callers
    check, and tests skip with the path in their reason.
    """
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    root = checkout_root() or Path(__file__).resolve().parents[1]
    return root.parent / "shared" / "data"


def installed_model_dirs() -> List[Path]:
    """Folders holding the model packages shipped with the distribution.

    Found through the import system (``synapse_bmz_models``, a namespace
    package mapped onto ``model_packages/``), so a wheel installed anywhere and
    an editable install (``pip install -e .``) both answer without looking at
    the checkout layout. The module is located, never imported.
    """
    try:
        spec = importlib.util.find_spec(MODELS_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.submodule_search_locations is None:
        return []
    dirs: List[Path] = []
    for loc in spec.submodule_search_locations:
        p = Path(loc)
        if p.is_dir() and p.resolve() not in [d.resolve() for d in dirs]:
            dirs.append(p)
    return dirs


def checkout_model_dir() -> Optional[Path]:
    """``<repo>/model_packages`` when running from a checkout whose install is
    older than the package-data mapping (or not installed at all), else None."""
    root = checkout_root()
    return root / "model_packages" if root is not None else None
