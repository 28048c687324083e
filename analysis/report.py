"""One call from segmentations to tables and a self-contained HTML report.

``analyze`` is the Python API behind ``synapse-bmz analyze``. It measures
every vesicle (morphology, distance to every structure with end points,
nearest-neighbour distance, pool) and every structure object, writes the
tables as csv and parquet (xlsx on request) and an HTML report whose plotly
figures work offline (plotly.js is embedded inline, no CDN).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.offline
from jinja2 import Template

from . import _figures
from ._atomic import write_atomic
from ._checks import labels_2d_or_3d, same_shape, voxel_size_for
from .distances import distances_to_structure, nearest_neighbor_distances
from .morphology import object_table
from .pools import PoolRules, assign_pools, load_pool_rules

_TEMPLATE = Template("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Synapse analysis report</title>
<script type="text/javascript">{{ plotly_js }}</script>
<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}.figure{margin:1em 0}</style>
</head><body>
<h1>Synapse analysis report</h1>
<p>{{ n_vesicles }} vesicles; structures: {{ structures }}; volume shape {{ shape }};
voxel size {{ voxel_size }} nm ({{ axes }}).</p>
<h2>Pools</h2>{{ pool_table }}
{% for title, div in figures %}<div class="figure"><h2>{{ title }}</h2>{{ div }}</div>
{% endfor %}</body></html>
""")


def _structure_labels(mask: np.ndarray) -> np.ndarray:
    """Integer labels of a structure: label images kept, masks become label 1."""
    return mask.astype(np.uint8) if mask.dtype == bool else mask


def vesicle_table(
    vesicles: np.ndarray,
    structures: Mapping[str, np.ndarray],
    voxel_size_nm: Sequence[float],
    raw: np.ndarray | None = None,
    rules: PoolRules | None = None,
) -> pd.DataFrame:
    """Morphology, distances (with end points), nearest neighbour and pool per vesicle.

    Columns: those of ``morphology.object_table``, then per structure
    ``distance_to_<name>_nm`` and ``<name>_point_{z,y,x}_nm`` (nearest
    structure voxel), ``nearest_neighbor_label``, ``nearest_neighbor_distance_nm``
    and ``pool``. Distances follow ``analysis.distances``.
    """
    table = object_table(vesicles, voxel_size_nm, raw)
    for name, mask in structures.items():
        d = distances_to_structure(vesicles, mask, voxel_size_nm)
        points = {c: c.replace("structure_point", f"{name}_point") for c in d.columns if c.startswith("structure_point")}
        d = d[["label", "distance_nm", *points]].rename(columns={"distance_nm": f"distance_to_{name}_nm", **points})
        table = table.merge(d, on="label", how="left")
    nn = nearest_neighbor_distances(vesicles, voxel_size_nm)[["label", "neighbor_label", "distance_nm"]]
    nn = nn.rename(columns={"neighbor_label": "nearest_neighbor_label", "distance_nm": "nearest_neighbor_distance_nm"})
    table = table.merge(nn, on="label", how="left")
    if rules is not None:
        table["pool"] = assign_pools(table, rules).to_numpy()
    return table


def structure_table(
    structures: Mapping[str, np.ndarray], voxel_size_nm: Sequence[float], raw: np.ndarray | None = None
) -> pd.DataFrame:
    """``morphology.object_table`` of every structure object, with a ``structure`` column first."""
    parts = []
    for name, mask in structures.items():
        t = object_table(_structure_labels(mask), voxel_size_nm, raw, surface_area=False)
        t.insert(0, "structure", name)
        parts.append(t)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"structure": [], "label": []})


