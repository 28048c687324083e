"""The smallest halo for which tiled prediction equals untiled prediction.

Our U-Nets pad every convolution with zeros ('same' padding), so where a tile
is cut the network sees zeros instead of image, and outputs change up to the
receptive-field radius away from the cut. A tile's halo is the context
cropped from each side of its prediction; it must cover that influence.

Two numbers per spatial axis, both in voxels of the model grid:

``receptive_field``
    Theoretical, from the architecture (`synapse_bmz.models.unet.UNet`
    kwargs: depth, kernel sizes, pooling factors per axis): the largest
    distance, over all output positions, at which an input voxel can still
    change an output. Anisotropic nets (synapse_cleft pools z once, with
    1 x 3 x 3 kernels at the fine levels) have a much smaller value in z.
``halo`` (measured)
    The tiles a runner cuts start on the pooling grid (the halo and the tile
    sizes are multiples of the pooling factor product, `divisibility`); for
    such tiles `aligned_bound` is the structural limit beyond which a cut
    changes nothing at all. The measurement predicts the package's test
    input (reflected out to a size that needs tiles) through the runner with
    cuts but no halo, finds the largest distance from a cut at which the
    prediction still differs from the untiled one by more than the RDF's
    reproducibility tolerance (``config.bioimageio.reproducibility_tolerance``,
    the spec's default when absent; per element
    ``|tiled - untiled| <= absolute + relative * |untiled|``, no mismatched
    elements allowed), adds one pooling cell of margin, rounds up to the
    pooling grid and caps at `aligned_bound`; then it checks the result with
    every axis split at that halo.

For the trained packages the measured value is at or within a few voxels of
the structural reach of a cut (`UNetContext.cut_reach`): the networks are
sensitive over their whole receptive field, so the halo ends at
`aligned_bound` (48 px for the 4-level 2D nets, 24 voxels for the 3-level 3D
nets, 8 sections in z for synapse_cleft).

Reproduce (prints a table; ``--write`` updates the RDFs and model cards)::

    python -m synapse_bmz.packaging.halo vesicles_2d synapse_cleft
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

#: Margin added to the measured distance, in pooling cells (multiples of `divisibility`).
MARGIN_CELLS = 1


# --------------------------------------------------------------------------- architecture

@dataclass(frozen=True)
class UNetContext:
    """What the architecture says about context, per spatial axis (voxels).

    Attributes
    ----------
    divisibility : tuple of int
        Product of the pooling factors: tiles must start on this grid to see
        the same pooling windows as the whole volume.
    receptive_field : tuple of int
        Largest reach of an output into its input, over all output positions.
    cut_reach : tuple of int
        Outputs at least this far from a grid-aligned cut (distance 0 = the
        first voxel inside) do not depend on anything beyond the cut.
    aligned_bound : tuple of int
        `cut_reach` rounded up to a multiple of `divisibility`: the largest
        halo a grid-aligned tiling ever needs.
    """

    divisibility: Tuple[int, ...]
    receptive_field: Tuple[int, ...]
    cut_reach: Tuple[int, ...]
    aligned_bound: Tuple[int, ...]


def _per_axis(v, ndim: int) -> Tuple[int, ...]:
    return (int(v),) * ndim if isinstance(v, (int, np.integer)) else tuple(int(x) for x in v)


def unet_context(kwargs: Mapping[str, Any]) -> UNetContext:
    """Receptive field and aligned bound of a `synapse_bmz.models.unet.UNet`.

    Parameters
    ----------
    kwargs : mapping
        The constructor arguments (``ndim``, ``depth``, ``pool_factors``,
        ``kernel_sizes``), as in the RDF's architecture kwargs.

    Notes
    -----
    Exact interval arithmetic on the dependency of an output index on input
    indices: each 'same' convolution with kernel ``k`` widens it by ``k // 2``
    on both sides, a max-pool of factor ``p`` maps pooled index ``j`` to
    ``[j p, j p + p - 1]``, the stride-``p`` transposed convolution maps
    output ``x`` to pooled ``x // p``; the skip path and the pooled path are
    unioned. Evaluated for every residue of the position modulo the pooling
    grid.
    """
    ndim = int(kwargs.get("ndim", 2))
    depth = int(kwargs.get("depth", 4))
    pools = [_per_axis(p, ndim) for p in (kwargs.get("pool_factors") or [2] * (depth - 1))]
    kernels = [_per_axis(k, ndim) for k in (kwargs.get("kernel_sizes") or [3] * depth)]
    divs, rfs, needs = [], [], []
    for ax in range(ndim):
        p = [pf[ax] for pf in pools]
        r = [k[ax] // 2 for k in kernels]

        def dep(level: int, lo: int, hi: int) -> Tuple[int, int]:
            # input interval of level `level` needed for its output interval [lo, hi]
            if level == depth - 1:
                return lo - 2 * r[level], hi + 2 * r[level]
            a, b = lo - 2 * r[level], hi + 2 * r[level]          # decoder double conv
            s0, s1 = a - 2 * r[level], b + 2 * r[level]          # skip: encoder double conv
            q0, q1 = dep(level + 1, a // p[level], b // p[level])  # transposed conv, sub-network
            d0, d1 = q0 * p[level] - 2 * r[level], q1 * p[level] + p[level] - 1 + 2 * r[level]
            return min(s0, d0), max(s1, d1)

        div = math.prod(p)
        reach = [(x - dep(0, x, x)[0], dep(0, x, x)[1] - x) for x in range(div)]
        # a cut at a grid position; output at distance d inside it has residue d (left cut) or
        # div - 1 - d (right cut) modulo div, and changes iff d < its reach across the cut
        need = 0
        for res, (left, right) in enumerate(reach):
            for r, extent in ((res, left), ((div - 1 - res) % div, right)):
                if extent > r:
                    need = max(need, extent - 1 - (extent - 1 - r) % div + 1)
        divs.append(div)
        rfs.append(max(max(lr) for lr in reach))
        needs.append(need)
    return UNetContext(tuple(divs), tuple(rfs), tuple(needs),
                       tuple(_round_up(n, d) for n, d in zip(needs, divs)))


#: Architectures with a U-Net's receptive field and pooling grid (`unet_context` applies):
#: `synapse_bmz.models.unet.UNet` and the multi-head `synapse_bmz.models.partner_unet.PartnerUNet`.
UNET_CALLABLES = ("UNet", "PartnerUNet")


def architecture_kwargs(descr) -> Optional[Dict[str, Any]]:
    """The U-Net kwargs of a model description, or None for another architecture."""
    sd = getattr(descr.weights, "pytorch_state_dict", None)
    arch = getattr(sd, "architecture", None) if sd is not None else None
    if arch is None or str(getattr(arch, "callable", "")) not in UNET_CALLABLES:
        return None
    return dict(arch.kwargs)


def valid_size(n: int, min_size: int, step: int) -> int:
    """`synapse_bmz.runner.tiling.valid_size` (imported lazily: the runner pulls in postprocessing)."""
    from ..runner.tiling import valid_size as _valid_size

    return _valid_size(n, min_size, step)


def _round_up(n: int, m: int) -> int:
    return int(math.ceil(n / m) * m) if m > 0 else int(n)


def spec_output_halo(halo: int, min_size: int, divisibility: int = 1) -> int:
    """The halo an RDF output axis can declare: the spec (bioimageio.spec >= 0.5.10 with
    ``latest`` checks) needs ``min_size - 2 * halo >= 1``; rounded down to the pooling grid
    so bioimageio.core's own tiling stays aligned. 0 means: declare none on this axis.

    ``config.synapse_bmz.halo`` holds the full value; the runner uses it."""
    cap = min(int(halo), (int(min_size) - 1) // 2)
    return max(0, cap - cap % max(int(divisibility), 1))


# --------------------------------------------------------------------------- tolerance

@dataclass(frozen=True)
class Tolerance:
    """``|a - ref| <= absolute + relative * |ref|`` element-wise (the spec's definition)."""

    absolute: float
    relative: float

    def ratio(self, a: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """Deviation in units of the allowed deviation (<= 1 passes)."""
        return np.abs(a - ref) / (self.absolute + self.relative * np.abs(ref))


def reproducibility_tolerance(descr, weight_format: Optional[str] = None) -> Tolerance:
    """The strictest ``config.bioimageio.reproducibility_tolerance`` entry that applies to the
    first output (and ``weight_format``); the spec's default entry when the RDF states none."""
    from bioimageio.spec.model import v0_5

    out_id = descr.outputs[0].id
    entries = [e for e in descr.config.bioimageio.reproducibility_tolerance
               if (not e.output_ids or out_id in e.output_ids)
               and (not e.weights_formats or weight_format is None or weight_format in e.weights_formats)]
    if not entries:
        entries = [v0_5.ReproducibilityTolerance()]
    return Tolerance(min(float(e.absolute_tolerance) for e in entries),
                     min(float(e.relative_tolerance) for e in entries))


# --------------------------------------------------------------------------- prediction

def predict_volume(session, image: np.ndarray, *, tile: Optional[Sequence[int]] = None,
                   halo: Optional[Sequence[int]] = None, batch_size: Optional[int] = None) -> np.ndarray:
    """Predict ``image`` (model grid, raw intensities) through `synapse_bmz.api.predict`.

    Without ``tile`` the whole volume is one tile (untiled). Normalisation uses
    the statistics of the whole ``image`` in both cases. Returns ``(C, [Z,] Y, X)``.
    """
    from .. import api
    from ..io import Volume

    vs = session.layout.voxel_size_nm or (1.0,) * len(session.layout.spatial)
    vs = (1.0,) * (image.ndim - len(vs)) + tuple(float(v) for v in vs)  # the model grid: no resampling
    volume = Volume(data=image, voxel_size_nm=vs, axes="zyx"[-image.ndim:], path="halo measurement")
    res = api.predict(session, volume, tile=tile, halo=halo, batch_size=batch_size, memory_budget_bytes=1e15)
    return np.asarray(res.values, dtype=np.float32)


@contextlib.contextmanager
def _any_halo(session):
    """Let the runner accept halos below the package's declared minimum (that minimum
    is what is being measured)."""
    layout = session.layout
    session.layout = dataclasses.replace(layout, halo=(0,) * len(layout.halo))
    try:
        yield session
    finally:
        session.layout = layout


def interior(shape: Sequence[int], halo: Sequence[int]) -> Tuple[slice, ...]:
    """Voxels more than ``halo`` from the volume edge, per trailing spatial axis."""
    nd = len(halo)
    return tuple(slice(None) for _ in shape[:-nd]) + tuple(slice(h, n - h) for n, h in zip(shape[-nd:], halo))


def reflect_to(image: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """``image`` reflected out at the far end of each axis to at least ``shape`` (never cropped)."""
    pad = [(0, max(0, int(s) - n)) for s, n in zip(shape, image.shape)]
    return np.pad(image, pad, mode="reflect") if any(p[1] for p in pad) else image


# --------------------------------------------------------------------------- measurement

@dataclass(frozen=True)
class HaloMeasurement:
    """Result of `measure_halo`, per model spatial axis (voxels, model grid).

    Attributes
    ----------
    halo : tuple of int
        Minimum halo for the runner (``config.synapse_bmz.halo``).
    measured : tuple of int
        Largest distance from a cut at which tiles still differ beyond the
        tolerance, plus one (0: no difference anywhere).
    receptive_field, cut_reach, aligned_bound, divisibility : tuple of int or None
        From the architecture (`unet_context`); None when it is not our U-Net.
        ``measured <= cut_reach`` always; equality means the trained network
        is sensitive (beyond the tolerance) over its whole reach.
    tolerance : Tolerance
    max_ratio : float
        Largest deviation / allowed deviation with all axes split at ``halo``
        (<= 1), away from the volume edge.
    volume_shape : tuple of int
        Spatial shape of the (reflected) test volume.
    """

    halo: Tuple[int, ...]
    measured: Tuple[int, ...]
    receptive_field: Optional[Tuple[int, ...]]
    cut_reach: Optional[Tuple[int, ...]]
    aligned_bound: Optional[Tuple[int, ...]]
    divisibility: Tuple[int, ...]
    tolerance: Tolerance
    max_ratio: float
    volume_shape: Tuple[int, ...]


def _seam_distance(extent: int, inner: int) -> np.ndarray:
    """Distance of each position to the nearest cut between tiles of size ``inner`` (inf if none)."""
    p = np.arange(extent)
    start = (p // inner) * inner
    left = np.where(start > 0, p - start, np.inf)
    right = np.where(start + inner < extent, start + inner - 1 - p, np.inf)
    return np.minimum(left, right)


def measure_halo(model, image: Optional[np.ndarray] = None, *, device: str = "cpu",
                 weight_format: Optional[str] = None, tolerance: Optional[Tolerance] = None,
                 max_halo: Optional[Sequence[int]] = None) -> HaloMeasurement:
    """Measure the smallest halo for which tiles reproduce the untiled prediction.

    Parameters
    ----------
    model : str, Path, LoadedModel or ModelSession
        The package.
    image : ndarray, shape ([Z,] Y, X), optional
        Raw input on the model grid; default the package's test input. It is
        reflected out where it is too small to be cut.
    device, weight_format : str
        Where and with which weights to predict.
    tolerance : Tolerance, optional
        Default: the RDF's reproducibility tolerance.
    max_halo : sequence of int, optional
        Largest halo searched when the architecture is not our U-Net
        (default: the minimum input size per axis).

    Returns
    -------
    HaloMeasurement

    Raises
    ------
    RuntimeError
        When no halo up to the bound reproduces the untiled prediction.
    """
    from .. import api

    session = api.load_session(model, device=device, weight_format=weight_format)
    descr = session.model.descr
    lay = session.layout
    nd = len(lay.spatial)
    tol = tolerance or reproducibility_tolerance(descr, session.weight_format)
    kwargs = architecture_kwargs(descr)
    ctx = unet_context(kwargs) if kwargs is not None else None
    div = ctx.divisibility if ctx else (1,) * nd
    bound = ctx.aligned_bound if ctx else tuple(int(m) for m in (max_halo or lay.min_size))
    if image is None:
        src = session.model.rdf_path.parent / str(descr.inputs[0].test_tensor.source.path
                                                   if hasattr(descr.inputs[0].test_tensor.source, "path")
                                                   else descr.inputs[0].test_tensor.source)
        image = np.load(src)
    image = np.asarray(image, dtype=np.float32)
    image = image.reshape(image.shape[image.ndim - nd:])  # drop batch/channel singletons

    step = tuple(max(int(s), d) for s, d in zip(lay.step, div))
    # cuts every L voxels with no halo: L leaves room for the bound on both sides of a tile
    cut = tuple(valid_size(2 * b + s, m, st) for b, s, m, st in zip(bound, step, lay.min_size, lay.step))
    shape = []
    for n, b, c, s, m, st in zip(image.shape, bound, cut, step, lay.min_size, lay.step):
        e = valid_size(max(n, c + 2 * b), m, st)
        while valid_size(2 * b + math.ceil(e / 2), m, st) >= e:  # room for 2+ tiles at halo b
            e = valid_size(e + s, m, st)
        shape.append(e)
    volume = reflect_to(image, shape)
    whole = tuple(valid_size(e, m, st) for e, m, st in zip(volume.shape, lay.min_size, lay.step))
    ref = predict_volume(session, volume)

    measured = []
    with _any_halo(session):
        for i in range(nd):
            if bound[i] == 0:
                measured.append(0)
                continue
            tile = tuple(cut[i] if j == i else whole[j] for j in range(nd))
            pred = predict_volume(session, volume, tile=tile, halo=(0,) * nd)
            ratio = tol.ratio(pred, ref).max(axis=0)
            ratio = np.moveaxis(ratio, i, 0).reshape(ratio.shape[i], -1).max(axis=1)
            dist = _seam_distance(volume.shape[i], cut[i])
            keep = np.isfinite(dist)
            edge = np.minimum(np.arange(volume.shape[i]), volume.shape[i] - 1 - np.arange(volume.shape[i]))
            keep &= edge >= bound[i]
            bad = dist[keep & (ratio > 1.0)]
            measured.append(int(bad.max()) + 1 if bad.size else 0)
        if ctx is None and any(m >= b for m, b in zip(measured, bound)):
            raise RuntimeError(f"{session.model.name}: tiles still differ {measured} voxels from a cut; "
                               f"raise max_halo (now {bound})")
        halo = [min(_round_up(m + MARGIN_CELLS * d, d), b) if b else 0
                for m, d, b in zip(measured, div, bound)]
        while True:
            ratio = _split_all_ratio(session, volume, ref, halo, tol)
            if ratio <= 1.0:
                break
            grow = [i for i in range(nd) if halo[i] < bound[i]]
            if not grow:
                raise RuntimeError(f"{session.model.name}: tiles with halo {halo} (the structural bound) "
                                   f"still deviate {ratio:.3g} x the tolerance from the untiled prediction")
            for i in grow:
                halo[i] = min(halo[i] + div[i], bound[i])
    return HaloMeasurement(
        halo=tuple(halo), measured=tuple(measured),
        receptive_field=ctx.receptive_field if ctx else None, cut_reach=ctx.cut_reach if ctx else None,
        aligned_bound=ctx.aligned_bound if ctx else None, divisibility=tuple(div),
        tolerance=tol, max_ratio=float(ratio), volume_shape=tuple(volume.shape))


def _split_all_ratio(session, volume, ref, halo, tol: Tolerance) -> float:
    """Largest deviation ratio, away from the edge, with every axis cut into 2+ tiles at ``halo``."""
    lay = session.layout
    tile = tuple(valid_size(2 * h + math.ceil(e / 2), m, s)
                 for h, e, m, s in zip(halo, volume.shape, lay.min_size, lay.step))
    pred = predict_volume(session, volume, tile=tile, halo=tuple(halo))
    region = (slice(None),) + interior(volume.shape, halo)
    return float(tol.ratio(pred[region], ref[region]).max())


# --------------------------------------------------------------------------- writing

def write_halo(rdf_path: Path, m: HaloMeasurement) -> None:
    """Record a measurement in an existing package: ``config.synapse_bmz.halo`` (and
    ``receptive_field``) in the RDF, and the card's halo line if it has one."""
    import yaml

    rdf_path = Path(rdf_path)
    rdf = yaml.safe_load(rdf_path.read_text())
    sb = rdf["config"]["synapse_bmz"]
    sb["halo"] = [int(h) for h in m.halo]
    if m.receptive_field is not None:
        # keep the key order of a freshly built RDF: right after halo
        items = [(k, v) for k, v in sb.items() if k != "receptive_field"]
        at = [k for k, _ in items].index("halo") + 1
        items.insert(at, ("receptive_field", [int(r) for r in m.receptive_field]))
        rdf["config"]["synapse_bmz"] = dict(items)
    rdf_path.write_text(yaml.safe_dump(rdf, sort_keys=False))
    doc = rdf_path.parent / str(rdf.get("documentation", "README.md"))
    if doc.is_file():
        text = doc.read_text()
        new = re.sub(r"(- Halo \(voxels, per spatial axis\): )\[[0-9, ]*\]", rf"\g<1>{list(m.halo)}", text)
        if new != text:
            doc.write_text(new)


def main(argv: Optional[List[str]] = None) -> None:
    import torch

    ap = argparse.ArgumentParser(prog="python -m synapse_bmz.packaging.halo",
                                 description="Measure the minimum tile halo of model packages.")
    ap.add_argument("packages", nargs="*", help="package names or folders (default: all in model_packages/)")
    ap.add_argument("--write", action="store_true", help="write the halo into each RDF and model card")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    from ..zoo.registry import available_packages, load_model

    names = a.packages or sorted(available_packages())
    print(f"{'package':16} {'axes':4} {'measured':>12} {'halo':>12} {'cut reach':>12} {'bound':>12} "
          f"{'recept.field':>12} {'ratio':>7}")
    for name in names:
        model = load_model(name)
        m = measure_halo(model)
        fmt = lambda v: ",".join(map(str, v)) if v is not None else "-"  # noqa: E731
        spatial = "zyx"[-len(m.halo):]
        print(f"{name:16} {spatial:4} {fmt(m.measured):>12} {fmt(m.halo):>12} {fmt(m.cut_reach):>12} "
              f"{fmt(m.aligned_bound):>12} {fmt(m.receptive_field):>12} {m.max_ratio:7.3f}", flush=True)
        if a.write:
            write_halo(model.rdf_path, m)


if __name__ == "__main__":
    main()
