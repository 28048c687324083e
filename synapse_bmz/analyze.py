"""``synapse-bmz analyze``: read segmentations from files and call `analysis.report.analyze`."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from .errors import InputError


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
    from analysis.report import analyze

    from .io import read_volume

    volumes = {}
    for item in segmentations:
        name, path = _name_and_path(item)
        volumes[name] = read_volume(path, voxel_size_nm)
    if "vesicles" not in volumes:
        raise InputError(segmentations[0], "no segmentation named 'vesicles' (name one with vesicles=PATH)")
    ves = volumes.pop("vesicles")
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
                   ves.voxel_size_nm, raw_arr, Path(out_dir), pool_rules=pool_rules, xlsx=xlsx)
