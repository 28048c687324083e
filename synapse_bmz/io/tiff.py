"""TIFF / OME-TIFF / ImageJ-TIFF reading and writing.

Voxel size is taken, in this order, from
1. OME-XML ``Pixels`` ``PhysicalSizeX/Y/Z`` with ``PhysicalSize*Unit``
   (default unit micrometre, as the OME schema says);
2. ImageJ metadata: ``unit`` plus ``spacing`` (z) and the ``XResolution`` /
   ``YResolution`` tags (pixels per unit);
3. plain TIFF ``XResolution``/``YResolution`` with ``ResolutionUnit`` =
   centimetre (2D only: a plain TIFF has no z spacing). Resolution in
   inches is a print DPI, not a pixel size, and is ignored.
A partial voxel size (e.g. x/y but no z for a stack) counts as missing.

Data are memory-mapped when the image data are stored contiguously and
uncompressed, otherwise read lazily through ``tifffile``'s zarr store
(tile by tile).
"""

from __future__ import annotations

import json
import weakref
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import zarr

from synapse_bmz.io._channels import grey_channel
from synapse_bmz.io._lazy import SelectView, select_axes
from synapse_bmz.io._units import is_valid_size, nm_per_unit

# ImageJ can store only these types; others are written as OME-TIFF, and
# types OME lacks as a plain TIFF with tifffile's JSON description.
_IMAGEJ_DTYPES = (np.uint8, np.uint16, np.int16, np.float32)
_OME_DTYPES = ("int8", "int16", "int32", "uint8", "uint16", "uint32", "float32", "float64")


def _resolution_size(page: tifffile.TiffPage, tag: str) -> float | None:
    """Pixel size in 'unit' from a rational resolution tag (pixels per unit)."""
    entry = page.tags.get(tag)
    if entry is None:
        return None
    value = entry.value
    num, den = value if isinstance(value, tuple) else (value, 1)
    if not num or not den:
        return None
    return float(den) / float(num)


def _ome_voxel_size(tif: tifffile.TiffFile, ndim: int) -> tuple[float, ...] | None:
    root = ET.fromstring(tif.ome_metadata)
    pixels = next((el for el in root.iter() if el.tag.endswith("}Pixels") or el.tag == "Pixels"), None)
    if pixels is None:
        return None
    sizes = []
    for ax in "ZYX"[-ndim:]:
        value = pixels.get(f"PhysicalSize{ax}")
        factor = nm_per_unit(pixels.get(f"PhysicalSize{ax}Unit", "µm"))
        if value is None or factor is None:
            return None
        sizes.append(float(value) * factor)
    return tuple(sizes)


def _imagej_voxel_size(tif: tifffile.TiffFile, page, ndim: int) -> tuple[float, ...] | None:
    meta = tif.imagej_metadata or {}
    factor = nm_per_unit(meta.get("unit"))
    if factor is None:
        return None
    x, y = _resolution_size(page, "XResolution"), _resolution_size(page, "YResolution")
    if x is None or y is None:
        return None
    sizes = [y * factor, x * factor]
    if ndim == 3:
        if meta.get("spacing") is None:
            return None
        sizes.insert(0, float(meta["spacing"]) * factor)
    return tuple(sizes)


def _plain_voxel_size(page, ndim: int) -> tuple[float, ...] | None:
    if ndim != 2:
        return None
    unit = page.tags.get("ResolutionUnit")
    if unit is None or int(unit.value) != 3:  # 3 = centimetre
        return None
    x, y = _resolution_size(page, "XResolution"), _resolution_size(page, "YResolution")
    if x is None or y is None:
        return None
    return (y * 1e7, x * 1e7)


def tiff_voxel_size(tif: tifffile.TiffFile, ndim: int) -> tuple[float, ...] | None:
    """Voxel size in nm, ``(z, y, x)`` or ``(y, x)``, or None when absent."""
    page = tif.pages.first
    candidates = []
    if tif.is_ome and tif.ome_metadata:
        candidates.append(lambda: _ome_voxel_size(tif, ndim))
    if tif.is_shaped and isinstance(tif.shaped_metadata, tuple) and tif.shaped_metadata:
        candidates.append(lambda: tuple(float(v) for v in tif.shaped_metadata[0]["voxel_size_nm"]))
    if tif.is_imagej:
        candidates.append(lambda: _imagej_voxel_size(tif, page, ndim))
    else:
        candidates.append(lambda: _plain_voxel_size(page, ndim))
    for get in candidates:
        try:
            sizes = get()
        except (ValueError, TypeError, KeyError, ET.ParseError):
            sizes = None
        if is_valid_size(sizes, ndim):
            return sizes
    return None


def _check_not_truncated(tif: tifffile.TiffFile, series) -> None:
    """Raise ValueError if image data announced by the file lie beyond its end.

    tifffile falls back to fewer pages (with a log message) when an ImageJ
    stack is cut short, so the announced image count is checked as well.
    """
    size = tif.filehandle.size
    if series.dataoffset is not None and series.dataoffset + series.nbytes > size:
        raise ValueError(
            f"file is truncated ({size} bytes, image data need {series.dataoffset + series.nbytes})"
        )
    meta = tif.imagej_metadata if tif.is_imagej else None
    if meta and "images" in meta:
        page = tif.pages.first
        planes = series.size // max(1, page.imagelength * page.imagewidth * page.samplesperpixel)
        if planes < int(meta["images"]):
            raise ValueError(
                f"file is truncated or corrupt: ImageJ header announces {meta['images']} "
                f"images, {planes} found"
            )
    last = series.pages[len(series.pages) - 1] if len(series.pages) else None
    if last is None:
        raise ValueError("no image data")
    offsets = getattr(last, "dataoffsets", ()) or ()
    counts = getattr(last, "databytecounts", ()) or ()
    for offset, count in zip(offsets, counts):
        if offset + count > size:
            raise ValueError(f"file is truncated ({size} bytes, image data need {offset + count})")


