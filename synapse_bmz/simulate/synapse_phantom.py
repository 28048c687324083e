"""Ground-truth phantom of a synapse: materials, exact labels, vesicle table.

The phantom is built in physical units (nm) on the voxel grid of the final
tomogram. A curved synaptic interface separates a pre-synaptic bouton from
a post-synaptic spine by the cleft; the interface is tilted only slightly
out of the x-y plane's normal, as in tomograms chosen for analysis, where
the synaptic membranes run roughly along the beam (z).

Order of construction (later objects avoid earlier ones): compartments and
their membranes; active zone, post-synaptic density and (ribbon variant)
ribbon with pre-synaptic density; dense projections; mitochondria;
dense-core vesicles; microtubules; synaptic vesicles (docked, tethered,
ribbon-attached, distant); actin-like filaments as clutter.
"""

from __future__ import annotations

from dataclasses import dataclass

import edt
import numpy as np
import pandas as pd
from scipy import ndimage

from .materials import Material
from .shapes import ball_distance_nm, box_around, local_coords_nm, segment_distance_nm, smooth_noise
from .vesicle_table import VESICLE_COLUMNS, empty_vesicle_table

__all__ = ["SynapsePhantom", "build_synapse_phantom"]

DOCKED_MAX_NM = 2.0
TETHERED_MAX_NM = 45.0


@dataclass
class SynapsePhantom:
    """Noise-free synapse model on a voxel grid.

    Attributes
    ----------
    materials : (Z, Y, X) ndarray of uint8
        :class:`~synapse_bmz.simulate.materials.Material` index per voxel.
    labels : dict of str to (Z, Y, X) ndarray
        Instance labels (uint32) and masks (bool); see
        :func:`~synapse_bmz.simulate.simulate_tomogram`.
    vesicles : pandas.DataFrame
        One row per synaptic vesicle (columns in ``VESICLE_COLUMNS``).
    voxel_size_nm : tuple of float
        (z, y, x) voxel size in nm.
    """

    materials: np.ndarray
    labels: dict
    vesicles: pd.DataFrame
    voxel_size_nm: tuple


