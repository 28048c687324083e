"""Do the objects a run found have the sizes the package was trained on?

A wrong voxel size is the commonest silent failure: the runner resamples the
image onto the package's training grid with the voxel size it is given, so a
header that is off by 4x shows the network structures 4x too small or too
large. `object_size_check` compares the median equivalent radius of the
found objects with the package's expected range and says, in one line, when
the voxel size may be wrong. The runner writes its result into
``provenance.json`` (``object_size_check``) and onto `RunResult`;
`synapse_bmz.api.segment_events` puts it on `SegmentResult`, so every front
end can show it.

The size is ``radius_equivalent_nm`` of the object table
(`analysis.morphology.object_table`): the radius of the sphere (3D) or disc
(2D, also for 2D models on stacks, measured per section) of the object's
volume or area. The expected range ``(low, high)`` in nm comes from, in order:

1. ``config.synapse_bmz.object_radius_nm`` when the package declares it;
2. the vesicle recipe's ``vesicle_radius_nm`` ``r`` (the package's, or the
   user's override): ``(r / 2, 2 r)``;
3. `TASK_RADIUS_NM`, measured on the training annotations of the shipped
   packages (5th-95th percentile of the equivalent radius);
4. none: the check is skipped (``status`` ``"unchecked"``).

Measured limits (do not read more into the check than this): the shipped
networks are scale-selective. On the bundled EPFL crop (5 nm) labelled
1.25 nm, ``vesicles_2d`` still finds 9 objects of median radius 38 nm (32 nm
at the right voxel size), because it detects structures of its training size
in voxels and the recipe drops smaller ones; ``mitochondria_2d`` at 1.25 or
2.5 nm and ``vesicles_3d`` 4x off find nothing at all. So the check also
reports a run that finds no objects, which is the usual symptom.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np

#: Expected equivalent radius (nm) per task where no package or recipe declares one:
#: 5th-95th percentile of the training annotations, measured with
#: ``api.measure``: EPFL mitochondria (2D sections, 5 nm): 62-245 nm; CREMI /
#: Gerhard stack-1 synapses (3D, 50 x 4.6 x 4.6 nm): 43-106 nm; the simulator's
#: active zones (2 nm): 29 nm, widened for real synapses.
TASK_RADIUS_NM: Dict[str, tuple] = {
    "mitochondria": (60.0, 250.0),
    "clefts": (40.0, 110.0),
    "active_zone": (15.0, 60.0),
}

#: The median may lie this far outside the expected range before the check warns.
TOLERANCE = (0.5, 2.0)


class ObjectSizeWarning(UserWarning):
    """The objects found are far from the package's training sizes: the voxel size may be wrong."""


def expected_radius_nm(config, params: Optional[Dict[str, Any]] = None) -> Optional[tuple]:
    """``(low, high, source)``: the equivalent radius (nm) a package's objects should have.

    Parameters
    ----------
    config : SynapseBmzConfig
        The package's ``config.synapse_bmz``.
    params : dict, optional
        Recipe parameters of the run (the package's merged with the user's).

    Returns
    -------
    tuple of (float, float, str) or None
        None when nothing declares a size for the package (see the module docstring).
    """
    declared = getattr(config, "object_radius_nm", None)
    if declared:
        return float(declared[0]), float(declared[1]), "config.synapse_bmz.object_radius_nm"
    recipe = config.postprocessing.recipe if config.postprocessing is not None else None
    if recipe == "vesicles":
        import inspect

        from postprocessing.vesicles import segment_vesicles

        # the recipe's own default, so a package that leaves it out is checked against what ran
        default = inspect.signature(segment_vesicles).parameters["vesicle_radius_nm"].default
        r = float((params or {}).get("vesicle_radius_nm", default))
        return r / 2, 2 * r, "recipe parameter vesicle_radius_nm"
    if config.task in TASK_RADIUS_NM:
        low, high = TASK_RADIUS_NM[config.task]
        return low, high, f"task default for {config.task}"
    return None


