"""Anisotropic serial-section TEM of neuropil with polyadic synapses.

Neurites are a warped power diagram of random lines: every voxel belongs to
the line with the smallest ``distance - weight``, so neurites are tubes of
varied calibre with irregular, touching boundaries. Membranes are drawn
where neighbouring labels differ in-plane. A polyadic synapse (as in the
Drosophila nerve cord) has one pre-synaptic neuron with a T-bar and a
vesicle cloud and several post-synaptic partners touching it near the
T-bar; each (pre, post) pair is one row of the partner table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

from postprocessing._units import check_voxel_size

from .shapes import smooth_noise

__all__ = ["SimulatedNeuropil", "simulate_sstem_neuropil", "PARTNER_COLUMNS", "VNC_LIKE"]

#: Columns of the partner table; positions in nm from the first voxel centre.
PARTNER_COLUMNS = (
    "synapse_id", "pre_label", "post_label",
    "pre_z_nm", "pre_y_nm", "pre_x_nm", "post_z_nm", "post_y_nm", "post_x_nm",
)


@dataclass
class SimulatedNeuropil:
    """Simulated ssTEM stack with exact labels.

    Attributes
    ----------
    raw : (Z, Y, X) ndarray of uint8
        Sections, dark membranes on bright cytoplasm (like real ssTEM).
    labels : dict of str to (Z, Y, X) ndarray
        ``'neurons'``, ``'mitochondria'``, ``'vesicles'`` : uint32 ids;
        ``'membrane'``, ``'tbar'``, ``'synapses'`` (T-bar plus cleft, as in
        the real Drosophila masks) : bool.
    partners : pandas.DataFrame
        One row per (pre, post) pair; columns :data:`PARTNER_COLUMNS`.
    voxel_size_nm : tuple of float
        (z, y, x) in nm; z is the section thickness.
    params : dict
    """

    raw: np.ndarray
    labels: dict
    partners: pd.DataFrame
    voxel_size_nm: tuple
    params: dict


def _neurons(shape, vox, rng, n_neurons):
    extent = np.array(shape) * vox
    z, y, x = (np.arange(s, dtype=np.float32) * v for s, v in zip(shape, vox))
    z, y, x = np.meshgrid(z, y, x, indexing="ij", sparse=True)
    warp = 60.0  # nm of boundary wiggle
    y = y + warp * smooth_noise(shape, (1.0, 12.0, 12.0), rng)
    x = x + warp * smooth_noise(shape, (1.0, 12.0, 12.0), rng)
    best = np.full(shape, np.inf, np.float32)
    labels = np.zeros(shape, np.uint32)
    for k in range(n_neurons):
        p = rng.uniform(0, 1, 3) * extent
        d = rng.normal(size=3) * np.array([1.5, 1.0, 1.0])
        d /= np.linalg.norm(d)
        rel = (z - p[0], y - p[1], x - p[2])
        t = rel[0] * d[0] + rel[1] * d[1] + rel[2] * d[2]
        dist = np.sqrt(sum((r - t * c) ** 2 for r, c in zip(rel, d))) - rng.uniform(0, 150)
        closer = dist < best
        best[closer] = dist[closer]
        labels[closer] = k + 1
    # relabel so that every id is one connected piece per volume
    out = np.zeros_like(labels)
    next_id = 1
    for k in np.unique(labels):
        pieces, n = ndimage.label(labels == k)
        sizes = np.bincount(pieces.ravel())[1:]
        for j in range(n):
            if sizes[j] >= 50:
                out[pieces == j + 1] = next_id
                next_id += 1
    # absorb tiny fragments into a neighbour
    if np.any(out == 0):
        _, idx = ndimage.distance_transform_edt(out == 0, return_indices=True, sampling=vox)
        out = out[tuple(idx)]
    return out


def _membranes(neurons, vox, width_nm=None):
    boundary = np.zeros(neurons.shape, bool)
    boundary[:, 1:, :] |= neurons[:, 1:, :] != neurons[:, :-1, :]
    boundary[:, :, 1:] |= neurons[:, :, 1:] != neurons[:, :, :-1]
    if width_nm is None:  # the original two-pixel band (about 9-11 nm at 4.6 nm pixels)
        return ndimage.binary_dilation(boundary, structure=np.ones((1, 2, 2), bool))
    # a band of width_nm centred on the label boundary (the boundary pixels lie on one side of it)
    dist = ndimage.distance_transform_edt(~boundary, sampling=(1e9, vox[1], vox[2]))
    return dist <= max(width_nm / 2.0 - vox[1] / 2.0, 0.0)


def _mitochondria(neurons, membrane, vox, rng, n):
    labels = np.zeros(neurons.shape, np.uint32)
    count = 0
    inside = ndimage.distance_transform_edt(~membrane, sampling=vox)
    for _ in range(n * 10):
        if count >= n:
            break
        cand = np.argwhere(inside > 90.0)
        if len(cand) == 0:
            break
        c = cand[rng.integers(len(cand))]
        a, b = rng.uniform(60, 150), rng.uniform(40, 70)
        phi = rng.uniform(0, np.pi)
        n_sec = int(rng.integers(1, 4))
        zs = slice(c[0], min(c[0] + n_sec, neurons.shape[0]))
        r = int(np.ceil(a / vox[1])) + 1
        ys = slice(max(c[1] - r, 0), min(c[1] + r + 1, neurons.shape[1]))
        xs = slice(max(c[2] - r, 0), min(c[2] + r + 1, neurons.shape[2]))
        yy, xx = np.mgrid[ys, xs]
        dy, dx = (yy - c[1]) * vox[1], (xx - c[2]) * vox[2]
        u, v = np.cos(phi) * dx + np.sin(phi) * dy, -np.sin(phi) * dx + np.cos(phi) * dy
        ell = (u / a) ** 2 + (v / b) ** 2 <= 1.0
        region = (slice(zs.start, zs.stop), ys, xs)
        ok = (neurons[region] == neurons[tuple(c)]) & ~membrane[region] & (labels[region] == 0)
        if not np.all(ok[:, ell]):
            continue
        count += 1
        labels[region][:, ell] = count
    return labels


def _synapses(neurons, membrane, vox, rng, n_synapses, tbar_radius_nm=35.0, synapse_sections=None, cleft_width_px=1):
    shape = neurons.shape
    tbar = np.zeros(shape, bool)
    cleft = np.zeros(shape, bool)
    vesicles = np.zeros(shape, np.uint32)
    rows = []
    window_px = int(round(160.0 / vox[1]))
    mem_idx = np.argwhere(membrane)
    yy, xx = np.mgrid[-window_px : window_px + 1, -window_px : window_px + 1]
    disc = yy**2 + xx**2 <= window_px**2
    n_ves = 0
    for _ in range(n_synapses * 30):
        if len({r["synapse_id"] for r in rows}) >= n_synapses or len(mem_idx) == 0:
            break
        z, y, x = mem_idx[rng.integers(len(mem_idx))]
        if not (window_px <= y < shape[1] - window_px and window_px <= x < shape[2] - window_px):
            continue
        ys, xs = slice(y - window_px, y + window_px + 1), slice(x - window_px, x + window_px + 1)
        patch = neurons[z, ys, xs]
        if np.any(tbar[max(z - 1, 0) : z + 2, ys, xs]):
            continue
        ids, counts = np.unique(patch[disc], return_counts=True)
        ids = ids[counts > 0.05 * disc.sum()]
        if ids.size < 3:
            continue
        pre = ids[rng.integers(ids.size)]
        pre_mask = (patch == pre) & disc
        pre_depth = ndimage.distance_transform_edt(pre_mask)
        # T-bar: inside pre, 6-10 px (30-45 nm) from its membrane, near the window centre
        centre_dist = np.hypot(yy, xx)
        score = np.where((pre_depth >= 4) & (pre_depth <= 8), centre_dist, np.inf)
        if not np.isfinite(score.min()):
            continue
        ty, tx = np.unravel_index(np.argmin(score), score.shape)
        near_pre = ndimage.binary_dilation(pre_mask, iterations=3)
        tbar_dist = np.hypot(yy - (ty - window_px), xx - (tx - window_px))
        partners = []
        for post in ids[ids != pre]:
            contact = near_pre & (patch == post) & (tbar_dist * vox[1] <= 150.0)
            if contact.sum() < 3:
                continue
            py, px = np.argwhere(contact)[np.argmin(tbar_dist[contact])]
            partners.append((post, py, px, contact))
        if len(partners) < 2:
            continue
        sid = len({r["synapse_id"] for r in rows}) + 1
        tbar_radius_px = tbar_radius_nm / vox[1]
        t_mask = (tbar_dist <= tbar_radius_px) & pre_mask
        # original simulator (None): T-bar on two sections, cleft on the first only
        z_secs = [zz for zz in range(z, z + (synapse_sections or 2)) if zz < shape[0]]
        for zz in z_secs:
            tbar[zz, ys, xs] |= t_mask & (neurons[zz, ys, xs] == pre)
        near_cleft = tbar_dist * vox[1] <= 150.0
        for post, py, px, contact in partners:
            cleft[z, ys, xs] |= ndimage.binary_dilation(contact, iterations=cleft_width_px) & near_cleft & membrane[z, ys, xs]
            for zz in (z_secs[1:] if synapse_sections else []):  # the same contact on the synapse's further sections, where the neurons still touch
                near_zz = ndimage.binary_dilation(neurons[zz, ys, xs] == pre, iterations=3)
                contact_zz = near_zz & (neurons[zz, ys, xs] == post) & near_cleft
                cleft[zz, ys, xs] |= (ndimage.binary_dilation(contact_zz, iterations=cleft_width_px) & near_cleft
                                      & membrane[zz, ys, xs])
            rows.append(dict(
                synapse_id=sid, pre_label=int(pre), post_label=int(post),
                pre_z_nm=z * vox[0], pre_y_nm=(y - window_px + ty) * vox[1], pre_x_nm=(x - window_px + tx) * vox[2],
                post_z_nm=z * vox[0], post_y_nm=(y - window_px + py) * vox[1], post_x_nm=(x - window_px + px) * vox[2],
            ))
        # vesicle cloud around the T-bar, inside the pre-synaptic neuron
        r_ves_px = rng.uniform(17.5, 22.5) / vox[1]
        n_target, n_placed = int(rng.integers(10, 25)), 0
        for _ in range(200):
            if n_placed >= n_target:
                break
            vz = z_secs[rng.integers(len(z_secs))]
            off = rng.normal(0, 70.0 / vox[1], 2)
            cy, cx = ty + off[0], tx + off[1]
            vdisc = np.hypot(yy - (cy - window_px), xx - (cx - window_px)) <= r_ves_px
            free = (neurons[vz, ys, xs] == pre) & ~membrane[vz, ys, xs] & ~tbar[vz, ys, xs] & (vesicles[vz, ys, xs] == 0)
            if vdisc.sum() > 0 and np.all(free[vdisc]):
                n_ves += 1
                n_placed += 1
                vesicles[vz, ys, xs][vdisc] = n_ves
    table = pd.DataFrame(rows, columns=list(PARTNER_COLUMNS))
    table = table.astype({"synapse_id": "int64", "pre_label": "uint32", "post_label": "uint32"})
    return tbar, cleft, vesicles, table


#: Rendering of the original simulator (the partner packages' training data since they were made).
DEFAULT_APPEARANCE = dict(brightness_range=(0.62, 0.78), membrane_intensity=0.28, tbar_intensity=0.18,
                          blur_px=1.2, noise_sigma=0.05, noise_blur_px=0.0)


#: Keywords of `simulate_sstem_neuropil` that bring simulated neuropil closer to Drosophila VNC
#: ssTEM stack 1 (``benchmarks/realism/compare.py --parts sstem``, ``sstem_vs_vnc`` in
#: ``realism.json``): larger neurites, 28 nm membranes that are less dark, larger and greyer
#: synapses spanning four sections, wider staining differences between neurites, blur-matched grain.
VNC_LIKE = dict(neurites_per_um2=6.0, membrane_width_nm=28.0, tbar_radius_nm=50.0, synapse_sections=4,
                cleft_width_px=2, brightness_range=(0.55, 0.85), membrane_intensity=0.45, tbar_intensity=0.34,
                blur_px=1.2, noise_sigma=0.045, noise_blur_px=0.7)


def _render(labels, vox, rng, brightness_range, membrane_intensity, tbar_intensity, blur_px, noise_sigma,
            noise_blur_px):
    neurons, membrane, mito = labels["neurons"], labels["membrane"], labels["mitochondria"]
    shape = neurons.shape
    brightness = rng.uniform(brightness_range[0], brightness_range[1], int(neurons.max()) + 1)
    img = brightness[neurons].astype(np.float32)
    img += 0.05 * smooth_noise(shape, (0.5, 2.0, 2.0), rng)
    img[membrane] = membrane_intensity
    mito_mask = mito > 0
    cristae = smooth_noise(shape, (0.5, 1.5, 1.5), rng) > 0.6
    img[mito_mask] = 0.40
    img[mito_mask & cristae] = 0.28
    ves = labels["vesicles"] > 0
    ring = ves & ~ndimage.binary_erosion(ves, structure=np.ones((1, 3, 3), bool))
    img[ves] = 0.62
    img[ring] = 0.38
    img[labels["tbar"]] = tbar_intensity
    img = ndimage.gaussian_filter(img, (0.0, blur_px, blur_px))
    noise = rng.normal(0.0, noise_sigma, shape).astype(np.float32)
    if noise_blur_px > 0:  # grain coarser than a pixel; rescaled so that noise_sigma stays its std
        noise = ndimage.gaussian_filter(noise, (0.0, noise_blur_px, noise_blur_px))
        noise *= noise_sigma / max(float(noise.std()), 1e-12)
    img += noise
    img *= rng.uniform(0.9, 1.1, (shape[0], 1, 1)).astype(np.float32)  # section-to-section staining
    return np.clip(img * 255.0, 0, 255).astype(np.uint8)


def simulate_sstem_neuropil(
    shape: tuple = (16, 256, 256),
    voxel_size_nm: tuple = (45.0, 4.6, 4.6),
    seed: int = 0,
    *,
    n_neurons: int | None = None,
    n_synapses: int = 4,
    n_mitochondria: int = 6,
    neurites_per_um2: float = 18.0,
    membrane_width_nm: float | None = None,
    tbar_radius_nm: float = 35.0,
    synapse_sections: int | None = None,
    cleft_width_px: int = 1,
    brightness_range: tuple = DEFAULT_APPEARANCE["brightness_range"],
    membrane_intensity: float = DEFAULT_APPEARANCE["membrane_intensity"],
    tbar_intensity: float = DEFAULT_APPEARANCE["tbar_intensity"],
    blur_px: float = DEFAULT_APPEARANCE["blur_px"],
    noise_sigma: float = DEFAULT_APPEARANCE["noise_sigma"],
    noise_blur_px: float = DEFAULT_APPEARANCE["noise_blur_px"],
) -> SimulatedNeuropil:
    """Anisotropic ssTEM neuropil with neurons, mitochondria and polyadic synapses.

    Parameters
    ----------
    shape : (Z, Y, X) tuple of int
        Sections x rows x columns.
    voxel_size_nm : (z, y, x) tuple of float
        Section thickness and pixel size in nm (defaults match the
        Drosophila VNC data: 45 nm sections, 4.6 nm pixels).
    seed : int
        Seed of the only random generator used.
    n_neurons : int, optional
        Number of neurite lines; scales with the field of view by default.
    n_synapses : int
        Number of polyadic synapses to place (fewer if the geometry has no
        room).
    n_mitochondria : int
        Number of mitochondria to place.
    neurites_per_um2 : float
        Neurite lines per um^2 of section area (sets the calibre) when ``n_neurons`` is not given.
    membrane_width_nm : float, optional
        Width of the membrane band in nm; default a two-pixel band (about 9-11 nm at 4.6 nm).
    tbar_radius_nm : float
        In-plane radius of the T-bar (pre-synaptic density).
    synapse_sections : int, optional
        Sections a synapse spans (T-bar, and cleft where the partners still touch); default
        the T-bar on two sections and the cleft on the first.
    cleft_width_px : int
        In-plane dilation of the contact that makes the cleft mask, in pixels.
    brightness_range, membrane_intensity, tbar_intensity : float
        Rendering intensities in [0, 1] (cytoplasm per neuron drawn from the range).
    blur_px : float
        In-plane Gaussian blur of the rendered image, sigma in pixels.
    noise_sigma, noise_blur_px : float
        Standard deviation (of [0, 1] intensity) and in-plane grain (sigma in pixels) of the
        additive noise.

    The defaults are the original simulator: every keyword above at its default reproduces
    its volumes exactly (the partner packages' held-out seeds). `VNC_LIKE` holds values that
    bring the statistics closer to Drosophila VNC ssTEM (``benchmarks/realism``).

    Returns
    -------
    SimulatedNeuropil
        ``partners`` has one row per (pre, post) pair of every synapse, with
        the T-bar centre as pre-synaptic and the closest contact as
        post-synaptic location, in nm.
    """
    if len(shape) != 3:
        raise ValueError(f"`shape` {shape} must have 3 entries (z, y, x)")
    check_voxel_size(voxel_size_nm, 3)  # finite, > 0 nm, (z, y, x); ValueError otherwise
    rng = np.random.default_rng(seed)
    vox = np.asarray(voxel_size_nm, float)
    area_um2 = shape[1] * shape[2] * vox[1] * vox[2] / 1e6
    if not ((synapse_sections is None or synapse_sections >= 1) and cleft_width_px >= 1 and neurites_per_um2 > 0 and tbar_radius_nm > 0):
        raise ValueError("synapse_sections and cleft_width_px must be >= 1, neurites_per_um2 and tbar_radius_nm > 0")
    n_neurons = n_neurons or max(int(round(neurites_per_um2 * area_um2)), 6)
    neurons = _neurons(tuple(shape), vox, rng, n_neurons)
    membrane = _membranes(neurons, vox, membrane_width_nm)
    mito = _mitochondria(neurons, membrane, vox, rng, n_mitochondria)
    tbar, cleft, vesicles, partners = _synapses(neurons, membrane, vox, rng, n_synapses, tbar_radius_nm,
                                                synapse_sections and int(synapse_sections), int(cleft_width_px))
    labels = dict(neurons=neurons, membrane=membrane, mitochondria=mito, vesicles=vesicles,
                  tbar=tbar, synapses=tbar | cleft)
    look = dict(brightness_range=tuple(brightness_range), membrane_intensity=membrane_intensity,
                tbar_intensity=tbar_intensity, blur_px=blur_px, noise_sigma=noise_sigma, noise_blur_px=noise_blur_px)
    raw = _render(labels, vox, rng, **look)
    params = dict(shape=tuple(shape), voxel_size_nm=tuple(vox), seed=seed, n_neurons=n_neurons,
                  n_synapses=n_synapses, n_mitochondria=n_mitochondria, neurites_per_um2=neurites_per_um2,
                  membrane_width_nm=membrane_width_nm, tbar_radius_nm=tbar_radius_nm,
                  synapse_sections=synapse_sections, cleft_width_px=int(cleft_width_px), **look)
    return SimulatedNeuropil(raw, labels, partners, tuple(float(v) for v in vox), params)
