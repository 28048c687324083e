"""Simulated synapse EM with exact ground truth (numpy / scipy / scikit-image only).

Generators
----------
simulate_tomogram
    Room-temperature electron tomogram of a (ribbon) synapse: tilt series,
    noise and filtered back-projection, so the missing wedge is real.
simulate_cryo_tomogram
    The same synapse as a cryo-ET reconstruction (CTF, low dose, inverted
    contrast, thinner sample, smaller pixel).
simulate_sstem_neuropil
    Anisotropic ssTEM neuropil with neuron labels and polyadic synapses,
    with a partner table in nm.

Helpers
-------
write_simulation
    ImageJ tifs with voxel size plus csv tables.
training_pairs
    Iterator of (raw, targets) for training networks.

Every generator is a pure function of its arguments and ``seed``.
"""

from .imaging import CRYO_IMAGING, RT_IMAGING, ImagingParams
from .io import write_simulation
from .sstem import PARTNER_COLUMNS, SimulatedNeuropil, simulate_sstem_neuropil
from .tomogram import SimulatedSynapse, simulate_cryo_tomogram, simulate_tomogram
from .training import TRAINING_KINDS, training_pairs
from .vesicle_table import POOLS, VESICLE_COLUMNS

__all__ = [
    "simulate_tomogram",
    "simulate_cryo_tomogram",
    "simulate_sstem_neuropil",
    "write_simulation",
    "training_pairs",
    "SimulatedSynapse",
    "SimulatedNeuropil",
    "ImagingParams",
    "RT_IMAGING",
    "CRYO_IMAGING",
    "VESICLE_COLUMNS",
    "PARTNER_COLUMNS",
    "POOLS",
    "TRAINING_KINDS",
]
