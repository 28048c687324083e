"""Reading and writing EM volumes with their voxel size in nm.

Every reader converts units at this edge: voxel sizes are always in nm and
in array axis order, ``(z, y, x)`` or ``(y, x)``. Data stay on disk until
indexed. Every writer writes atomically (temporary name, then rename).

Public API: :class:`Volume`, :func:`read_volume`, :func:`write_volume`,
:func:`create_zarr_output`, :func:`atomic_output`, :func:`list_inputs`.
"""

from synapse_bmz.io.atomic import atomic_output
from synapse_bmz.io.inputs import list_inputs
from synapse_bmz.io.volume import Volume, read_volume, write_volume
from synapse_bmz.io.zarr_io import create_zarr_output

__all__ = [
    "Volume",
    "atomic_output",
    "create_zarr_output",
    "list_inputs",
    "read_volume",
    "write_volume",
]
