"""napari sample data: the bundled EPFL FIB-SEM crop and a simulated tomogram with its ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._layers import META

#: The 3 x 384 x 512 crop (5 nm voxels) `make demo` segments; see sample_data/README.md.
EPFL_CROP = Path(__file__).resolve().parents[1] / "sample_data" / "epfl_vesicles_crop.tif"
#: Ground-truth instance layers of the simulation (uint32 ids).
SIM_INSTANCES = ("vesicles", "mitochondria", "compartments")
#: Ground-truth structure masks, named as the pool rules and distance widgets name structures.
SIM_MASKS = ("active_zone", "psd", "membrane")


def epfl_crop() -> list:
    """The bundled EPFL crop (z, y, x; 5 x 5 x 5 nm) as an image layer with its voxel size as scale."""
    from ._reader import volume_layer

    data, kwargs, kind = volume_layer(str(EPFL_CROP))
    kwargs["name"] = "EPFL crop"
    return [(data, kwargs, kind)]


def simulated_tomogram(seed: int = 0) -> list:
    """A simulated room-temperature synapse tomogram (`synapse_bmz.simulate.simulate_tomogram`).

    Returns the raw tomogram (64 x 256 x 256 voxels of 1.5 nm, (z, y, x)) and
    its exact ground truth: instance layers (`SIM_INSTANCES`) and structure
    masks (`SIM_MASKS`), all scaled in nm. The vesicle layer's features are
    the simulation's vesicle table (pools, distance to the active zone).
    """
    from ..simulate import simulate_tomogram

    sim = simulate_tomogram(seed=seed)
    scale = tuple(float(v) for v in sim.voxel_size_nm)
    origin = {"kind": "ground truth", "simulation": "simulate_tomogram", "seed": seed}
    layers = [(sim.raw, {"name": "simulated tomogram", "scale": scale,
                         "metadata": {META: {"kind": "simulation", "seed": seed}}}, "image")]
    for name in SIM_INSTANCES:
        kwargs = {"name": name, "scale": scale, "metadata": {META: {**origin, "task": name}}, "opacity": 0.6,
                  # cell-sized compartments would cover the raw data: there, but hidden
                  "visible": name != "compartments"}
        if name == "vesicles":
            features = sim.vesicles.copy()
            features.insert(0, "index", features["label"].to_numpy())
            kwargs["features"] = features
        layers.append((np.asarray(sim.labels[name], dtype=np.uint32), kwargs, "labels"))
    for name in SIM_MASKS:
        layers.append((np.asarray(sim.labels[name], dtype=np.uint8),
                       {"name": name, "scale": scale, "metadata": {META: {**origin, "task": name}}, "opacity": 0.5},
                       "labels"))
    return layers