def object_size_check(config, table, voxel_size_nm: Sequence[float],
                      params: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Compare the found objects' median equivalent radius with the package's expected range.

    Parameters
    ----------
    config : SynapseBmzConfig or None
        The package's ``config.synapse_bmz``; None: unchecked.
    table : pandas.DataFrame
        Object table of the run (``radius_equivalent_nm`` column), as written
        next to the labels.
    voxel_size_nm : sequence of float
        Voxel size the run was given (nm, ``(z, y, x)``), quoted in the message.
    params : dict, optional
        Recipe parameters of the run.

    Returns
    -------
    dict
        ``status``: ``"ok"``, ``"outside"`` (median beyond ``TOLERANCE`` x the
        range), ``"no_objects"`` or ``"unchecked"``; ``n_objects``;
        ``median_radius_nm``; ``expected_radius_nm`` ``[low, high]``;
        ``tolerated_radius_nm``; ``source`` of the range;
        ``voxel_size_nm``; ``training_voxel_size_nm``; ``message``: one line
        for the user, None when ``status`` is ``"ok"`` or ``"unchecked"``;
        with ``"outside"`` also ``suggested_voxel_size_nm``, the voxel size
        that would put the median at the geometric middle of the range
        (sizes in nm scale with the voxel size a run is told; a first guess,
        since the network does not see every scale alike).

    Examples
    --------
    >>> import pandas as pd
    >>> from synapse_bmz.zoo.config import SynapseBmzConfig
    >>> cfg = SynapseBmzConfig(task="mitochondria", channels=["foreground", "boundary"],
    ...                        voxel_size_nm=[5.0, 5.0], halo=[16, 16])
    >>> object_size_check(cfg, pd.DataFrame({"radius_equivalent_nm": [20.0, 25.0]}), (1.25, 1.25))["status"]
    'outside'
    """
    vs = [float(v) for v in voxel_size_nm]
    out: Dict[str, Any] = {"status": "unchecked", "n_objects": int(len(table)), "median_radius_nm": None,
                           "expected_radius_nm": None, "tolerated_radius_nm": None, "source": None,
                           "voxel_size_nm": vs, "training_voxel_size_nm": None, "message": None}
    expected = expected_radius_nm(config, params) if config is not None else None
    if expected is None:
        return out
    low, high, source = expected
    lo_ok, hi_ok = TOLERANCE[0] * low, TOLERANCE[1] * high
    train_vs = [float(v) for v in config.voxel_size_nm]
    out.update(expected_radius_nm=[low, high], tolerated_radius_nm=[lo_ok, hi_ok], source=source,
               training_voxel_size_nm=train_vs)
    hint = (f"the package was trained at {_nm(train_vs)} nm on objects of equivalent radius "
            f"{low:g}-{high:g} nm ({source}); if the voxel size {_nm(vs)} nm is wrong, pass the right one "
            f"with --voxel-size (z,y,x in nm)")
    if len(table) == 0:
        out.update(status="no_objects", message=f"found no {config.task} objects: {hint}")
        return out
    median = float(np.median(np.asarray(table["radius_equivalent_nm"], dtype=float)))
    out["median_radius_nm"] = round(median, 2)
    if lo_ok <= median <= hi_ok:
        out["status"] = "ok"
        return out
    # sizes in nm scale with the voxel size a run is told: this one puts the median mid-range
    suggested = [round(v * float(np.sqrt(low * high)) / median, 2) for v in vs]
    out.update(status="outside", suggested_voxel_size_nm=suggested,
               message=(f"{len(table)} {config.task} objects have median equivalent radius {median:.1f} nm, "
                        f"outside {lo_ok:g}-{hi_ok:g} nm: {hint}; about {_nm(suggested)} nm would put "
                        f"their median mid-range"))
    return out


def _nm(values: Sequence[float]) -> str:
    return ",".join(f"{v:g}" for v in values)