def _report_html(vesicles, structures, spacing, raw, table) -> str:
    figures = []
    for name in structures:
        figures.append((f"Distance to {name}", _figures.histogram(table[f"distance_to_{name}_nm"], f"Vesicle distance to {name}", "distance (nm)")))
    figures.append(("Nearest-neighbour distance", _figures.histogram(table["nearest_neighbor_distance_nm"], "Vesicle nearest-neighbour distance", "distance (nm)")))
    if "pool" in table:
        figures.append(("Pool counts", _figures.pool_counts(table["pool"])))
    figures.append(("Radius distribution", _figures.histogram(table["radius_nm"], "Vesicle radius", "radius (nm)")))
    if vesicles.ndim == 3:
        per_slice = np.count_nonzero(vesicles.reshape(vesicles.shape[0], -1), axis=1)
        z = int(np.argmax(per_slice)) if per_slice.any() else vesicles.shape[0] // 2
        view = _figures.slice_view(None if raw is None else raw[z], vesicles[z], {k: v[z] for k, v in structures.items()}, spacing[1:], f"Slice z = {z}")
    else:
        view = _figures.slice_view(raw, vesicles, dict(structures), spacing, "Image")
    figures.append(("Slice view with overlays", view))
    divs = [(t, f.to_html(full_html=False, include_plotlyjs=False)) for t, f in figures]
    pool_table = table["pool"].value_counts().rename_axis("pool").to_frame("vesicles").to_html() if "pool" in table else "<p>No pool rules.</p>"
    return _TEMPLATE.render(
        plotly_js=plotly.offline.get_plotlyjs(), n_vesicles=len(table),
        structures=html.escape(", ".join(structures) or "none"), shape=vesicles.shape,
        voxel_size=tuple(float(s) for s in spacing), axes="z, y, x" if vesicles.ndim == 3 else "y, x",
        pool_table=pool_table, figures=divs,
    )


def analyze(
    vesicles: np.ndarray,
    structures: dict[str, np.ndarray],
    voxel_size_nm: Sequence[float],
    raw: np.ndarray | None,
    out_dir: Path,
    pool_rules: Path | None = None,
    xlsx: bool = False,
) -> dict[str, Path]:
    """Measure vesicles and structures; write tables and an HTML report.

    Parameters
    ----------
    vesicles : (Z, Y, X) or (Y, X) ndarray of int
        Vesicle instance labels, 0 is background.
    structures : dict of str to ndarray
        Structure segmentations of the same shape (bool masks or label
        images), keyed by name: ``active_zone``, ``membrane``, ``ribbon``,
        ``psd`` are the names the default pool rules use.
    voxel_size_nm : tuple of float
        (z, y, x) or (y, x) voxel size in nm.
    raw : ndarray, optional
        Raw image of the same shape, for intensity statistics and the slice view.
    out_dir : path
        Output folder, created if needed. Each file is written under a
        temporary name and renamed into place.
    pool_rules : path, optional
        YAML pool rules (``analysis.pools``); replaces the defaults. With the
        defaults, pools whose structures were not given are left out.
    xlsx : bool
        Also write ``vesicles.xlsx`` and ``structures.xlsx`` (needs openpyxl).

    Returns
    -------
    dict of str to Path
        ``vesicles_csv``, ``vesicles_parquet``, ``structures_csv``,
        ``structures_parquet``, ``report_html`` and, with ``xlsx``,
        ``vesicles_xlsx``, ``structures_xlsx``.
    """
    vesicles = labels_2d_or_3d(vesicles, "vesicles")
    spacing = voxel_size_for(voxel_size_nm, vesicles.ndim)
    for name, mask in structures.items():
        same_shape(np.asarray(mask), f"structures[{name!r}]", vesicles, "vesicles")
    if raw is not None:
        same_shape(np.asarray(raw), "raw", vesicles, "vesicles")
    if xlsx:
        try:
            import openpyxl  # noqa: F401
        except ImportError as err:
            raise ImportError("xlsx=True needs the `openpyxl` package (pip install openpyxl)") from err
    rules = load_pool_rules(pool_rules, structures)
    if pool_rules is None:
        rules = PoolRules(tuple(p for p in rules.pools if set(p.max_distance_nm) <= set(structures)), rules.default_pool)
    vtable = vesicle_table(vesicles, structures, spacing, raw, rules)
    stable = structure_table(structures, spacing, raw)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for key, table in (("vesicles", vtable), ("structures", stable)):
        paths[f"{key}_csv"] = write_atomic(out_dir / f"{key}.csv", lambda p, t=table: t.to_csv(p, index=False))
        paths[f"{key}_parquet"] = write_atomic(out_dir / f"{key}.parquet", lambda p, t=table: t.to_parquet(p, index=False))
        if xlsx:
            paths[f"{key}_xlsx"] = write_atomic(out_dir / f"{key}.xlsx", lambda p, t=table: t.to_excel(p, index=False, engine="openpyxl"))
    report = _report_html(vesicles, structures, spacing, raw, vtable)
    paths["report_html"] = write_atomic(out_dir / "report.html", lambda p: p.write_text(report, encoding="utf-8"))
    return paths
