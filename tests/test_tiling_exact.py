"""Tiled prediction equals untiled prediction, within the RDF's tolerance, away from the border.

Every package's ``config.synapse_bmz.halo`` is the measured minimum
(`synapse_bmz.packaging.halo`); tiles just big enough for it (``2 * halo +
step``) must reproduce the whole-volume prediction at every voxel more than
the halo from the volume edge: ``|tiled - untiled| <= absolute + relative *
|untiled|`` with the RDF's ``reproducibility_tolerance``, no exceptions.
Smaller halos and tiles are refused by the runner.

Cost on a 2-core CPU: 2D packages split both axes with the smallest tile; 3D
packages split each axis in turn with the smallest tile, and all axes at
once into 2 tiles each (the smallest tile in all three axes at once means
thousands of tiles). The five isotropic 3D packages share one architecture
(depth 3, 3x3x3 kernels, pooling 2, halo 24): vesicles_3d runs by default,
the other four are ``slow``; synapse_cleft (anisotropic) runs per axis by
default, split along all axes in ``slow``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from synapse_bmz.packaging.halo import (interior, predict_volume, reflect_to, reproducibility_tolerance,
                                        spec_output_halo, unet_context, valid_size)

PACKAGES_2D = ["vesicles_2d", "mitochondria_2d", "psd_2d"]
PACKAGES_3D = ["vesicles_3d", "synapse_cleft"]
PACKAGES_3D_SLOW = ["active_zone", "compartments", "mitochondria_3d", "ribbon", "vesicles_cryo",
                    "synaptic_partners", "synaptic_polarity"]
ALL = PACKAGES_2D + PACKAGES_3D + PACKAGES_3D_SLOW


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Many small tiles: one torch thread is faster than two fighting over a shared CPU."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _session(name):
    from synapse_bmz.api import load_session

    return load_session(name, device="cpu")


def _test_volume(session, shape):
    """The package's test input, cropped or reflected out to ``shape``."""
    src = session.model.descr.inputs[0].test_tensor.source
    img = np.load(session.model.rdf_path.parent / str(getattr(src, "path", src))).astype(np.float32)
    img = img.reshape(img.shape[-len(shape):])
    return np.ascontiguousarray(reflect_to(img, shape)[tuple(slice(0, s) for s in shape)])


def _max_ratio(session, volume, tile, halo):
    tol = reproducibility_tolerance(session.model.descr, session.weight_format)
    whole = predict_volume(session, volume)
    tiled = predict_volume(session, volume, tile=tile)
    region = (slice(None),) + interior(volume.shape, halo)
    return float(tol.ratio(tiled[region], whole[region]).max()), float(np.abs(tiled - whole)[region].max())


def test_all_packages_are_covered():
    from synapse_bmz.zoo.registry import available_packages

    from synapse_bmz.zoo.config import read_config
    from synapse_bmz.zoo.registry import read_rdf

    def tiled(p):
        # feature extractors (task `features`, output batch x features) have no output grid to tile
        cfg = read_config(read_rdf(p).get("config"), str(p))
        return cfg is None or cfg.task != "features"

    repo = {n for n, p in available_packages().items() if p.parent.parent.name == "model_packages" and tiled(p)}
    assert repo <= set(ALL), f"add {sorted(repo - set(ALL))} to tests/test_tiling_exact.py"


def _model_and_context(source):
    """A package and its U-Net's receptive field / pooling grid (`unet_context`)."""
    from synapse_bmz.zoo.registry import load_model

    model = load_model(source)
    return model, unet_context(dict(model.descr.weights.pytorch_state_dict.architecture.kwargs))


@pytest.mark.parametrize("name", ALL)
def test_package_halo_is_recorded_and_on_the_pooling_grid(name):
    model, ctx = _model_and_context(name)
    cfg = model.config
    assert cfg.receptive_field == list(ctx.receptive_field)
    assert all(h % d == 0 for h, d in zip(cfg.halo, ctx.divisibility)), (cfg.halo, ctx.divisibility)
    assert all(0 < h <= b for h, b in zip(cfg.halo, ctx.aligned_bound)), (cfg.halo, ctx.aligned_bound)
    # the runner uses the config halo (it is never below an output axis's declared halo)
    assert _session(name).layout.halo == tuple(cfg.halo)


def _smallest_tiles(lay):
    halo = lay.halo
    smallest = tuple(valid_size(2 * h + s, m, s) for h, s, m in zip(halo, lay.step, lay.min_size))
    inner = tuple(t - 2 * h for t, h in zip(smallest, halo))
    # an extent with >= 2 seams between tiles inside the compared region
    split = tuple(t + 2 * i for t, i in zip(smallest, inner))
    return smallest, split


def _assert_exact(name, axes, session, shape, tile):
    ratio, diff = _max_ratio(session, _test_volume(session, shape), tile, session.layout.halo)
    assert ratio <= 1.0, (f"{name}: tiles {tile} split along {axes} with halo {session.layout.halo} differ from "
                          f"the untiled prediction by {diff:.3g} ({ratio:.3g} x the RDF's tolerance)")


def _check_per_axis(name):
    """The smallest tile along one axis at a time (3D), or along both axes (2D)."""
    session = _session(name)
    lay = session.layout
    nd = len(lay.spatial)
    smallest, split = _smallest_tiles(lay)
    if nd == 2:
        _assert_exact(name, "yx", session, split, smallest)
        return
    for ax in range(nd):
        shape = tuple(split[j] if j == ax else smallest[j] for j in range(nd))
        _assert_exact(name, lay.spatial[ax], session, shape, smallest)


