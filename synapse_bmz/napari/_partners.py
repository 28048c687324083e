"""napari reader for partner tables: ``partners.csv`` / ``.parquet`` written by ``synapse-bmz run``.

Each partner is an arrow from its post-synaptic site to its pre-synaptic site
(a Vectors layer) plus a Points layer at the post-sites, both in nm world
coordinates (z, y, x), so they overlay the EM volume opened with its voxel size
as scale. Score, neuron ids and the other columns become layer features
(shown in napari's layer info, and usable to colour or filter).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, List, Optional, Union

import numpy as np

PathLike = Union[str, List[str]]
_SUFFIXES = (".csv", ".parquet", ".pq")


def _single(path: PathLike) -> Optional[str]:
    if isinstance(path, (list, tuple)):
        return str(path[0]) if len(path) == 1 else None
    return str(path)


def get_partner_reader(path: PathLike) -> Optional[Callable]:
    """npe2 reader hook: `read_partner_layers` if ``path`` is a table with pre/post site columns, else None."""
    import pandas as pd

    from analysis.partner_evaluation import POST, PRE

    text = _single(path)
    if text is None or Path(text).suffix.lower() not in _SUFFIXES or not Path(text).is_file():
        return None
    try:
        if text.lower().endswith(".csv"):
            columns = pd.read_csv(text, nrows=0).columns
        else:
            import pyarrow.parquet as pq

            columns = pq.read_schema(text).names
    except Exception:  # not a table we can read: another reader may take it
        return None
    return read_partner_layers if set(PRE + POST) <= set(columns) else None


def partner_layer_data(table, name: str = "partners") -> list:
    """Layer-data tuples of a partner table (columns of `analysis.partner_evaluation.read_partner_table`).

    Returns
    -------
    list of two tuples: ``(vectors (N, 2, 3), kwargs, "vectors")`` from post- to
    pre-site, and ``(points (N, 3), kwargs, "points")`` at the post-sites, nm (z, y, x).
    """
    from analysis.partner_evaluation import POST, PRE

    post = table[list(POST)].to_numpy(float).reshape(-1, 3)
    pre = table[list(PRE)].to_numpy(float).reshape(-1, 3)
    vectors = np.stack([post, pre - post], axis=1)
    features = table.drop(columns=list(PRE + POST)).reset_index(drop=True)
    meta = {"synapse_bmz": {"kind": "partners", "n_partners": int(len(table))}}
    return [
        (vectors, {"name": f"{name} (post -> pre)", "features": features, "edge_width": 4.0,
                   "edge_color": "orange", "vector_style": "arrow", "metadata": meta}, "vectors"),
        (post, {"name": f"{name} post-sites", "features": features, "size": 40.0, "face_color": "cyan",
                "metadata": meta}, "points"),
    ]


def read_partner_layers(path: PathLike) -> list:
    """npe2 reader: the partner table at ``path`` as vectors + points layers.

    Raises
    ------
    InputError
        Unreadable table or missing site columns (napari shows the one-line message).
    """
    from analysis.partner_evaluation import read_partner_table

    from ..errors import InputError

    text = _single(path)
    try:
        table = read_partner_table(text)
    except ValueError as e:
        raise InputError(text, str(e).split(": ", 1)[-1]) from None
    stem = Path(text).stem
    parent = Path(text).parent.name
    return partner_layer_data(table, f"{parent}/{stem}" if parent else stem)