def read_tiff(path: Path) -> tuple[Any, tuple[float, ...] | None]:
    """Open a TIFF lazily.

    Parameters
    ----------
    path : Path
        ``.tif`` / ``.tiff`` / ``.ome.tif`` file.

    Returns
    -------
    data : (Z, Y, X) or (Y, X) array-like
        numpy.memmap, or a lazy zarr-backed view for compressed/tiled files.
        Singleton axes are dropped; a samples/channel axis is reduced to the
        grey channel (see :func:`synapse_bmz.io._channels.grey_channel`).
    voxel_size_nm : tuple of float or None
        From OME, ImageJ or resolution tags; None when absent.
    """
    tif = tifffile.TiffFile(path)
    try:
        series = tif.series[0]
        _check_not_truncated(tif, series)
        axes, shape = series.axes.upper(), series.shape
        fixed: dict[int, int] = {}
        spatial = []
        for i, (ax, n) in enumerate(zip(axes, shape)):
            if ax in "YX":
                spatial.append(ax)
            elif ax in "ZIQ" and "Z" not in spatial and n > 1:
                spatial.append("Z")
            elif ax in "SC" and n > 1:
                sample = None
                if n in (3, 4):
                    sample = np.asarray(tif.pages.first.asarray())
                    if sample.shape[-1] != n:  # planar (channel-first) storage
                        sample = np.moveaxis(sample, 0, -1) if sample.shape[0] == n else None
                fixed[i] = grey_channel(path, n, sample)
            elif n == 1:
                fixed[i] = 0
            else:
                raise ValueError(f"unsupported axes {series.axes} with shape {shape}")
        if "".join(spatial) not in ("YX", "ZYX"):
            raise ValueError(f"unsupported axes {series.axes} with shape {shape}")
        voxel = tiff_voxel_size(tif, len(spatial))
        if series.dataoffset is not None:
            data = tifffile.memmap(path, series=0, mode="r").reshape(shape)
            tif.close()
            return select_axes(data, fixed), voxel
        # compressed or tiled: read through tifffile's zarr store, which needs
        # `tif` open; the view owns it and closes it when garbage-collected
        view = SelectView(zarr.open_array(series.aszarr(), mode="r"), fixed)
        weakref.finalize(view, tif.close)
        return view, voxel
    except BaseException:
        tif.close()
        raise


def write_tiff(
    tmp: Path,
    data: np.ndarray,
    voxel_size_nm: tuple[float, ...],
    metadata: dict | None,
    final: Path,
) -> None:
    """Write an ImageJ-compatible TIFF (or OME-TIFF for types ImageJ lacks).

    uint8, uint16, int16 and float32 go to an ImageJ hyperstack with
    ``unit='nm'``, ``spacing`` = z size and X/YResolution = 1/size (pixels
    per nm); `metadata` is stored as JSON in the ImageJ ``Info`` property.
    Other types (labels as uint32/int32/int64, float64, int8, bool->uint8)
    are written as OME-TIFF with ``PhysicalSize*`` in nm; `metadata` then
    goes to the OME ``Description``. Types OME lacks too (float16, int64
    with negative or large values, uint64) are written as a plain TIFF whose
    JSON description (tifffile "shaped" metadata) holds ``voxel_size_nm``.
    All are read back by :func:`read_tiff`; ImageJ and OME files by Fiji.
    """
    data = np.asarray(data)
    if data.dtype == np.bool_:
        data = data.astype(np.uint8)
    if data.dtype == np.int64 and data.size and data.min() >= 0 and data.max() < 2**32:
        data = data.astype(np.uint32)
    ndim = data.ndim
    y, x = voxel_size_nm[-2:]
    info = json.dumps(metadata or {}, default=str)
    axes = "ZYX" if ndim == 3 else "YX"
    kwargs = dict(
        photometric="minisblack",
        resolution=(1.0 / x, 1.0 / y),
        compression=None,
    )
    if data.dtype in _IMAGEJ_DTYPES:
        meta: dict[str, Any] = {"unit": "nm", "axes": axes, "Info": info}
        if ndim == 3:
            meta["spacing"] = float(voxel_size_nm[0])
        tifffile.imwrite(tmp, data, imagej=True, metadata=meta, **kwargs)
    elif data.dtype.name not in _OME_DTYPES:
        # float16, (u)int64: tifffile's JSON ("shaped") description carries the size
        meta = {"axes": axes, "voxel_size_nm": list(map(float, voxel_size_nm)), "unit": "nm"}
        if metadata:
            meta["synapse_bmz"] = metadata
        tifffile.imwrite(tmp, data, shaped=True, metadata=meta, bigtiff=data.nbytes > 2**31, **kwargs)
    else:
        meta = {"axes": axes, "Description": info}
        for ax, size in zip(axes, voxel_size_nm):
            meta[f"PhysicalSize{ax}"] = float(size)
            meta[f"PhysicalSize{ax}Unit"] = "nm"
        tifffile.imwrite(tmp, data, ome=True, metadata=meta, bigtiff=data.nbytes > 2**31, **kwargs)
