"""The clustering run's HTML report: one self-contained file (plotly.js inlined, opens offline)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

__all__ = ["write_report"]


def _scatter(table, cols, color, title):
    import plotly.express as px

    df = table.assign(**{color: table[color].astype(str)})
    hover = [c for c in ("synapse_id", "source", "cluster", "vesicle_cloud_volume_nm3") if c in table.columns]
    if len(cols) == 3:
        return px.scatter_3d(df, x=cols[0], y=cols[1], z=cols[2], color=color, hover_data=hover, title=title)
    return px.scatter(df, x=cols[0], y=cols[1], color=color, hover_data=hover, title=title)


def _img(path, alt: str, caption: str) -> str:
    mime = {".png": "image/png", ".gif": "image/gif"}[Path(path).suffix.lower()]
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return (f'<figure><img src="data:{mime};base64,{data}" alt="{html.escape(alt)}">'
            f'<figcaption>{caption}</figcaption></figure>')


def write_report(path: Path, table: pd.DataFrame, choice, presynapse: pd.DataFrame, summary: pd.DataFrame,
                 crops: Optional[np.ndarray], cfg, attention: Sequence = (), *, gifs: Sequence = (),
                 top_regions: Optional[pd.DataFrame] = None) -> Path:
    """Write ``report.html``: embeddings coloured by cluster and by source volume (2D and 3D),
    silhouette and elbow curves, representative crops per cluster (central z slice and animated
    GIFs through z), Grad-CAM maps and the top attended regions, presynapse summary and
    vesicle-cloud volume per cluster.

    Parameters
    ----------
    attention : sequence of (cluster, synapse_id, layer names, PNG path)
    gifs : sequence of (cluster, synapse_id, GIF path)
    top_regions : DataFrame, optional
        `synapse_bmz.cluster.gradcam.top_attended_regions`.

    Every figure is a ``<div class="figure" id=...>``; plotly.js and the images are inlined,
    so the file needs no network.
    """
    import plotly.graph_objects as go

    figs = []
    for method in ("umap", "tsne"):
        for dim in (2, 3):
            cols = [f"{method}_{dim}d_{i}" for i in range(dim)]
            if all(c in table.columns for c in cols):
                figs.append((f"{method}_{dim}d_cluster", _scatter(table, cols, "cluster", f"{method.upper()} {dim}D by cluster")))
                if "source" in table.columns:
                    figs.append((f"{method}_{dim}d_source",
                                 _scatter(table, cols, "source", f"{method.upper()} {dim}D by source volume")))
    ks = sorted(choice.silhouette)
    f = go.Figure(go.Scatter(x=ks, y=[choice.silhouette[k] for k in ks], mode="lines+markers"))
    f.update_layout(title=f"Silhouette score (chosen k = {choice.k})", xaxis_title="k", yaxis_title="silhouette")
    figs.append(("silhouette", f))
    f = go.Figure(go.Scatter(x=ks, y=[choice.inertia[k] for k in ks], mode="lines+markers"))
    f.update_layout(title=f"Elbow: KMeans inertia (elbow at k = {choice.elbow_k})", xaxis_title="k",
                    yaxis_title="within-cluster sum of squares")
    figs.append(("elbow", f))
    col = "vesicle_cloud_volume_nm3_mean"
    if col in summary.columns:
        f = go.Figure(go.Bar(x=summary["cluster"].astype(str), y=summary[col]))
        f.update_layout(title="Closest vesicle cloud per cluster (mean, nm^3)", xaxis_title="cluster", yaxis_title="nm^3")
        figs.append(("vesicle_cloud", f))
    if crops is not None and cfg.report_crops_per_cluster:
        # one grey scale for every crop, so clusters compare by brightness too
        from .gif import grey_window

        lo, hi = grey_window(crops)
        for c in sorted(table["cluster"].unique()):
            idx = np.flatnonzero(table["cluster"].to_numpy() == c)[: cfg.report_crops_per_cluster]
            f = go.Figure()
            from plotly.subplots import make_subplots

            f = make_subplots(rows=1, cols=len(idx), subplot_titles=[str(table["synapse_id"][i]) for i in idx])
            for j, i in enumerate(idx):
                f.add_trace(go.Heatmap(z=crops[i][crops.shape[1] // 2], colorscale="gray", zmin=lo, zmax=hi,
                                       showscale=False), row=1, col=j + 1)
            f.update_layout(title=f"Cluster {c}: representative crops (central z slice)", height=340,
                            width=max(420, 300 * len(idx)))
            for j in range(len(idx)):  # each image square in its own panel, y down as in the volume
                f.update_xaxes(constrain="domain", showticklabels=False, row=1, col=j + 1)
                f.update_yaxes(autorange="reversed", scaleanchor=f"x{j + 1 if j else ''}", constrain="domain",
                               showticklabels=False, row=1, col=j + 1)
            figs.append((f"crops_cluster_{c}", f))
    parts = []
    for i, (fid, fig) in enumerate(figs):
        div = fig.to_html(full_html=False, include_plotlyjs=(i == 0), div_id=f"fig_{fid}")
        parts.append(f'<div class="figure" id="{fid}">{div}</div>')
    att = [_img(png, f"attention {sid}", f"cluster {c}, synapse {html.escape(sid)}: crop, then Grad-CAM of "
                f"{html.escape(', '.join(map(str, layers)))} (rows: z slices)") for c, sid, layers, png in attention]
    att_html = (f'<h2>Attention maps</h2><div class="figure" id="attention">{"".join(att)}</div>' if att else "")
    if top_regions is not None and len(top_regions):
        att_html += ('<h3>Most attended regions across samples</h3><div class="table" id="top_regions">'
                     f'{top_regions.to_html(index=False, float_format=lambda v: f"{v:.3f}")}</div>')
    gif_html = ""
    if gifs:
        items = [_img(g, f"crop {sid}", f"cluster {c}, synapse {html.escape(sid)}") for c, sid, g in gifs]
        gif_html = ('<h2>Crops through z</h2><p>Representative crops of each cluster as the extractor sees them, '
                    f'one grey window for all.</p><div class="figure" id="gifs">{"".join(items)}</div>')
    pre_html = presynapse.to_html(index=False, float_format=lambda v: f"{v:.3f}") if len(presynapse) else \
        "<p>No pre-synaptic neuron has two or more synapses (or no segments were given).</p>"
    text = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>synapse-bmz cluster report</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:2px 6px}} figure{{display:inline-block;margin:4px 8px;vertical-align:top}} figcaption{{font-size:small;max-width:40em}}</style>
</head><body>
<h1>Synapse clustering</h1>
<p>{len(table)} synapses; model {html.escape(str(cfg.model))} ({cfg.extraction}{', layer ' + str(cfg.layer_num) if cfg.extraction == 'stage_specific' else ''},
{cfg.pooling} pooling{', random weights' if cfg.random_weights else ''}); segmentation type {cfg.segmentation_type}, alpha {cfg.alpha};
KMeans k = {choice.k} by silhouette ({choice.silhouette[choice.k]:.3f}), elbow at k = {choice.elbow_k}.</p>
{''.join(parts)}
{gif_html}
{att_html}
<h2>Presynapse analysis</h2>
<p>Per pre-synaptic neuron: mean feature distance among its synapses vs. to other synapses (ratio &lt; 1: alike).</p>
<div class="table" id="presynapse">{pre_html}</div>
<h2>Clusters</h2>
<div class="table" id="cluster_summary">{summary.to_html(index=False, float_format=lambda v: f"{v:.1f}")}</div>
</body></html>
"""
    Path(path).write_text(text)
    return Path(path)
