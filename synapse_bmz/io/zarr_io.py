"""Zarr and OME-Zarr (NGFF 0.4 and 0.5) reading and writing.

Reading: a store with NGFF ``multiscales`` metadata (0.4: ``attrs
["multiscales"]``, zarr v2; 0.5: ``attrs["ome"]["multiscales"]``, zarr v3)
opens the dataset of `scale_level` (0 = full resolution) and takes the voxel
size from the axes' units times the ``scale`` transformations (the level's,
multiplied by a multiscale-wide one if present). A spatial axis without a
known unit leaves the voxel size missing. Singleton time/channel axes are
dropped; other non-spatial axes are refused. A plain zarr array (or
``store.zarr:path/to/array``) takes its voxel size from the attributes
``voxel_size_nm`` / ``resolution`` (nm) / ``element_size_um``.

Writing: :func:`create_zarr_output` makes an OME-Zarr 0.4 group (zarr
format 2, ``/`` chunk separator) with one scale level, array ``"0"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from synapse_bmz.errors import InputError, OutputError
from synapse_bmz.io._attrs import voxel_size_from_attrs
from synapse_bmz.io._lazy import select_axes
from synapse_bmz.io._units import is_valid_size, nm_per_unit

NGFF_VERSION = "0.4"
_DEFAULT_CHUNKS = (32, 256, 256)


def _multiscales(attrs: dict) -> list | None:
    if isinstance(attrs.get("ome"), dict) and "multiscales" in attrs["ome"]:
        return attrs["ome"]["multiscales"]
    return attrs.get("multiscales")


def _scale_of(transforms: Sequence[dict] | None, n: int) -> np.ndarray:
    scale = np.ones(n)
    for t in transforms or ():
        if t.get("type") == "scale" and "scale" in t:
            scale = scale * np.asarray(t["scale"], dtype=float)
    return scale


def _read_ngff(group: zarr.Group, ms: dict, scale_level: int, shown: str):
    datasets = ms.get("datasets") or []
    if not 0 <= scale_level < len(datasets):
        raise InputError(
            shown, f"scale level {scale_level} does not exist; the store has {len(datasets)}"
        )
    ds = datasets[scale_level]
    array = group[ds["path"]]
    axes = ms.get("axes")
    if axes is None:  # NGFF <= 0.3: implicitly (t, c,) z, y, x without units
        axes = [{"name": n} for n in "tczyx"[-array.ndim :]]
    axes = [{"name": a} if isinstance(a, str) else a for a in axes]
    if len(axes) != array.ndim:
        raise InputError(shown, f"{len(axes)} axes in metadata but array has {array.ndim} dims")
    scale = _scale_of(ds.get("coordinateTransformations"), array.ndim) * _scale_of(
        ms.get("coordinateTransformations"), array.ndim
    )
    fixed: dict[int, int] = {}
    sizes: list[float | None] = []
    names = ""
    for i, (ax, n) in enumerate(zip(axes, array.shape)):
        name = str(ax.get("name", "")).lower()
        kind = ax.get("type", "space" if name in "zyx" else None)
        if kind == "space" and name in ("z", "y", "x"):
            factor = nm_per_unit(ax.get("unit"))
            sizes.append(None if factor is None else float(scale[i]) * factor)
            names += name
        elif n == 1:
            fixed[i] = 0
        else:
            raise InputError(
                shown,
                f"axis {name!r} ({kind}) has size {n}; expected a single-channel "
                "2D or 3D image (pass one channel)",
            )
    if names not in ("zyx", "yx"):
        raise InputError(shown, f"unsupported spatial axes {names!r}; expected 'zyx' or 'yx'")
    voxel = tuple(sizes) if all(s is not None for s in sizes) else None
    return select_axes(array, fixed), (voxel if is_valid_size(voxel, len(names)) else None)


def read_zarr(path: Path, key: str | None, scale_level: int, shown: str) -> tuple[Any, tuple[float, ...] | None]:
    """Open a zarr array lazily.

    Parameters
    ----------
    path : Path
        The ``.zarr`` / ``.ome.zarr`` store (a directory).
    key : str or None
        Path of a group or array inside the store.
    scale_level : int
        Multiscale level for NGFF stores (0 = full resolution).
    shown : str
        The path as the user wrote it, for messages.

    Returns
    -------
    data : (Z, Y, X) or (Y, X) zarr.Array or lazy view of one
    voxel_size_nm : tuple of float or None
    """
    node = zarr.open(store=str(path), mode="r", path=key or "")
    if isinstance(node, zarr.Group):
        attrs = node.attrs.asdict()
        multiscales = _multiscales(attrs)
        if multiscales:
            return _read_ngff(node, multiscales[0], scale_level, shown)
        arrays = sorted(name for name, _ in node.arrays())
        if len(arrays) != 1:
            raise InputError(
                shown,
                f"zarr group has no OME-Zarr multiscales metadata and {len(arrays)} arrays "
                f"{arrays[:10]}; choose one as {path}:NAME",
            )
        node = node[arrays[0]]
    if node.ndim not in (2, 3):
        raise InputError(shown, f"zarr array has shape {node.shape}; expected 2D or 3D")
    attrs = node.attrs.asdict()
    return node, voxel_size_from_attrs(attrs, node.ndim)


def default_chunks(shape: Sequence[int]) -> tuple[int, ...]:
    """Chunks of at most 32 x 256 x 256 (spatial), whole extent on channel axes."""
    spatial = _DEFAULT_CHUNKS[-min(len(shape), 3) :]
    lead = tuple(shape[: len(shape) - len(spatial)])
    return lead + tuple(max(1, min(s, c)) for s, c in zip(shape[len(lead) :], spatial))


def ngff_attrs(axes: str, voxel_size_nm: Sequence[float], name: str = "") -> dict:
    """OME-Zarr 0.4 ``multiscales`` attributes for one level at path "0"."""
    ngff_axes, scale = [], []
    sizes = iter(voxel_size_nm)
    for ax in axes:
        if ax in "zyx":
            ngff_axes.append({"name": ax, "type": "space", "unit": "nanometer"})
            scale.append(float(next(sizes)))
        elif ax == "c":
            ngff_axes.append({"name": "c", "type": "channel"})
            scale.append(1.0)
        elif ax == "t":
            ngff_axes.append({"name": "t", "type": "time"})
            scale.append(1.0)
    return {
        "multiscales": [
            {
                "version": NGFF_VERSION,
                "name": name,
                "axes": ngff_axes,
                "datasets": [
                    {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}
                ],
            }
        ]
    }


def create_zarr_output(
    path: str | Path,
    shape: Sequence[int],
    dtype: Any,
    chunks: Sequence[int] | None,
    voxel_size_nm: Sequence[float],
    *,
    axes: str,
    attrs: dict | None = None,
) -> zarr.Array:
    """Create an OME-Zarr 0.4 group with one empty array, for streaming writes.

    The caller normally passes a temporary path (see
    :func:`synapse_bmz.io.atomic_output`) and renames it when every block
    is written.

    Parameters
    ----------
    path : str or Path
        Directory of the new store; must not exist yet.
    shape : sequence of int
        Array shape, one entry per letter of `axes`.
    dtype : numpy dtype-like
    chunks : sequence of int or None
        Chunk shape; None for at most 32 x 256 x 256 spatially and the whole
        channel axis.
    voxel_size_nm : sequence of float
        One size in nm per *spatial* axis of `axes`, in the same order
        (``(z, y, x)`` or ``(y, x)``).
    axes : str
        Axis letters, e.g. ``"czyx"``, ``"cyx"``, ``"zyx"``, ``"yx"``
        (``t`` also allowed). Channel axes get type ``channel``, no unit,
        scale 1; spatial axes unit ``nanometer``.
    attrs : dict, optional
        JSON-serialisable metadata (provenance, channel meaning), stored under
        ``attrs["synapse_bmz"]`` of the group.

    Returns
    -------
    zarr.Array
        Array ``"0"`` of the group, filled with 0 until written.

    Raises
    ------
    OutputError
        If the arguments disagree, `path` exists, or it cannot be written.
    """
    path = Path(path)
    axes = axes.lower()
    shape = tuple(int(s) for s in shape)
    spatial = "".join(a for a in axes if a in "zyx")
    if (
        len(axes) != len(shape)
        or len(set(axes)) != len(axes)
        or set(axes) - set("tczyx")
        or spatial not in ("zyx", "yx")
        or axes != "".join(a for a in "tczyx" if a in axes)
    ):
        raise OutputError(
            f"{path}: axes {axes!r} must be ordered like 'tczyx' with 'zyx' or 'yx' spatial "
            f"axes and match shape {shape}"
        )
    voxel = tuple(float(v) for v in voxel_size_nm)
    if not is_valid_size(voxel, len(spatial)):
        raise OutputError(
            f"{path}: voxel_size_nm {voxel} must give one positive size per spatial axis {spatial!r}"
        )
    chunks = tuple(chunks) if chunks is not None else default_chunks(shape)
    if len(chunks) != len(shape):
        raise OutputError(f"{path}: chunks {chunks} do not match shape {shape}")
    if path.exists():
        raise OutputError(f"{path}: already exists; create_zarr_output writes a new store")
    try:
        group = zarr.open_group(store=str(path), mode="w-", zarr_format=2)
        array = group.create_array(
            "0",
            shape=shape,
            dtype=np.dtype(dtype),
            chunks=chunks,
            chunk_key_encoding={"name": "v2", "separator": "/"},
            fill_value=0,
        )
        meta = ngff_attrs(axes, voxel, name=path.name)
        meta["synapse_bmz"] = {"voxel_size_nm": list(voxel), "axes": axes, **(attrs or {})}
        group.attrs.update(meta)
    except OSError as error:
        raise OutputError(f"{path}: cannot write: {error}") from error
    return array


def write_zarr(
    tmp: Path,
    data: np.ndarray,
    voxel_size_nm: tuple[float, ...],
    metadata: dict | None,
    final: Path,
) -> None:
    """Write a whole (Z, Y, X) or (Y, X) array as OME-Zarr 0.4 at `tmp`."""
    data = np.asarray(data)
    axes = "zyx"[-data.ndim :]
    array = create_zarr_output(tmp, data.shape, data.dtype, None, voxel_size_nm, axes=axes, attrs=metadata)
    array[...] = data


def settle_pending_writes(timeout_s: float = 10.0) -> int:
    """Let zarr's IO thread finish the writes an interrupted call left behind.

    zarr 3 runs every read and write as coroutines on one background event
    loop; the calling thread only waits for them. A signal that interrupts
    that wait (SIGTERM, Ctrl-C) abandons the coroutines mid-write, and at
    interpreter exit zarr stops the loop under them: each one is then
    destroyed pending (asyncio logs "Task was destroyed but it is pending!"
    on stderr, after our one-line message) and its chunk may be half-written.
    Call this on the way out of an interrupted process: writes still running
    get ``timeout_s`` seconds to finish, the rest are cancelled and awaited,
    so the loop is idle when zarr closes it. Block done markers are written
    after their data, so a chunk written here is simply recomputed on resume.

    Parameters
    ----------
    timeout_s : float
        Seconds to wait for running writes before cancelling them.

    Returns
    -------
    int
        How many pending zarr tasks there were (0 when zarr's loop never started).
    """
    import asyncio

    try:
        from zarr.core import sync as zarr_sync

        loop = zarr_sync.loop[0]
    except (ImportError, AttributeError, IndexError):  # another zarr layout: nothing we can settle
        return 0
    if loop is None or loop.is_closed() or not loop.is_running():
        return 0

    async def _settle() -> int:
        me = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        if pending:
            _, unfinished = await asyncio.wait(pending, timeout=timeout_s)
            for task in unfinished:
                task.cancel()
            if unfinished:
                await asyncio.wait(unfinished, timeout=timeout_s)
        return len(pending)

    try:
        return asyncio.run_coroutine_threadsafe(_settle(), loop).result(timeout=2 * timeout_s + 1)
    except Exception:  # the process is exiting anyway; never turn a clean stop into a traceback
        return 0
