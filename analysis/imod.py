"""Read and write IMOD model (``.mod``) files natively, no IMOD installation.

Binary layout after https://bio3d.colorado.edu/imod/doc/binspec.html
(big-endian; ``IMODV1.2`` id, 232-byte model header, ``OBJT`` objects of
176 bytes, ``CONT`` contours, ``SIZE`` per-point sphere sizes, ``IEOF``).

Coordinate convention
---------------------
IMOD stores points as (x, y, z) in pixels of the image the model belongs
to: x is the column, y the row and z the slice index (voxel centres at
integer positions, as SynapseNet writes them through ``point2model``).
IMOD's y axis points *up* on screen with y = 0 the first row of the MRC
file. Arrays read from MRC files in file order (``mrcfile``) already follow
this, so the default is no flip. For arrays whose row 0 is the *top* of the
image (PNG/TIFF, or SynapseNet's flipped ``read_mrc``) pass ``flip_y=True``:
``y = n_rows - 1 - row``. The header stores the voxel size: ``pixelsize`` is
the x voxel size with ``units = -9`` (nm), ``yscale`` and ``zscale`` the y
and z voxel sizes relative to x. Sphere radii (``SIZE``) are in x pixels.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Sequence

import numpy as np
import pandas as pd
from skimage import measure

from ._checks import voxel_size_for

_MODEL_HEADER = ">128s9i6f5if i i3f".replace(" ", "")
_OBJECT_HEADER = ">64s16I4i3fi8B2i"
_CONTOUR_HEADER = ">iIii"
_UNITS_NM = -9
_OBJFLAG_OPEN = 1 << 3
_OBJFLAG_SCAT = 1 << 9
_UNIT_TO_NM = {0: None, -12: 1e-3, -10: 0.1, -9: 1.0, -6: 1e3, -3: 1e6, -2: 1e7, 1: 1e9}


@dataclass
class ImodObject:
    """One IMOD object: its contours as (M, 3) float arrays of (x, y, z) pixels."""

    name: str
    color: tuple[float, float, float]
    scattered: bool
    contours: list[np.ndarray] = field(default_factory=list)
    point_sizes: list[np.ndarray | None] = field(default_factory=list)
    sphere_size: int = 0


@dataclass
class ImodModel:
    """An IMOD model: image size (x, y, z) in pixels, voxel size in nm (z, y, x), objects."""

    image_size_xyz: tuple[int, int, int]
    voxel_size_nm: tuple[float, float, float] | None
    objects: list[ImodObject]
    name: str = ""


def _voxel_size_3d(voxel_size_nm: Sequence[float], ndim: int) -> np.ndarray:
    spacing = voxel_size_for(voxel_size_nm, ndim)
    return spacing if ndim == 3 else np.concatenate([[spacing[0]], spacing])


def _write_model(f: BinaryIO, model: ImodModel) -> None:
    nx, ny, nz = model.image_size_xyz
    vz, vy, vx = model.voxel_size_nm if model.voxel_size_nm is not None else (1.0, 1.0, 1.0)
    units = _UNITS_NM if model.voxel_size_nm is not None else 0
    f.write(b"IMODV1.2")
    f.write(struct.pack(
        _MODEL_HEADER, model.name.encode()[:127], nx, ny, nz, len(model.objects), 0, 1, 2, 0, 255,
        0.0, 0.0, 0.0, 1.0, vy / vx, vz / vx, 0, 0, -1, 3, 128, vx, units, 0, 0.0, 0.0, 0.0,
    ))
    for obj in model.objects:
        flags = _OBJFLAG_OPEN | _OBJFLAG_SCAT if obj.scattered else 0
        f.write(b"OBJT")
        f.write(struct.pack(
            _OBJECT_HEADER, obj.name.encode()[:63], *([0] * 16), len(obj.contours), flags, 0, 1,
            *[float(c) for c in obj.color], int(obj.sphere_size), 1, 3, 1, 1, 0, 0, 0, 0, 0, 0,
        ))
        for points, sizes in zip(obj.contours, obj.point_sizes):
            points = np.asarray(points, dtype=">f4").reshape(-1, 3)
            f.write(b"CONT")
            f.write(struct.pack(_CONTOUR_HEADER, len(points), 0, 0, 0))
            f.write(points.tobytes())
            if sizes is not None:
                sizes = np.asarray(sizes, dtype=">f4").ravel()
                f.write(b"SIZE" + struct.pack(">i", 4 * len(sizes)) + sizes.tobytes())
    f.write(b"IEOF")


def write_model(path: Path | str, model: ImodModel) -> Path:
    """Write ``model`` to ``path`` atomically (temporary name, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        _write_model(f, model)
    tmp.replace(path)
    return path


def _to_xyz_pixels(points_nm: np.ndarray, spacing: np.ndarray, n_rows: int, flip_y: bool) -> np.ndarray:
    zyx = np.asarray(points_nm, dtype=np.float64) / spacing
    y = n_rows - 1 - zyx[:, 1] if flip_y else zyx[:, 1]
    return np.stack([zyx[:, 2], y, zyx[:, 0]], axis=1)


def write_point_model(
    path: Path | str,
    centers_nm: np.ndarray,
    radii_nm: Sequence[float],
    voxel_size_nm: Sequence[float],
    image_shape: Sequence[int],
    flip_y: bool = False,
    name: str = "vesicles",
    color: tuple[float, float, float] = (0.0, 1.0, 0.0),
) -> Path:
    """Write vesicles as one scattered-point object with a sphere radius per point.

    Parameters
    ----------
    path : path
        Output ``.mod`` file.
    centers_nm : (N, 3) or (N, 2) ndarray
        Centres in nm, (z, y, x) or (y, x), e.g. the ``centroid_*_nm`` columns.
    radii_nm : (N,) sequence of float
        Sphere radii in nm.
    voxel_size_nm : tuple of float
        Voxel size of the image, (z, y, x) or (y, x), nm.
    image_shape : tuple of int
        Shape of the image, (Z, Y, X) or (Y, X).
    flip_y : bool
        See the module docstring.
    name, color : object name and RGB colour (0..1).
    """
    spacing = _voxel_size_3d(voxel_size_nm, len(image_shape))
    shape = tuple(image_shape) if len(image_shape) == 3 else (1, *image_shape)
    centers = np.asarray(centers_nm, dtype=np.float64).reshape(len(radii_nm), -1)
    if centers.shape[1] == 2:
        centers = np.concatenate([np.zeros((len(centers), 1)), centers], axis=1)
    xyz = _to_xyz_pixels(centers, spacing, shape[1], flip_y)
    radii_px = np.asarray(radii_nm, dtype=np.float64) / spacing[2]
    obj = ImodObject(
        name=name, color=color, scattered=True, contours=[xyz], point_sizes=[radii_px],
        sphere_size=int(round(float(np.median(radii_px)))) if len(radii_px) else 3,
    )
    model = ImodModel((shape[2], shape[1], shape[0]), tuple(spacing), [obj], name=name)
    return write_model(path, model)


def write_contour_model(
    path: Path | str,
    labels: np.ndarray,
    voxel_size_nm: Sequence[float],
    flip_y: bool = False,
    name: str = "segmentation",
) -> Path:
    """Write every label as one object of closed contours, one or more per slice.

    Contours are the marching-squares outline (level 0.5) of the label in
    each z slice, so they pass halfway between object and background pixels.

    Parameters
    ----------
    path : path
        Output ``.mod`` file.
    labels : (Z, Y, X) or (Y, X) ndarray of int
        Segmentation, 0 is background.
    voxel_size_nm : tuple of float
        (z, y, x) or (y, x) voxel size in nm.
    flip_y : bool
        See the module docstring.
    name : str
        Model name; objects are named ``label <n>``.
    """
    labels = np.asarray(labels)
    spacing = _voxel_size_3d(voxel_size_nm, labels.ndim)
    volume = labels if labels.ndim == 3 else labels[None]
    rng = np.random.default_rng(0)
    objects = []
    for label in np.unique(volume[volume != 0]):
        obj = ImodObject(name=f"label {int(label)}", color=tuple(rng.uniform(0.2, 1.0, 3)), scattered=False)
        for z in np.flatnonzero(np.any(volume == label, axis=(1, 2))):
            mask = np.pad(volume[z] == label, 1).astype(np.float32)
            for contour in measure.find_contours(mask, 0.5):
                rows, cols = contour[:-1, 0] - 1, contour[:-1, 1] - 1  # drop repeated end point
                y = volume.shape[1] - 1 - rows if flip_y else rows
                obj.contours.append(np.stack([cols, y, np.full(len(rows), float(z))], axis=1))
                obj.point_sizes.append(None)
        objects.append(obj)
    model = ImodModel((volume.shape[2], volume.shape[1], volume.shape[0]), tuple(spacing), objects, name=name)
    return write_model(path, model)


def read_model(path: Path | str) -> ImodModel:
    """Read a binary IMOD model (objects, contours, point sizes; meshes are skipped)."""
    data = Path(path).read_bytes()
    if data[:4] != b"IMOD":
        raise ValueError(f"{path} is not an IMOD binary model (starts with {data[:8]!r})")
    pos = 8
    head = struct.unpack_from(_MODEL_HEADER, data, pos)
    pos += struct.calcsize(_MODEL_HEADER)
    nx, ny, nz = head[1:4]
    yscale, zscale, pixelsize, units = head[14], head[15], head[21], head[22]
    to_nm = _UNIT_TO_NM.get(units)
    voxel = None if to_nm is None else (zscale * pixelsize * to_nm, yscale * pixelsize * to_nm, pixelsize * to_nm)
    model = ImodModel((nx, ny, nz), voxel, [], name=head[0].split(b"\0")[0].decode(errors="replace"))
    while pos < len(data):
        tag = data[pos : pos + 4]
        pos += 4
        if tag == b"IEOF":
            break
        if tag == b"OBJT":
            o = struct.unpack_from(_OBJECT_HEADER, data, pos)
            pos += struct.calcsize(_OBJECT_HEADER)
            model.objects.append(ImodObject(
                name=o[0].split(b"\0")[0].decode(errors="replace"), color=tuple(o[21:24]),
                scattered=bool(o[18] & _OBJFLAG_SCAT), sphere_size=o[24],
            ))
        elif tag == b"CONT":
            psize = struct.unpack_from(_CONTOUR_HEADER, data, pos)[0]
            pos += struct.calcsize(_CONTOUR_HEADER)
            points = np.frombuffer(data, dtype=">f4", count=3 * psize, offset=pos).reshape(-1, 3).astype(np.float64)
            pos += 12 * psize
            model.objects[-1].contours.append(points)
            model.objects[-1].point_sizes.append(None)
        elif tag == b"SIZE":
            size = struct.unpack_from(">i", data, pos)[0]
            model.objects[-1].point_sizes[-1] = np.frombuffer(data, ">f4", size // 4, pos + 4).astype(np.float64)
            pos += 4 + size
        elif tag == b"MESH":
            vsize, lsize = struct.unpack_from(">ii", data, pos)
            pos += 16 + 12 * vsize + 4 * lsize
        else:
            pos += 4 + struct.unpack_from(">i", data, pos)[0]
    return model


def points_table(model: ImodModel, flip_y: bool = False) -> pd.DataFrame:
    """All points of a model in nm, (z, y, x) order, with sphere radii where stored.

    Columns: ``object``, ``object_name``, ``contour``, ``point_z_nm``,
    ``point_y_nm``, ``point_x_nm``, ``radius_nm`` (NaN without sizes).
    Needs the model's voxel size (``units`` set in the header).
    """
    if model.voxel_size_nm is None:
        raise ValueError("the model has no physical voxel size (header units = pixels); nm are undefined")
    vz, vy, vx = model.voxel_size_nm
    ny = model.image_size_xyz[1]
    rows = []
    for k, obj in enumerate(model.objects):
        for c, (points, sizes) in enumerate(zip(obj.contours, obj.point_sizes)):
            y = ny - 1 - points[:, 1] if flip_y else points[:, 1]
            radius = sizes * vx if sizes is not None else np.full(len(points), np.nan)
            rows.append(pd.DataFrame({
                "object": k, "object_name": obj.name, "contour": c, "point_z_nm": points[:, 2] * vz,
                "point_y_nm": y * vy, "point_x_nm": points[:, 0] * vx, "radius_nm": radius,
            }))
    columns = ["object", "object_name", "contour", "point_z_nm", "point_y_nm", "point_x_nm", "radius_nm"]
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=columns)
