"""MRC / REC (IMOD, SerialEM, cryo-ET) reading and writing.

Axis convention
---------------
We keep the file's array order and never flip an axis. ``mrcfile`` returns
``data[z, y, x]`` (sections, rows, columns) for the standard axis mapping
``MAPC, MAPR, MAPS = 1, 2, 3``; row 0 is the first row stored in the file,
which IMOD's 3dmod displays at the *bottom* (y increases upward). Therefore
an IMOD model point ``(x, y, z)`` in pixel coordinates addresses
``data[z, y, x]`` directly: IMOD y equals the array row index, IMOD z the
section index. Shown with numpy/matplotlib (origin top-left) the same image
appears upside-down compared with 3dmod; that is a display difference only.
Files with a non-standard MAPC/MAPR/MAPS are transposed (lazily) to
``[z, y, x]``.

Units
-----
The MRC header stores the cell size in Angstrom; ``voxel_size`` is
converted to nm (divided by 10) here, once. A voxel size of 0 (unset) or
exactly 1 Angstrom on every axis (the placeholder IMOD and many tools
write when the pixel size is unknown) counts as missing.

Data types
----------
Mode 0 is 8-bit: signed per MRC2014, but IMOD writes unsigned bytes unless
its header flag says otherwise; an IMOD-stamped mode-0 file without the
signed flag is read as uint8 (a free reinterpretation of the memmap).
Written types: uint8 -> mode 0 with the IMOD "unsigned" flag (IMOD and our
reader agree; plain ``mrcfile`` will show int8), int8 -> mode 0, int16 ->
mode 1, uint16 -> mode 6, float16 -> mode 12, float32 -> mode 2,
float64 -> float32, bool -> uint8. Wider integers (labels) are stored as
int16/uint16 when their values fit, else as float32 when all values are
below 2**24 (exact), else refused: prefer ``.zarr`` or ``.tif`` for labels.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import mrcfile
import numpy as np

from synapse_bmz.errors import OutputError

IMOD_STAMP = 1146047817
_IMOD_FLAG_SIGNED_BYTES = 1


def _imod_stamp_flags(header) -> tuple[int, int]:
    """Return IMOD's (imodStamp, imodFlags) from header bytes 152-160."""
    raw = bytes(np.asarray(header.extra2).tobytes())  # header bytes 112..196
    order = "big" if header.mode.dtype.byteorder == ">" else "little"
    stamp = int.from_bytes(raw[40:44], order, signed=True)
    flags = int.from_bytes(raw[44:48], order, signed=True)
    return stamp, flags


def _set_imod_unsigned(header) -> None:
    raw = bytearray(np.asarray(header.extra2).tobytes())
    order = "big" if header.mode.dtype.byteorder == ">" else "little"
    raw[40:44] = IMOD_STAMP.to_bytes(4, order, signed=True)
    raw[44:48] = (0).to_bytes(4, order, signed=True)
    header.extra2 = np.void(bytes(raw))


def read_mrc(path: Path) -> tuple[np.ndarray, tuple[float, ...] | None]:
    """Memory-map an MRC/REC file.

    Parameters
    ----------
    path : Path
        The ``.mrc`` / ``.rec`` (or ``.map``, ``.st``, ``.ali``) file.

    Returns
    -------
    data : (Z, Y, X) or (Y, X) numpy.memmap
        Read-only, not loaded; a single-section image file gives ``(Y, X)``.
    voxel_size_nm : tuple of float or None
        ``(z, y, x)`` or ``(y, x)`` in nm, None when the header has none.

    Raises
    ------
    ValueError, OSError
        For corrupt or truncated files (the caller wraps them in InputError).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mrcfile warns on minor header issues
        with mrcfile.mmap(path, mode="r", permissive=False) as mrc:
            data = mrc.data
            if data is None:
                raise ValueError("file has no data block")
            header = mrc.header
            vs = mrc.voxel_size
            vs_xyz = (float(vs.x), float(vs.y), float(vs.z))
            mapping = (int(header.mapc), int(header.mapr), int(header.maps))
            mode = int(header.mode)
            stamp, flags = _imod_stamp_flags(header)
            if data.ndim not in (2, 3):
                raise ValueError(f"expected a 2D image or 3D volume, data has shape {data.shape}")
            if data.ndim == 3 and mapping != (1, 2, 3):
                if sorted(mapping) != [1, 2, 3]:
                    raise ValueError(f"invalid axis mapping MAPC/MAPR/MAPS={mapping}")
                file_axes = (mapping[2], mapping[1], mapping[0])  # array dims 0, 1, 2
                data = data.transpose([file_axes.index(a) for a in (3, 2, 1)])
            if mode == 0 and stamp == IMOD_STAMP and not flags & _IMOD_FLAG_SIGNED_BYTES:
                data = data.view(np.uint8)
    if all(v == 0 for v in vs_xyz) or all(v == 1 for v in vs_xyz):
        return data, None
    x, y, z = (v / 10.0 for v in vs_xyz)  # Angstrom -> nm
    return data, ((z, y, x) if data.ndim == 3 else (y, x))


def _mrc_dtype(data: np.ndarray, path: Path) -> np.ndarray:
    """Convert `data` to a dtype MRC can hold (see the module docstring)."""
    kind, dt = data.dtype.kind, data.dtype
    if dt == np.bool_:
        return data.astype(np.uint8)
    if dt in (np.uint8, np.int8, np.int16, np.uint16, np.float16, np.float32):
        return data
    if dt == np.float64:
        return data.astype(np.float32)
    if kind in "iu":
        lo, hi = (int(data.min()), int(data.max())) if data.size else (0, 0)
        if lo >= -(2**15) and hi < 2**15:
            return data.astype(np.int16)
        if lo >= 0 and hi < 2**16:
            return data.astype(np.uint16)
        if lo > -(2**24) and hi < 2**24:
            return data.astype(np.float32)
        raise OutputError(
            f"{path}: integer values {lo}..{hi} do not fit any MRC mode exactly; "
            "write labels to .zarr or .tif instead"
        )
    raise OutputError(f"{path}: data type {dt} cannot be stored in MRC")


def write_mrc(
    tmp: Path,
    data: np.ndarray,
    voxel_size_nm: tuple[float, ...],
    metadata: dict | None,
    final: Path,
) -> None:
    """Write `data` (Z, Y, X) or (Y, X) to `tmp` with the voxel size in Angstrom."""
    data = _mrc_dtype(np.asarray(data), final)
    unsigned_bytes = data.dtype == np.uint8
    with mrcfile.new(tmp, overwrite=False) as mrc:
        mrc.set_data(data.view(np.int8) if unsigned_bytes else data)
        if data.ndim == 3:
            z, y, x = voxel_size_nm
        else:
            (y, x), z = voxel_size_nm, voxel_size_nm[-1]
        mrc.voxel_size = (x * 10.0, y * 10.0, z * 10.0)  # nm -> Angstrom
        if unsigned_bytes:
            _set_imod_unsigned(mrc.header)
            # statistics must describe the unsigned values
            mrc.header.dmin, mrc.header.dmax = float(data.min()), float(data.max())
            mrc.header.dmean = float(data.mean(dtype=np.float64))
        mrc.add_label("synapse_bmz")
        for key in ("model_id", "task"):
            if metadata and key in metadata:
                mrc.add_label(f"{key}={metadata[key]}"[:80])
