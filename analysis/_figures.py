"""Plotly figures for the HTML report (private)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go


def histogram(values: pd.Series, title: str, x_title: str) -> go.Figure:
    """Histogram of the finite values of a column."""
    finite = values[np.isfinite(values.to_numpy(dtype=np.float64))]
    fig = go.Figure(go.Histogram(x=finite, nbinsx=40))
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title="vesicles", height=360, margin=dict(t=50, b=40))
    return fig


def pool_counts(pools: pd.Series) -> go.Figure:
    """Bar chart of vesicles per pool."""
    counts = pools.value_counts()
    fig = go.Figure(go.Bar(x=counts.index.astype(str), y=counts.to_numpy()))
    fig.update_layout(title="Vesicles per pool", yaxis_title="vesicles", height=360, margin=dict(t=50, b=40))
    return fig


def _downsample(image: np.ndarray, max_side: int = 512) -> tuple[np.ndarray, int]:
    step = max(1, int(np.ceil(max(image.shape) / max_side)))
    return image[::step, ::step], step


def slice_view(
    raw: np.ndarray | None,
    vesicles: np.ndarray,
    structures: dict[str, np.ndarray],
    voxel_size_nm: np.ndarray,
    title: str,
) -> go.Figure:
    """One (y, x) slice: raw in grey, vesicles and structures as translucent overlays.

    Axes are in nm; images are downsampled to at most 512 pixels a side.
    """
    labels, step = _downsample(vesicles)
    ny, nx = labels.shape
    y_nm = np.arange(ny) * step * voxel_size_nm[0]
    x_nm = np.arange(nx) * step * voxel_size_nm[1]
    fig = go.Figure()
    if raw is not None:
        fig.add_trace(go.Heatmap(z=_downsample(raw)[0], x=x_nm, y=y_nm, colorscale="gray", showscale=False, name="raw"))
    overlay = np.where(labels > 0, (labels % 17) + 1, np.nan).astype(np.float64)
    fig.add_trace(go.Heatmap(z=overlay, x=x_nm, y=y_nm, colorscale="Turbo", opacity=0.45, showscale=False, name="vesicles"))
    for k, (name, mask) in enumerate(structures.items()):
        m = _downsample(mask)[0] != 0
        fig.add_trace(go.Heatmap(
            z=np.where(m, 1.0, np.nan), x=x_nm, y=y_nm, opacity=0.5, showscale=False, name=name,
            colorscale=[[0, f"hsl({(k * 97) % 360},90%,50%)"], [1, f"hsl({(k * 97) % 360},90%,50%)"]],
        ))
    fig.update_layout(title=title, xaxis_title="x (nm)", yaxis_title="y (nm)", height=560, margin=dict(t=50, b=40))
    fig.update_yaxes(autorange="reversed", scaleanchor="x")
    return fig