def _check_all_axes(name):
    """Every axis split into 2 tiles at once (the seams meet at corners)."""
    session = _session(name)
    lay = session.layout
    shape, tile = [], []
    for h, s, m in zip(lay.halo, lay.step, lay.min_size):
        e = valid_size(4 * h + 2 * s, m, s)
        while valid_size(2 * h + math.ceil(e / 2), m, s) >= e:
            e += s
        shape.append(e)
        tile.append(valid_size(2 * h + math.ceil(e / 2), m, s))
    _assert_exact(name, lay.spatial, session, tuple(shape), tuple(tile))


_SLOW = pytest.mark.slow  # the 3D packages beyond one isotropic and one anisotropic, ~20 s each


@pytest.mark.parametrize("name", PACKAGES_2D + PACKAGES_3D
                         + [pytest.param(n, marks=_SLOW) for n in PACKAGES_3D_SLOW])
def test_smallest_tiles_equal_untiled(name):
    _check_per_axis(name)


@pytest.mark.parametrize("name", ["vesicles_3d", pytest.param("synapse_cleft", marks=_SLOW)]
                         + [pytest.param(n, marks=_SLOW) for n in PACKAGES_3D_SLOW])
def test_all_axes_split_equal_untiled(name):
    _check_all_axes(name)


@pytest.mark.parametrize("name", ["vesicles_2d", "synapse_cleft"])
def test_tiles_and_halos_below_the_minimum_are_refused(name):
    from synapse_bmz.errors import SynapseBmzError
    from synapse_bmz.runner.predict import make_plan

    session = _session(name)
    lay = session.layout
    halo = lay.halo
    div = unet_context(dict(session.model.descr.weights.pytorch_state_dict.architecture.kwargs)).divisibility
    smallest = tuple(valid_size(2 * h + s, m, s) for h, s, m in zip(halo, lay.step, lay.min_size))
    shape = tuple(3 * t for t in smallest)
    minimum = ",".join(map(str, halo))

    plan = make_plan(session, shape, device="cpu", tile=smallest, halo=halo)
    assert plan.tile == smallest and plan.halo == halo

    for ax in range(len(halo)):
        low = tuple(h - d if i == ax else h for i, (h, d) in enumerate(zip(halo, div)))
        with pytest.raises(SynapseBmzError) as err:
            make_plan(session, shape, device="cpu", tile=smallest, halo=low)
        assert "--halo" in str(err.value) and minimum in str(err.value) and "\n" not in str(err.value)

        small = tuple(t - s if i == ax else t for i, (t, s) in enumerate(zip(smallest, lay.step)))
        with pytest.raises(SynapseBmzError) as err:
            make_plan(session, shape, device="cpu", tile=small)
        assert "--tile" in str(err.value) and ",".join(map(str, smallest)) in str(err.value)

    if name == "vesicles_2d":  # what a new user tried
        with pytest.raises(SynapseBmzError, match="--tile"):
            make_plan(session, (512, 512), device="cpu", tile=(64, 64))


@pytest.mark.parametrize("kwargs", [dict(ndim=2, depth=3),
                                    dict(ndim=3, depth=3, pool_factors=[(1, 2, 2), (2, 2, 2)],
                                         kernel_sizes=[(1, 3, 3), (3, 3, 3), (3, 3, 3)])])
def test_cut_reach_is_exactly_where_a_cut_stops_mattering(kwargs):
    """A crop starting on the pooling grid changes outputs up to ``cut_reach - 1`` voxels inside
    it and none from ``cut_reach`` on. Positive weights and input: nothing cancels, every
    dependency shows."""
    import torch

    from synapse_bmz.models import UNet

    torch.manual_seed(0)
    net = UNet(in_channels=1, out_channels=1, base_channels=2, final_activation="none", **kwargs).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    ctx = unet_context(net.init_kwargs)
    assert tuple(net.divisibility) == ctx.divisibility
    assert ctx.aligned_bound == tuple(-(-c // d) * d for c, d in zip(ctx.cut_reach, ctx.divisibility))
    assert all(c <= r for c, r in zip(ctx.cut_reach, ctx.receptive_field))
    nd = kwargs["ndim"]
    size = [4 * b + 4 * d for b, d in zip(ctx.aligned_bound, ctx.divisibility)]
    x = torch.rand(1, 1, *size, dtype=torch.float64)
    net = net.double()
    with torch.no_grad():
        full = net(x)[0, 0]
        for ax in range(nd):
            a = 2 * ctx.aligned_bound[ax]
            crop = [slice(None)] * nd
            crop[ax] = slice(a, None)
            ref = full[tuple(crop)]
            diff = ((net(x[(slice(None), slice(None)) + tuple(crop)])[0, 0] - ref).abs() / ref.abs()).movedim(ax, 0)
            per_distance = diff.reshape(diff.shape[0], -1).amax(1)
            c = ctx.cut_reach[ax]
            stop = diff.shape[0] - ctx.aligned_bound[ax]  # the crop's far end is the volume's own end
            assert float(per_distance[c:stop].max()) < 1e-12, (kwargs, ax)
            assert float(per_distance[c - 1]) > 1e-9, (kwargs, ax)


def test_built_package_gets_the_measured_halo(tiny_package_2d):
    model, ctx = _model_and_context(tiny_package_2d)
    cfg = model.config
    assert cfg.receptive_field == list(ctx.receptive_field)
    assert all(h % d == 0 and 0 < h <= b for h, d, b in zip(cfg.halo, ctx.divisibility, ctx.aligned_bound))
    mins = [int(a.size.min) for a in model.descr.inputs[0].axes if a.type == "space"]
    declared = [int(getattr(a, "halo", 0) or 0) for a in model.descr.outputs[0].axes if a.type == "space"]
    assert declared == [spec_output_halo(h, m, d) for h, m, d in zip(cfg.halo, mins, ctx.divisibility)]
    _check_per_axis(str(tiny_package_2d))