class _Builder:
    """Mutable state while building one phantom (internal)."""

    def __init__(self, shape, voxel_size_nm, rng, membrane_thickness_nm, cleft_width_nm):
        self.shape = tuple(int(s) for s in shape)
        self.vox = tuple(float(v) for v in voxel_size_nm)
        self.rng = rng
        self.t_mem = float(membrane_thickness_nm)
        self.cleft = float(cleft_width_nm)
        self.extent = np.array(self.shape) * np.array(self.vox)
        self.materials = np.zeros(self.shape, np.uint8)
        self.vesicle_rows: list[dict] = []
        self.vesicles = np.zeros(self.shape, np.uint32)

    # -- interface and compartments ------------------------------------
    def interface(self):
        rng, (ez, ey, ex) = self.rng, self.extent
        self.yc = ey * rng.uniform(0.45, 0.55)
        self.zc = ez / 2.0
        self.xc = ex * rng.uniform(0.5, 0.6)
        radius_curv_nm = rng.uniform(400.0, 1200.0) * rng.choice([-1.0, 1.0])
        slope_z = rng.uniform(-0.25, 0.25)
        z, y, x = local_coords_nm(tuple(slice(0, s) for s in self.shape), self.vox)
        surface = self.xc + (y - self.yc) ** 2 / (2 * radius_curv_nm) + slope_z * (z - self.zc)
        self._surface = lambda yy, zz: (
            self.xc + (yy - self.yc) ** 2 / (2 * radius_curv_nm) + slope_z * (zz - self.zc)
        )
        self.s = (x - surface).astype(np.float32)  # signed offset along x from the cleft centre
        self.y_off = np.broadcast_to((y - self.yc).astype(np.float32), self.shape)

    def compartments(self):
        rng, (ez, ey, ex) = self.rng, self.extent
        z, y, x = local_coords_nm(tuple(slice(0, s) for s in self.shape), self.vox)
        half_cleft = self.cleft / 2.0
        a_x, a_y = ex * rng.uniform(0.5, 0.65), ey * rng.uniform(0.55, 0.7)
        b_x, b_y = ex * rng.uniform(0.3, 0.45), ey * rng.uniform(0.4, 0.55)
        ell_pre = ((x - (self.xc - 0.7 * a_x)) / a_x) ** 2 + ((y - self.yc) / a_y) ** 2
        ell_post = ((x - (self.xc + 0.6 * b_x)) / b_x) ** 2 + ((y - self.yc) / b_y) ** 2
        self.contact_half_nm = min(a_y * np.sqrt(1 - 0.7**2), b_y * np.sqrt(1 - 0.6**2))
        comp = np.zeros(self.shape, np.uint32)
        comp[(ell_pre < 1.0) & (self.s < -half_cleft)] = 1
        comp[(ell_post < 1.0) & (self.s > half_cleft)] = 2
        # neighbouring processes in the remaining neuropil
        outside_nm = edt.edt(comp == 0, anisotropy=self.vox, black_border=False)
        next_id = 3
        for _ in range(int(rng.integers(1, 4))):
            free = np.argwhere(outside_nm > 40.0)
            if len(free) == 0:
                break
            c_nm = free[rng.integers(len(free))] * np.array(self.vox)
            r_y, r_x = rng.uniform(50, 140, size=2)
            ell = ((y - c_nm[1]) / r_y) ** 2 + ((x - c_nm[2]) / r_x) ** 2
            region = (ell < 1.0) & (outside_nm > 15.0) & (comp == 0)
            if region.sum() > 200:
                comp[region] = next_id
                next_id += 1
                outside_nm = edt.edt(comp == 0, anisotropy=self.vox, black_border=False)
        self.comp = comp
        self.dist_in = edt.edt(comp, anisotropy=self.vox, black_border=False).astype(np.float32)
        self.membrane = (comp > 0) & (self.dist_in <= self.t_mem)
        self.materials[comp > 0] = Material.CYTOSOL
        self.materials[self.membrane] = Material.MEMBRANE

    # -- synaptic specialisations --------------------------------------
    def active_zone_and_psd(self, az_half_nm):
        rng = self.rng
        half_cleft = self.cleft / 2.0
        self.az_half = float(min(az_half_nm, 0.85 * self.contact_half_nm))
        lateral = np.abs(self.y_off) <= self.az_half
        facing = self.s >= -half_cleft - self.t_mem - 1.5 * self.vox[2]
        self.az = self.membrane & (self.comp == 1) & facing & lateral
        noise_2d = smooth_noise(self.shape[:2], (4.0, 6.0), rng)[:, :, None]
        psd_depth = rng.uniform(20.0, 35.0) * (1.0 + 0.25 * noise_2d)
        psd_half = self.az_half * rng.uniform(0.9, 1.05)
        self.psd = (
            (self.comp == 2) & (self.s <= half_cleft + psd_depth) & (np.abs(self.y_off) <= psd_half)
        )
        self.materials[self.psd & ~self.membrane] = Material.PSD
        self.dist_az = edt.edt(~self.az, anisotropy=self.vox, black_border=False).astype(np.float32)

    def ribbon(self):
        rng = self.rng
        inner = -self.cleft / 2.0 - self.t_mem
        pd_height = rng.uniform(20.0, 30.0)
        pd_half_width = rng.uniform(20.0, 30.0)
        ribbon_length = rng.uniform(150.0, 250.0)
        self.ribbon_half_thickness = rng.uniform(12.0, 17.0)
        pre_cyto = (self.comp == 1) & ~self.membrane
        self.pd = pre_cyto & (self.s >= inner - pd_height) & (np.abs(self.y_off) <= pd_half_width)
        self.rib = (
            pre_cyto
            & (self.s < inner - pd_height)
            & (self.s >= inner - pd_height - ribbon_length)
            & (np.abs(self.y_off) <= self.ribbon_half_thickness)
        )
        self.ribbon_s_range = (inner - pd_height - ribbon_length, inner - pd_height)
        self.materials[self.pd] = Material.PRESYNAPTIC_DENSITY
        self.materials[self.rib] = Material.RIBBON

    def dense_projections(self, n):
        inner = -self.cleft / 2.0 - self.t_mem
        for _ in range(n):
            r = self.rng.uniform(8.0, 14.0)
            y = self.yc + self.rng.uniform(-self.az_half, self.az_half) * 0.9
            z = self.rng.uniform(0, self.extent[0])
            c = np.array([z, y, self._surface(y, z) + inner - r * 0.6])
            box = box_around(c, [r] * 3, self.vox, self.shape)
            if box is None:
                continue
            blob = (ball_distance_nm(box, c, self.vox) <= r) & (self.materials[box] == Material.CYTOSOL)
            blob &= self.comp[box] == 1
            self.materials[box][blob] = Material.DENSE_PROJECTION

    # -- organelles -----------------------------------------------------
    def _free(self, box, mask, compartment):
        """True if ``mask`` in ``box`` only covers free cytosol of ``compartment``."""
        ok = (self.materials[box] == Material.CYTOSOL) & (self.comp[box] == compartment)
        return bool(np.all(ok[mask]))

    def _random_point(self, compartment, min_depth_nm, min_az_nm=0.0):
        cand = (self.comp == compartment) & (self.dist_in >= min_depth_nm)
        if min_az_nm > 0:
            cand &= self.dist_az >= min_az_nm
        idx = np.flatnonzero(cand)
        if idx.size == 0:
            return None
        return np.array(np.unravel_index(idx[self.rng.integers(idx.size)], self.shape)) * np.array(self.vox)

    def mitochondria(self):
        labels = np.zeros(self.shape, np.uint32)
        n = 0
        for compartment, prob in ((1, 0.85), (2, 0.4), (3, 0.3)):
            if self.rng.random() > prob:
                continue
            for _ in range(25):
                semi = np.array([self.rng.uniform(45, 70), self.rng.uniform(40, 60), self.rng.uniform(80, 150)])
                c = self._random_point(compartment, semi[1] * 0.5, min_az_nm=semi[1] + 40)
                if c is None:
                    break
                if self._paint_mitochondrion(c, semi, labels, n + 1, compartment):
                    n += 1
                    break
        self.mito = labels

    def _paint_mitochondrion(self, center, semi, labels, label_id, compartment):
        phi = self.rng.uniform(0, np.pi)
        box = box_around(center, [semi[0], semi.max(), semi.max()], self.vox, self.shape)
        if box is None:
            return False
        z, y, x = local_coords_nm(box, self.vox)
        dy, dx = y - center[1], x - center[2]
        u = np.cos(phi) * dx + np.sin(phi) * dy  # long axis
        v = -np.sin(phi) * dx + np.cos(phi) * dy
        inside = ((z - center[0]) / semi[0]) ** 2 + (v / semi[1]) ** 2 + (u / semi[2]) ** 2 <= 1.0
        if inside.sum() < 50 or not self._free(box, inside, compartment):
            return False
        depth = edt.edt(inside, anisotropy=self.vox, black_border=False)
        mat = self.materials[box]
        mat[inside] = Material.MITO_MATRIX
        mat[inside & (depth <= 3.5)] = Material.MITO_MEMBRANE
        mat[inside & (depth > 3.5) & (depth <= 7.0)] = Material.CYTOSOL
        mat[inside & (depth > 7.0) & (depth <= 10.0)] = Material.MITO_MEMBRANE
        spacing = self.rng.uniform(25.0, 40.0)
        phase = np.abs(((u + 1000.0) % spacing) - spacing / 2.0)
        gaps = smooth_noise(inside.shape, 3.0, self.rng) > -0.6
        cristae = inside & (depth > 10.0) & (phase <= 3.0) & gaps
        mat[cristae] = Material.MITO_MEMBRANE
        labels[box][inside] = label_id
        return True

    def dense_core_vesicles(self):
        labels = np.zeros(self.shape, np.uint32)
        n = 0
        for _ in range(int(self.rng.integers(0, 3))):
            for _ in range(20):
                r = self.rng.uniform(35.0, 45.0)
                c = self._random_point(1, self.t_mem + r + 2, min_az_nm=r + 60)
                if c is None:
                    break
                box = box_around(c, [r + 2] * 3, self.vox, self.shape)
                d = ball_distance_nm(box, c, self.vox)
                if not self._free(box, d <= r + 2, 1):
                    continue
                offset = self.rng.normal(0, 4.0, size=3)
                d_core = ball_distance_nm(box, c + offset, self.vox)
                mat = self.materials[box]
                mat[d <= r] = Material.VESICLE_LUMEN
                mat[(d <= r) & (d_core <= 0.65 * r)] = Material.DENSE_CORE
                mat[(d <= r) & (d > r - 5.0)] = Material.VESICLE_MEMBRANE
                n += 1
                labels[box][d <= r] = n
                break
        self.dcv = labels

    def microtubules(self):
        labels = np.zeros(self.shape, bool)
        for compartment in np.unique(self.comp)[1:]:
            for _ in range(int(self.rng.poisson(0.8))):
                c = self._random_point(compartment, 20.0)
                if c is None:
                    continue
                direction = self.rng.normal(size=3) * np.array([0.25, 1.0, 1.0])
                direction /= np.linalg.norm(direction)
                a, b = c - 600 * direction, c + 600 * direction
                box = box_around((a + b) / 2, np.abs(b - a) / 2 + 14, self.vox, self.shape)
                if box is None:
                    continue
                d = segment_distance_nm(box, a, b, self.vox)
                ok = (self.materials[box] == Material.CYTOSOL) & (self.comp[box] == compartment)
                tube = ok & (d <= 12.5)
                # the lumen stays cytosol; ``self.mt`` keeps vesicles out of it
                self.materials[box][tube & (d >= 7.5)] = Material.MICROTUBULE
                labels[box] |= tube
        self.mt = labels

    # -- synaptic vesicles ----------------------------------------------
    def _try_vesicle(self, center, radius, pool, margin_nm):
        box = box_around(center, [radius + margin_nm + 1] * 3, self.vox, self.shape)
        if box is None or not np.all((center >= 0) & (center < self.extent)):
            return False
        d = ball_distance_nm(box, center, self.vox)
        if not self._free(box, (d <= radius + margin_nm) & ~self.mt[box], 1) or np.any(self.mt[box][d <= radius]):
            return False
        c_idx = tuple(np.minimum((center / self.vox).astype(int), np.array(self.shape) - 1))
        dist_az = float(self.dist_az[c_idx]) - radius
        label_id = len(self.vesicle_rows) + 1
        mat = self.materials[box]
        ball = d <= radius
        mat[ball] = Material.VESICLE_LUMEN
        mat[ball & (d > radius - 4.5)] = Material.VESICLE_MEMBRANE
        self.vesicles[box][ball] = label_id
        self.vesicle_rows.append(
            dict(label=label_id, center_z_nm=center[0], center_y_nm=center[1], center_x_nm=center[2],
                 radius_nm=radius, pool=pool, distance_to_az_nm=max(dist_az, 0.0))
        )
        return True

    def _radius(self):
        return float(np.clip(self.rng.normal(20.0, 1.8), 17.5, 25.0))

    def _near_az_center(self, radius, gap_nm):
        y = self.yc + self.rng.uniform(-1, 1) * max(self.az_half - radius, 1.0)
        z = self.rng.uniform(0, self.extent[0])
        x = self._surface(y, z) - self.cleft / 2.0 - self.t_mem - gap_nm - radius
        return np.array([z, y, x])

    def docked_and_tethered(self, n_docked, n_tethered):
        for pool, n, gap_range, margin in (("docked", n_docked, (0.3, 1.5), 0.0), ("tethered", n_tethered, (6.0, 40.0), 1.5)):
            placed = 0
            for _ in range(40 * max(n, 1)):
                if placed >= n:
                    break
                r = self._radius()
                c = self._near_az_center(r, self.rng.uniform(*gap_range))
                c_idx = tuple(np.clip((c / self.vox).astype(int), 0, np.array(self.shape) - 1))
                gap = float(self.dist_az[c_idx]) - r
                limit = DOCKED_MAX_NM if pool == "docked" else TETHERED_MAX_NM
                if pool == "tethered" and not (DOCKED_MAX_NM + 2.0 < gap <= limit):
                    continue
                if pool == "docked" and gap > limit:
                    continue
                if self._try_vesicle(c, r, pool, margin):
                    placed += 1
                    if pool == "tethered":
                        self._tether(c, r, gap)

    def _tether(self, center, radius, gap_nm):
        start = center + np.array([0, 0, radius])
        end = start + np.array([0, self.rng.normal(0, 3.0), gap_nm + 2.0])
        box = box_around((start + end) / 2, np.abs(end - start) / 2 + 3, self.vox, self.shape)
        if box is None:
            return
        d = segment_distance_nm(box, start, end, self.vox)
        free = (self.materials[box] == Material.CYTOSOL) & (d <= 1.8)
        self.materials[box][free] = Material.TETHER

    def ribbon_vesicles(self):
        lo, hi = self.ribbon_s_range
        for _ in range(400):
            r = self._radius()
            side = self.rng.choice([-1.0, 1.0])
            y = self.yc + side * (self.ribbon_half_thickness + self.rng.uniform(2.0, 6.0) + r)
            z = self.rng.uniform(0, self.extent[0])
            x = self._surface(y, z) + self.rng.uniform(lo + r, hi)
            self._try_vesicle(np.array([z, y, x]), r, "ribbon", 0.5)

    def distant(self, vesicle_fraction):
        pre_volume = float(((self.comp == 1) & (self.materials == Material.CYTOSOL)).sum())
        target = vesicle_fraction * pre_volume
        filled = float((self.vesicles > 0).sum())
        candidates = np.flatnonzero((self.comp == 1) & (self.dist_in >= self.t_mem + 19.0) & (self.dist_az >= TETHERED_MAX_NM + 20.0))
        if candidates.size == 0:
            return
        # vesicle clouds crowd towards the active zone
        weight = np.exp(-self.dist_az.ravel()[candidates] / 150.0)
        cumulative = np.cumsum(weight / weight.sum())
        for _ in range(3000):
            if filled >= target:
                break
            r = self._radius()
            pick = min(int(np.searchsorted(cumulative, self.rng.random())), candidates.size - 1)
            c = np.array(np.unravel_index(candidates[pick], self.shape)) * np.array(self.vox)
            c = c + self.rng.uniform(-0.5, 0.5, 3) * np.array(self.vox)
            c_idx = tuple(np.clip((c / self.vox).astype(int), 0, np.array(self.shape) - 1))
            if self.dist_az[c_idx] - r <= TETHERED_MAX_NM:
                continue
            if self._try_vesicle(c, r, "distant", 1.5):
                filled += 4.19 * r**3 / np.prod(self.vox)

    def filaments(self):
        for _ in range(int(self.rng.integers(10, 25))):
            c = self.rng.uniform(0, 1, 3) * self.extent
            direction = self.rng.normal(size=3) * np.array([0.3, 1.0, 1.0])
            direction /= np.linalg.norm(direction)
            half = self.rng.uniform(25.0, 100.0)
            a, b = c - half * direction, c + half * direction
            box = box_around(c, np.abs(b - a) / 2 + 5, self.vox, self.shape)
            if box is None:
                continue
            d = segment_distance_nm(box, a, b, self.vox)
            mat = self.materials[box]
            free = ((mat == Material.CYTOSOL) | (mat == Material.EXTRACELLULAR)) & (d <= 3.5)
            mat[free] = Material.FILAMENT


