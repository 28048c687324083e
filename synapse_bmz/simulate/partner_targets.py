"""Training targets for synaptic-partner networks from a simulated neuropil's exact partners.

From `simulate_sstem_neuropil` (neurons, membranes and the partner table in
nm) this makes

- **Synful** targets: a post-synaptic mask (the post-synaptic neuron's
  voxels within ``post_radius_nm`` of each partner's post-site, in its
  section, membranes excluded) and, in that mask, the vector in nm
  (z, y, x) from each voxel to the partner's pre-synaptic site (the T-bar
  centre);
- **polarity** targets (pytorch_connectomics): pre-synaptic region (the
  pre-synaptic neuron within ``pre_radius_nm`` of the T-bar), the
  post-synaptic mask above, and their union.

Post masks are drawn in the site's section only: ssTEM sections are 40-50 nm
thick and membranes are only drawn in-plane, so a ball across sections would
join neighbouring post-synaptic neurons into one component. A voxel claimed by
two partners (one neuron post-synaptic to two nearby T-bars) goes to the
nearer post-site.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import ndimage

from postprocessing._units import check_voxel_size

__all__ = ["PartnerTargets", "partner_targets", "ground_truth_partners"]


@dataclass
class PartnerTargets:
    """Targets of one simulated volume, all (Z, Y, X) unless noted.

    Attributes
    ----------
    post : ndarray of float32 in {0, 1}
        Post-synaptic mask.
    vectors : (3, Z, Y, X) ndarray of float32
        nm (z, y, x) from each post-synaptic voxel to its pre-site; 0 outside ``post``.
    pre : ndarray of float32 in {0, 1}
        Pre-synaptic region.
    union : ndarray of float32 in {0, 1}
        ``pre | post``.
    """

    post: np.ndarray
    vectors: np.ndarray
    pre: np.ndarray
    union: np.ndarray

    def synful(self) -> np.ndarray:
        """(4, Z, Y, X) float32: post mask, vector z, y, x (nm)."""
        return np.concatenate([self.post[None], self.vectors]).astype(np.float32)

    def polarity(self) -> np.ndarray:
        """(3, Z, Y, X) float32: pre, post, union."""
        return np.stack([self.pre, self.post, self.union]).astype(np.float32)


def _disc_region(centre_nm, vox, shape, radius_nm):
    """(section index, y slice, x slice, squared in-plane distance in nm^2 of the window)."""
    z = int(round(centre_nm[0] / vox[0]))
    cy, cx = centre_nm[1] / vox[1], centre_nm[2] / vox[2]
    ry, rx = int(np.ceil(radius_nm / vox[1])) + 1, int(np.ceil(radius_nm / vox[2])) + 1
    ys = slice(max(int(np.floor(cy)) - ry, 0), min(int(np.ceil(cy)) + ry + 1, shape[1]))
    xs = slice(max(int(np.floor(cx)) - rx, 0), min(int(np.ceil(cx)) + rx + 1, shape[2]))
    yy, xx = np.mgrid[ys, xs]
    d2 = ((yy - cy) * vox[1]) ** 2 + ((xx - cx) * vox[2]) ** 2
    return min(max(z, 0), shape[0] - 1), ys, xs, d2, yy, xx


def _nearest_piece(inside: np.ndarray, d2: np.ndarray) -> np.ndarray:
    """The 8-connected piece of ``inside`` nearest to the site: a disc cut by a thin neurite
    would otherwise give one partner several components."""
    pieces, n = ndimage.label(inside, structure=np.ones((3, 3), bool))
    if n <= 1:
        return inside
    return pieces == pieces.ravel()[np.argmin(np.where(inside, d2, np.inf).ravel())]


def partner_targets(neurons: np.ndarray, membrane: np.ndarray, partners: pd.DataFrame,
                    voxel_size_nm: Sequence[float], *, post_radius_nm: float = 50.0,
                    pre_radius_nm: float = 100.0) -> PartnerTargets:
    """Synful and polarity targets from neurons and a partner table.

    Parameters
    ----------
    neurons : (Z, Y, X) ndarray of int
        Neuron ids (`SimulatedNeuropil.labels['neurons']`).
    membrane : (Z, Y, X) ndarray of bool
        Membrane voxels (excluded from the masks).
    partners : pandas.DataFrame
        `SimulatedNeuropil.partners`: ``pre_label``, ``post_label`` and the
        sites ``pre_{z,y,x}_nm``, ``post_{z,y,x}_nm`` (nm from voxel (0, 0, 0)).
    voxel_size_nm : sequence of 3 float
        (z, y, x) in nm.
    post_radius_nm, pre_radius_nm : float
        In-plane radius in nm of the post-synaptic mask around each post-site
        (default 50 nm) and of the pre-synaptic region around each pre-site
        (default 100 nm: the simulator's contacts lie up to 150 nm from the
        T-bar, so a 40 nm in-plane dilation of the synapse region joins every
        partner to its pre-synaptic region, while the pre-site found at the
        region's distance maximum stays within 100 nm of the T-bar; 150 nm
        moved it farther in a third of the synapses). Each is the one
        8-connected piece nearest to its site.

    Returns
    -------
    PartnerTargets
    """
    vox = np.asarray(check_voxel_size(voxel_size_nm, 3))
    shape = neurons.shape
    if membrane.shape != shape:
        raise ValueError(f"`membrane` (shape {membrane.shape}) must have the shape of `neurons` {shape}")
    post = np.zeros(shape, bool)
    pre = np.zeros(shape, bool)
    vectors = np.zeros((3,) + shape, np.float32)
    best = np.full(shape, np.inf, np.float32)
    for row in partners.itertuples(index=False):
        post_nm = np.array([row.post_z_nm, row.post_y_nm, row.post_x_nm], float)
        pre_nm = np.array([row.pre_z_nm, row.pre_y_nm, row.pre_x_nm], float)
        z, ys, xs, d2, yy, xx = _disc_region(post_nm, vox, shape, post_radius_nm)
        inside = _nearest_piece((d2 <= post_radius_nm ** 2) & (neurons[z, ys, xs] == row.post_label)
                                & ~membrane[z, ys, xs], d2)
        closer = inside & (d2 < best[z, ys, xs])
        best[z, ys, xs][closer] = d2[closer]
        post[z, ys, xs] |= inside
        for a, coord in enumerate((np.full_like(yy, z), yy, xx)):
            vectors[a, z, ys, xs][closer] = (pre_nm[a] - coord * vox[a])[closer]
        z, ys, xs, d2, _, _ = _disc_region(pre_nm, vox, shape, pre_radius_nm)
        pre[z, ys, xs] |= _nearest_piece((d2 <= pre_radius_nm ** 2) & (neurons[z, ys, xs] == row.pre_label)
                                         & ~membrane[z, ys, xs], d2)
    vectors[:, ~post] = 0.0
    return PartnerTargets(post.astype(np.float32), vectors, pre.astype(np.float32),
                          (pre | post).astype(np.float32))


def ground_truth_partners(sim) -> pd.DataFrame:
    """The simulation's partner table in the evaluation's column names.

    ``pre_id``/``post_id`` are the neuron ids, positions in nm (T-bar centre
    and closest contact, `simulate_sstem_neuropil`).
    """
    t = sim.partners
    out = t[["pre_z_nm", "pre_y_nm", "pre_x_nm", "post_z_nm", "post_y_nm", "post_x_nm"]].astype(float).copy()
    out["score"] = 1.0
    out["pre_id"] = pd.array(t["pre_label"].astype("int64"), dtype="Int64")
    out["post_id"] = pd.array(t["post_label"].astype("int64"), dtype="Int64")
    return out.reset_index(drop=True)
