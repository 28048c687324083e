"""Recipe dispatcher: a model's prediction in, instance labels out.

A bioimage.io package names its recipe in ``config.synapse_bmz``; the runner
calls ``apply_recipe(name, prediction, voxel_size_nm, params)``. Each recipe
takes the channel-first prediction ``(C, Z, Y, X)`` or ``(C, Y, X)`` and
returns uint32 labels of the spatial shape. Channel order per recipe:

==============  ==========================================  =================
recipe          channels                                    function
==============  ==========================================  =================
vesicles        (foreground, boundary[, distance])          segment_vesicles
mitochondria    (foreground, boundary)                      segment_mitochondria
active_zone     (active zone,)                              segment_active_zone
clefts          (cleft,)                                    segment_clefts
compartments    (boundary,)                                 segment_compartments
ribbon          (ribbon, presynaptic density, membrane)     segment_ribbon
synful_partners (post_synaptic, vector z, y, x in nm)       partners.partner_sites_labels
polarity_partn. (pre_synaptic, post_synaptic, synapse)      partners.partner_sites_labels
==============  ==========================================  =================

``ribbon`` returns one volume with ribbon = 1, presynaptic density = 2,
membrane = 3. The two partner recipes label the post-synaptic sites; their
partner table (pre-site, post-site in nm) comes from
``partners.extract_partners`` with the same name and parameters. Parameters
are the keyword arguments of the functions (sizes in nm); array-valued options (e.g. ``vesicles=`` for ribbon) are only
available through the functions.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .active_zone import segment_active_zone
from .clefts import segment_clefts
from .compartments import segment_compartments
from .mitochondria import segment_mitochondria
from .partners import partner_context_nm, partner_sites_labels
from .ribbon import segment_ribbon
from .vesicles import segment_vesicles

__all__ = ["RECIPES", "CHANNELS", "apply_recipe", "recipe_context_nm"]

#: Channel names of each recipe's input, in order.
CHANNELS: dict[str, tuple[str, ...]] = {
    "vesicles": ("foreground", "boundary"),
    "mitochondria": ("foreground", "boundary"),
    "active_zone": ("active_zone",),
    "clefts": ("cleft",),
    "compartments": ("boundary",),
    "ribbon": ("ribbon", "presynaptic_density", "membrane"),
    # the site labels need only the post-synaptic channel; the partner table needs all of
    # `partners.PARTNER_CHANNELS`
    "synful_partners": ("post_synaptic",),
    "polarity_partners": ("pre_synaptic", "post_synaptic"),
}


def _vesicles(prediction, voxel_size_nm, **params):
    if params.get("mode") == "predicted_distance":
        if prediction.shape[0] < 3:
            raise ValueError("vesicles mode 'predicted_distance' needs channels (foreground, boundary, distance), "
                             f"got shape {prediction.shape}")
        params = {**params, "distance": prediction[2]}
    return segment_vesicles(prediction[0], prediction[1], voxel_size_nm, **params)


def _mitochondria(prediction, voxel_size_nm, **params):
    return segment_mitochondria(prediction[0], prediction[1], voxel_size_nm, **params)


def _active_zone(prediction, voxel_size_nm, **params):
    return segment_active_zone(prediction[0], voxel_size_nm, **params)


def _clefts(prediction, voxel_size_nm, **params):
    return segment_clefts(prediction[0], voxel_size_nm, **params)


def _compartments(prediction, voxel_size_nm, **params):
    return segment_compartments(prediction[0], voxel_size_nm, **params)


def _ribbon(prediction, voxel_size_nm, **params):
    return segment_ribbon(prediction[0], prediction[1], prediction[2], voxel_size_nm, **params)


#: Recipe name -> ``f(prediction, voxel_size_nm, **params) -> labels``.
RECIPES: dict[str, Callable[..., np.ndarray]] = {
    "vesicles": _vesicles,
    "mitochondria": _mitochondria,
    "active_zone": _active_zone,
    "clefts": _clefts,
    "compartments": _compartments,
    "ribbon": _ribbon,
    "synful_partners": lambda prediction, voxel_size_nm, **params: partner_sites_labels(
        prediction, voxel_size_nm, 0, **params),
    "polarity_partners": lambda prediction, voxel_size_nm, **params: partner_sites_labels(
        prediction, voxel_size_nm, 1, **params),
}


#: Context in nm each recipe needs around a block for the block-wise result to
#: equal the whole-volume one: the largest object (and the region that decides
#: it) it is exact for. ``f(params) -> nm``. A package may raise it with
#: ``config.synapse_bmz.postprocessing.context_nm``.
CONTEXT_NM: dict[str, Callable[[dict], float]] = {
    # a cluster of touching vesicles (one mask component) up to ~8 vesicles across;
    # on the EPFL crop (r = 30 nm) 8 radii were too few, 13 enough
    "vesicles": lambda p: 16.0 * float(p.get("vesicle_radius_nm", 20.0)),
    # mitochondria profiles up to ~0.5 um from any block face
    "mitochondria": lambda p: 500.0,
    # thresholded components (active zone, cleft) up to 0.5 / 1 um
    "active_zone": lambda p: 500.0,
    "clefts": lambda p: 1000.0,
    # compartments are cell-sized: exact for compartments up to ~1.5 um
    "compartments": lambda p: 1500.0,
    # the ribbon's distance-limited steps (its components are stitched exactly)
    "ribbon": lambda p: float(p.get("contact_distance_nm", 20.0)) + float(p.get("membrane_distance_nm", 500.0)),
    # post-synaptic site components (and the partner table's context, `partners.partner_context_nm`)
    "synful_partners": lambda p: partner_context_nm("synful_partners", p),
    "polarity_partners": lambda p: partner_context_nm("polarity_partners", p),
}


def recipe_context_nm(name: str, params: dict | None = None) -> float:
    """Context in nm recipe ``name`` needs on every side of a block (see ``CONTEXT_NM``).

    Raises
    ------
    KeyError
        Unknown recipe name.
    """
    if name not in RECIPES:
        raise KeyError(f"unknown recipe {name!r}; available recipes: {', '.join(sorted(RECIPES))}")
    return float(CONTEXT_NM[name](dict(params or {})))


def apply_recipe(
    name: str,
    prediction: np.ndarray,
    voxel_size_nm: Sequence[float],
    params: dict | None = None,
) -> np.ndarray:
    """Run the post-processing recipe ``name`` on a network prediction.

    Parameters
    ----------
    name : str
        Recipe name, a key of ``RECIPES``.
    prediction : (C, Z, Y, X) or (C, Y, X) ndarray of float
        Channel-first probabilities in [0, 1]; channel order per recipe in
        ``CHANNELS`` (extra trailing channels are ignored).
    voxel_size_nm : sequence of float
        Voxel size in nm per spatial axis, (z, y, x) or (y, x).
    params : dict, optional
        Keyword parameters of the recipe function (sizes in nm).

    Returns
    -------
    (Z, Y, X) or (Y, X) ndarray of uint32
        Instance labels, 0 = background.

    Raises
    ------
    KeyError
        Unknown recipe name (the message lists the available recipes).
    ValueError
        Too few channels or a spatial rank other than 2 or 3.
    """
    if name not in RECIPES:
        raise KeyError(f"unknown recipe {name!r}; available recipes: {', '.join(sorted(RECIPES))}")
    prediction = np.asarray(prediction)
    needed = CHANNELS[name]
    if prediction.ndim not in (3, 4) or prediction.shape[0] < len(needed):
        raise ValueError(
            f"recipe {name!r} needs a channel-first prediction (C, [Z,] Y, X) with "
            f"channels {needed}, got shape {prediction.shape}"
        )
    labels = RECIPES[name](prediction, voxel_size_nm, **(params or {}))
    return np.asarray(labels, dtype=np.uint32)