def build_synapse_phantom(
    shape: tuple,
    voxel_size_nm: tuple,
    rng: np.random.Generator,
    *,
    ribbon: bool = False,
    cleft_width_nm: float = 20.0,
    membrane_thickness_nm: float = 5.0,
    active_zone_half_length_nm: float | None = None,
    n_docked: int | None = None,
    n_tethered: int | None = None,
    vesicle_fraction: float = 0.3,
) -> SynapsePhantom:
    """Build the ground-truth synapse model (no imaging).

    Parameters
    ----------
    shape : tuple of int
        (Z, Y, X) number of voxels.
    voxel_size_nm : tuple of float
        (z, y, x) voxel size in nm.
    rng : numpy.random.Generator
        Source of all randomness (the phantom is a pure function of it).
    ribbon : bool
        Add a synaptic ribbon anchored by a pre-synaptic density, with
        ribbon-attached vesicles (pool ``'ribbon'``).
    cleft_width_nm : float
        Gap between the outer surfaces of pre- and post-synaptic membranes.
    membrane_thickness_nm : float
        Thickness of the (stained) plasma membranes.
    active_zone_half_length_nm : float, optional
        Half length of the active zone along y; random 80-140 nm by default,
        limited to the contact between the compartments.
    n_docked, n_tethered : int, optional
        Number of docked (0-2 nm from the AZ membrane) and tethered
        (2-45 nm, with a tether filament) vesicles; random by default.
    vesicle_fraction : float
        Fraction of the free pre-synaptic cytosol filled with vesicles.

    Returns
    -------
    SynapsePhantom
    """
    b = _Builder(shape, voxel_size_nm, rng, membrane_thickness_nm, cleft_width_nm)
    b.interface()
    b.compartments()
    az_half = active_zone_half_length_nm or rng.uniform(80.0, 140.0)
    b.active_zone_and_psd(az_half)
    if ribbon:
        b.ribbon()
    else:
        b.pd = np.zeros(b.shape, bool)
        b.rib = np.zeros(b.shape, bool)
    b.dense_projections(int(rng.integers(2, 6)) if not ribbon else 0)
    b.mitochondria()
    b.dense_core_vesicles()
    b.microtubules()
    scale = max(b.az_half / 110.0, 0.3) * shape[0] * voxel_size_nm[0] / 96.0
    nd = n_docked if n_docked is not None else int(rng.integers(2, 6) * scale + 0.5)
    nt = n_tethered if n_tethered is not None else int(rng.integers(4, 10) * scale + 0.5)
    b.docked_and_tethered(nd, nt)
    if ribbon:
        b.ribbon_vesicles()
    b.distant(vesicle_fraction)
    b.filaments()
    table = pd.DataFrame(b.vesicle_rows, columns=VESICLE_COLUMNS) if b.vesicle_rows else empty_vesicle_table()
    table = table.astype({"label": "uint32", "pool": "string"})
    labels = {
        "vesicles": b.vesicles,
        "compartments": b.comp,
        "mitochondria": b.mito,
        "dense_core_vesicles": b.dcv,
        "active_zone": b.az,
        "psd": b.psd,
        "membrane": b.membrane,
        "ribbon": b.rib,
        "presynaptic_density": b.pd,
        "microtubules": b.mt,
    }
    return SynapsePhantom(b.materials, labels, table, tuple(float(v) for v in voxel_size_nm))
