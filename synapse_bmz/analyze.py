"""``synapse-bmz analyze``: read segmentations from files and call `analysis.report.analyze`."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from .errors import InputError, OutputError


def _name_and_path(item: str):
    name, sep, path = item.partition("=")
    if sep and name and "/" not in name:
        return name, path
    from .runner.run import output_dir_for

    return output_dir_for(Path("."), item).name, item


def analyze_files(segmentations: Sequence[str], out_dir: Path, *, raw: Optional[str] = None,
                  voxel_size_nm: Optional[Sequence[float]] = None, pool_rules: Optional[Path] = None,
                  xlsx: bool = False) -> Dict[str, Path]:
    """Read label images (any format `synapse_bmz.io` reads) and write tables and the report.

    Parameters
    ----------
    segmentations : sequence of str
        ``NAME=PATH`` or ``PATH`` (name = file name without extension). Exactly
        one must be named ``vesicles``.
    out_dir : Path
    raw : str, optional
        Raw image of the same shape.
    voxel_size_nm : sequence of float, optional
        Overrides the files' voxel size, (z, y, x) or (y, x).

    Returns
    -------
    dict of str to Path
        The files written.
    """
    from analysis._checks import is_label_dtype
    from analysis.report import analyze

    from .io import read_volume

    out_dir = Path(out_dir)
    _check_output_folder(out_dir)
    volumes = {}
    for item in segmentations:
        name, path = _name_and_path(item)
        volumes[name] = read_volume(path, voxel_size_nm)
    if "vesicles" not in volumes:
        raise InputError(segmentations[0], "no segmentation named 'vesicles' (name one with vesicles=PATH)")
    ves = volumes.pop("vesicles")
    if not is_label_dtype(ves.dtype):
        raise InputError(ves.path, f"not a label image: non-integer dtype {ves.dtype} (vesicles need integer "
                                   "instance labels, 0 = background, e.g. the labels `synapse-bmz run` writes)")
    if pool_rules is not None:
        _check_pool_rules(Path(pool_rules), set(volumes))
    for name, v in volumes.items():
        if v.shape != ves.shape:
            raise InputError(v.path, f"shape {v.shape} differs from the vesicles' {ves.shape}")
    raw_arr = None
    if raw is not None:
        rv = read_volume(raw, voxel_size_nm or ves.voxel_size_nm)
        if rv.shape != ves.shape:
            raise InputError(rv.path, f"shape {rv.shape} differs from the vesicles' {ves.shape}")
        raw_arr = rv.to_numpy()
    return analyze(ves.to_numpy().astype(np.int64), {k: v.to_numpy() for k, v in volumes.items()},
                   ves.voxel_size_nm, raw_arr, out_dir, pool_rules=pool_rules, xlsx=xlsx)


def _check_output_folder(out_dir: Path) -> None:
    """``-o`` must be a folder or creatable as one: no file at it or above it."""
    for p in (out_dir, *out_dir.parents):
        if p.exists():
            if not p.is_dir():
                what = "is an existing file" if p == out_dir else f"lies under {p}, which is a file"
                raise OutputError(f"{out_dir}: -o/--output {what}, not a folder")
            return


def _check_pool_rules(path: Path, structures: set) -> None:
    """Parse ``--pool-rules`` up front so a bad file fails before any measuring."""
    from analysis.pools import load_pool_rules

    if not path.is_file():
        raise InputError(path, "--pool-rules file not found" if not path.exists() else "--pool-rules is not a file")
    try:
        rules = load_pool_rules(path)
    except ValueError as e:
        problem = str(e)
        if problem.startswith(f"{path}: "):
            problem = problem[len(f"{path}: "):]
        raise InputError(path, f"--pool-rules: {problem}") from None
    missing = sorted(rules.structures - structures)
    if missing:
        given = ", ".join(sorted(structures)) or "none besides vesicles"
        raise InputError(path, f"--pool-rules: pools need distances to {missing}, but no segmentation has that name "
                               f"(given: {given}; name one with NAME=PATH)")
