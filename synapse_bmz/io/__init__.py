"""Reading and writing EM volumes with their voxel size in nm.

Conventions
-----------
- Voxel sizes are always nm, in array axis order: ``(z, y, x)`` for 3D,
  ``(y, x)`` for 2D; units are converted once, here (MRC Angstrom, OME /
  NGFF / ImageJ units, ``element_size_um``). A file without a voxel size is
  an :class:`~synapse_bmz.errors.InputError` telling the user to pass
  ``--voxel-size``, unless the caller supplies ``voxel_size_nm``, which
  always overrides the file.
- Arrays keep the file's order; nothing is flipped. For MRC/REC this means
  ``data[z, y, x]`` with IMOD model coordinates ``(x, y, z)`` addressing
  ``data[z, y, x]`` directly (IMOD y == array row index); see
  :mod:`synapse_bmz.io.mrc`.
- ``Volume.data`` is lazy (numpy.memmap, zarr.Array, h5py.Dataset or a small
  wrapper) and supports numpy basic slicing; ``Volume.to_numpy()`` loads it.
- Channels: grey + alpha (and grey-valued RGB) keep channel 0; real colour
  or multi-channel images are refused.
- Writers are atomic (hidden temporary name beside the target, then
  ``os.replace``); ``.npy`` gets a ``NAME.npy.json`` sidecar with the voxel
  size. Prefer ``.zarr`` or ``.tif`` for labels (MRC has no 32-bit integer
  mode).
- Errors name the path first: ``"PATH: problem"``.

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
